"""The runtime config saved beside an artifact: how to run it (runtime, threads, precision, engine settings).

``port`` searches each target's engine settings and saves the fastest verified ones as ``runtime.json`` in the
artifact's folder; :func:`modelport.backends.open_runner` applies that file whenever the caller does not choose
engine settings itself, so ``bench``, ``compare`` and the library run the artifact the way ``port`` measured it.

The file (UTF-8 JSON)::

    {"format": 1, "artifact": "model.xml", "runtime": "openvino", "device": "cpu", "threads": null,
     "precision": "int8", "engine": {"INFERENCE_PRECISION_HINT": "none"}}

It describes one file: ``artifact`` is that file's name, and a config naming another file in the same folder is
ignored for this one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from modelport.backends.runner import RunnerOptions
from modelport.errors import InvalidInputError
from modelport.formats import Precision

log = logging.getLogger(__name__)

#: the file name, in the artifact's folder
CONFIG_NAME = "runtime.json"
_FORMAT = 1


def config_path(artifact: str | Path) -> Path:
    """Where the runtime config of ``artifact`` lives (it may not exist)."""
    return Path(artifact).parent / CONFIG_NAME


def save_runtime_config(artifact: str | Path, runtime: str, options: RunnerOptions) -> Path:
    """Write ``runtime.json`` beside ``artifact`` (atomically, replacing an older one); returns its path.

    Args:
        artifact: the model file the config is for.
        runtime: the backend's name (``openvino``, ``onnxruntime`` …).
        options: the options to run it with (threads, device, precision, engine settings).
    """
    from modelport.model_io import write_text

    data: dict[str, Any] = {
        "format": _FORMAT,
        "artifact": Path(artifact).name,
        "runtime": runtime,
        "device": options.device,
        "threads": options.threads,
        "precision": options.precision.value,
        "engine": dict(options.engine),
    }
    return write_text(config_path(artifact), json.dumps(data, indent=2) + "\n")


def load_runtime_config(artifact: str | Path) -> tuple[str, RunnerOptions] | None:
    """The runtime and options saved beside ``artifact``; None when there is no config or it is another file's.

    Raises:
        InvalidInputError: the file is not a runtime config (bad JSON, a missing or mistyped field); the message
            names the file.
    """
    path = config_path(artifact)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _malformed(path, f"not readable JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _malformed(path, "not a JSON object")
    if data.get("artifact") != Path(artifact).name:
        if not isinstance(data.get("artifact"), str):
            raise _malformed(path, "no 'artifact' file name")
        log.debug("%s is for %s, not %s", path, data["artifact"], Path(artifact).name)
        return None
    return _runtime(data, path), _options(data, path)


def _runtime(data: dict[str, Any], path: Path) -> str:
    runtime = data.get("runtime")
    if not isinstance(runtime, str) or not runtime:
        raise _malformed(path, "no 'runtime' name")
    return runtime


def _options(data: dict[str, Any], path: Path) -> RunnerOptions:
    threads, device, engine = data.get("threads"), data.get("device", "cpu"), data.get("engine", {})
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise _malformed(path, f"'threads' must be a positive integer or null, not {threads!r}")
    if not isinstance(device, str):
        raise _malformed(path, f"'device' must be text, not {device!r}")
    if not isinstance(engine, dict) or not all(isinstance(v, (str, int)) for v in engine.values()):
        raise _malformed(path, "'engine' must be an object of setting names to values")
    try:
        precision = Precision(data.get("precision", Precision.FP32.value))
    except ValueError as exc:
        raise _malformed(path, f"unknown precision {data.get('precision')!r}") from exc
    pairs = tuple((str(k), str(v)) for k, v in engine.items())
    return RunnerOptions(threads=threads, device=device, precision=precision, engine=pairs)


def _malformed(path: Path, why: str) -> InvalidInputError:
    return InvalidInputError(
        f"{path} is not a valid runtime config: {why}",
        hint=f"fix or delete {path.name} (`modelport port` writes it again)",
        path=path,
    )
