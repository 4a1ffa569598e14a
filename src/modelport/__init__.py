"""modelport: port trained neural networks to fast inference runtimes.

The public API is re-exported here lazily (importing ``modelport`` does not import any runtime):

    >>> import modelport
    >>> report = modelport.port("model.onnx", targets=["onnxruntime", "openvino"], out_dir="out")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "load_model": "modelport.model_io",
    "save_model": "modelport.model_io",
    "sniff_format": "modelport.formats",
    "Format": "modelport.formats",
    "inspect": "modelport.inspection",
    "open_runner": "modelport.backends",
    "get_backend": "modelport.backends",
    "Precision": "modelport.formats",
    "compare": "modelport.verify.compare",
    "Tolerance": "modelport.verify.compare",
    "bench": "modelport.benchmark.timing",
    "convert": "modelport.conversion",
    "port": "modelport.porting.pipeline",
    "doctor": "modelport.reports.environment",
    "optimize": "modelport.passes",
    "transcribe": "modelport.apps.transcribe",
    "quantize": "modelport.quantization",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelport' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
