"""modelport: port trained neural networks to fast inference runtimes.

The public API is re-exported here lazily (importing ``modelport`` does not import any runtime). Every verb is
a function, whatever was imported before (no subpackage shares a verb's name; ``tests/test_public_api.py``
imports every module, then calls every verb):

    >>> import modelport
    >>> options = modelport.PortOptions(targets=("onnxruntime", "openvino"))
    >>> report = modelport.port("model.onnx", "out", options=options)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: the public verbs: each is a function ``verb(model, …, *, options=…, progress=None) -> report`` (``doctor`` takes
#: no model and no options); files are written only into an ``out_dir`` argument (an app's ``out`` file: the image or
#: video it draws) or by ``report.write(…)``
VERBS: tuple[str, ...] = (
    "inspect",
    "compare",
    "bisect",
    "bench",
    "convert",
    "optimize",
    "rewrite",
    "quantize",
    "port",
    "doctor",
    "transcribe",
    "classify",
    "depth",
    "detect",
)

_EXPORTS: dict[str, str] = {
    # verbs
    "inspect": "modelport.inspection",
    "compare": "modelport.verify.compare",
    "bisect": "modelport.divergence.api",
    "bench": "modelport.benchmark.timing",
    "convert": "modelport.conversion",
    "optimize": "modelport.passes",
    "rewrite": "modelport.rewriting",
    "quantize": "modelport.quantization",
    "port": "modelport.porting.pipeline",
    "doctor": "modelport.diagnostics",
    "transcribe": "modelport.apps.transcribe",
    "classify": "modelport.apps.vision.classify",
    "depth": "modelport.apps.depth",
    "detect": "modelport.apps.detect",
    # their options
    "Tolerance": "modelport.verify.tolerance",
    "RunnerOptions": "modelport.backends.runner",
    "LoaderOptions": "modelport.backends.base",
    "CompareOptions": "modelport.verify.compare",
    "BisectOptions": "modelport.divergence.api",
    "BenchOptions": "modelport.benchmark.timing",
    "BenchConfig": "modelport.benchmark.timing",
    "ChainOptions": "modelport.conversion",
    "ConvertOptions": "modelport.conversion",
    "OptimizeOptions": "modelport.passes",
    "RewriteOptions": "modelport.rewriting",
    "RuleSettings": "modelport.rules.catalog",
    "QuantizeOptions": "modelport.quantization",
    "PortOptions": "modelport.porting.pipeline",
    "DecodeOptions": "modelport.apps.transcribe",
    "ModelOptions": "modelport.apps.transcribe",
    "ClassifyOptions": "modelport.apps.vision.classify",
    "DepthOptions": "modelport.apps.depth",
    "DetectOptions": "modelport.apps.detect",
    # building blocks
    "load_model": "modelport.model_io",
    "save_model": "modelport.model_io",
    "sniff_format": "modelport.formats",
    "Format": "modelport.formats",
    "Precision": "modelport.formats",
    "open_runner": "modelport.backends",
    "get_backend": "modelport.backends",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'modelport' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
