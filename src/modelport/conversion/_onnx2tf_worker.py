"""Runs onnx2tf in a child process: ``python -m modelport.conversion._onnx2tf_worker request.json``.

The parent (:mod:`modelport.conversion.onnx_tflite`) starts it with the working directory set to a staging
directory that holds the calibration sample onnx2tf otherwise downloads from GitHub (see there). The request
is a JSON object of onnx2tf keyword arguments; on failure the worker writes ``{"error": …, "type": …}`` to the
request's ``result`` path and exits 1. Not part of the public API.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


def serve(argv: list[str], job: Callable[[dict[str, Any]], object]) -> int:
    """The child-process protocol shared by modelport's workers: read the request file named by ``argv[1]``,
    run ``job`` on it (without its ``result`` key), write ``{"error": …}`` to ``result``; exit status 0 or 1."""
    request = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    result = Path(request.pop("result"))
    try:
        job(request)
    except BaseException as exc:
        result.write_text(
            json.dumps({"error": str(exc), "type": type(exc).__name__, "trace": traceback.format_exc()[-4000:]}),
            encoding="utf-8",
        )
        return 1
    result.write_text(json.dumps({"error": None}), encoding="utf-8")
    return 0


def _onnx2tf(request: dict[str, Any]) -> None:
    import onnx2tf

    onnx2tf.convert(**request)


def main(argv: list[str]) -> int:
    return serve(argv, _onnx2tf)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
