"""ONNX → ONNX at another weight/compute precision (fp16), through ONNX Runtime's float16 converter.

Inputs and outputs keep their float32 type (``keep_io_types``) so the model stays a drop-in replacement;
Cast nodes at the edges convert. ONNX Runtime's CPU provider lacks fp16 kernels for many ops and inserts
casts around them, so an fp16 ONNX model is smaller but often not faster on CPU: the benchmark says which.
"""

from __future__ import annotations

import time
from pathlib import Path

import onnx

from modelport.conversion.base import ConversionReport, ConvertOptions, register_converter
from modelport.errors import ConversionError, first_line
from modelport.formats import Format, Precision
from modelport.model_io import load_proto, save_model


def _toposort(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The float16 converter appends its input Casts at the end of the node list: sort the graph."""
    import onnx_ir as ir
    from onnx_ir.passes.common import TopologicalSortPass

    model = ir.serde.deserialize_model(proto)
    TopologicalSortPass()(model)
    return ir.serde.serialize_model(model)


@register_converter(Format.ONNX, Format.ONNX)
def onnx_to_precision(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Write ``out_dir/<name>.onnx`` in ``options.precision`` (fp32: a verified copy; fp16: converted)."""
    t0 = time.perf_counter()
    proto = load_proto(src)
    if options.precision is Precision.FP16:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        try:
            proto = _toposort(convert_float_to_float16(proto, keep_io_types=True))
        except Exception as exc:  # the converter raises plain Exceptions on unsupported graphs
            raise ConversionError(f"fp16 conversion failed: {exc}", path=src) from exc
    elif options.precision is not Precision.FP32:
        raise ConversionError(
            f"ONNX precision conversion supports fp32 and fp16, not {options.precision.value}",
            hint="int8 comes from `modelport quantize`",
        )
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:  # e.g. casts the converter placed after a Loop that reads them
        raise ConversionError(
            f"the {options.precision.value} model the converter wrote is not valid ONNX: {first_line(exc)}",
            hint="keep this model at fp32 on ONNX Runtime (its fp16 converter does not handle every graph with "
            "Loop/If sub-graphs)",
            path=src,
        ) from exc
    dst = out_dir / f"{options.name}.onnx"
    save_model(proto, dst, source=src)
    return ConversionReport.for_file(
        src,
        Format.ONNX,
        Format.ONNX,
        options.precision,
        dst,
        t0,
        "onnxruntime.transformers.float16" if options.precision is Precision.FP16 else "copy",
    )
