"""Runs onnx2tf in a child process: ``python -m modelport.conversion._onnx2tf_worker request.json``.

The parent is :func:`modelport.conversion.onnx_tflite.run_onnx2tf`, through the protocol of
:mod:`modelport.conversion.worker`: the request is a JSON object of ``onnx2tf.convert`` keyword arguments, and the
working directory is a staging directory that holds the private copy of the model and the calibration sample
onnx2tf would otherwise download. Not part of the public API.
"""

from __future__ import annotations

import sys
from typing import Any

from modelport.conversion.worker import serve


def _onnx2tf(request: dict[str, Any]) -> None:
    import onnx2tf

    onnx2tf.convert(**request)


def main(argv: list[str]) -> int:
    return serve(argv, _onnx2tf)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
