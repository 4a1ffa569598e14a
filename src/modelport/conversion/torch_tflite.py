"""PyTorch → TFLite directly through ``litert-torch`` (Google's successor of ai-edge-torch; no TensorFlow).

``litert_torch.convert(module, sample_args).export(path)`` lowers the module with ``torch.export`` and writes a
TFLite flatbuffer whose inputs keep PyTorch's layout (NCHW stays NCHW). Sample inputs come from
``input_shapes`` like the PyTorch → ONNX route.

**Environment:** litert-torch 0.10 does not fit in the environment that holds TensorFlow, tf2onnx and onnx2tf
(it pins older ``pydantic``/``typing_extensions`` and pulls jax, torchao and its own converter), so it is
not part of any modelport extra. Install it in a separate virtual environment with torch and
``pip install litert-torch==0.10.0 ai-edge-litert`` plus modelport; in the full environment the route raises
RuntimeUnavailable saying so, and ``--via onnx`` (PyTorch → ONNX → TFLite with onnx2tf) is the alternative.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from modelport.backends.torch import load_torch_model
from modelport.conversion.base import ConversionReport, ConvertOptions, register_converter
from modelport.conversion.torch_onnx import example_inputs
from modelport.errors import ConversionError, first_line, optional_import
from modelport.formats import Format, Precision
from modelport.model_io import atomic_path

LITERT_TORCH_HINT = (
    "litert-torch does not coexist with modelport[tf]: install it in its own environment "
    "(pip install litert-torch==0.10.0 ai-edge-litert, torch, modelport), or convert with --via onnx"
)


def import_litert_torch() -> Any:
    """Import litert_torch or raise RuntimeUnavailable explaining where it can be installed."""
    return optional_import(
        "litert_torch", extra="torch", what="PyTorch → TFLite needs litert-torch, which", hint=LITERT_TORCH_HINT
    )


@register_converter(Format.TORCH, Format.TFLITE)
def tflite_from_torch(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Convert a PyTorch model to ``out_dir/<name>.tflite`` (fp32) with litert-torch."""
    litert_torch = import_litert_torch()
    if options.precision is not Precision.FP32:
        raise ConversionError(
            "litert-torch writes fp32 here", hint="for fp16 go through ONNX: --via onnx --to tflite --precision fp16"
        )
    t0 = time.perf_counter()
    module, _kind, specs = load_torch_model(src, trust_remote_code=options.trust_remote_code)
    args = tuple(example_inputs(specs, options.shapes()))
    try:
        edge = litert_torch.convert(module.eval(), args)
    except Exception as exc:  # torch.export / lowering errors of many types
        text = first_line(exc)
        raise ConversionError(f"litert-torch cannot convert the model: {text[:300]}", path=str(src)) from exc
    dst = out_dir / f"{options.name}.tflite"
    with atomic_path(dst) as tmp:
        edge.export(str(tmp))
    from importlib.metadata import version

    return ConversionReport.for_file(
        src,
        Format.TORCH,
        Format.TFLITE,
        Precision.FP32,
        dst,
        t0,
        f"litert-torch {version('litert-torch')}",
    )
