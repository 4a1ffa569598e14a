"""ONNX → OpenVINO IR through ``openvino.convert_model`` and ``openvino.save_model``.

fp16 compresses the weights to half precision in the .bin (``compress_to_fp16``); the CPU plugin decompresses
them and executes in the inference precision hint, so an fp16 IR on CPU computes in f32 with rounded
weights (≈ 2⁻¹¹ relative error per weight).
"""

from __future__ import annotations

import time
from pathlib import Path

from modelport.backends.openvino import error_text, import_openvino
from modelport.conversion.base import ConversionReport, ConvertOptions, files_size, register_converter
from modelport.errors import ConversionError
from modelport.formats import Format, Precision
from modelport.model_io import atomic_files, load_proto


@register_converter(Format.ONNX, Format.OPENVINO_IR)
def openvino_from_onnx(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Convert an ONNX file to OpenVINO IR (``<name>.xml`` + ``<name>.bin``) in ``out_dir``."""
    ov = import_openvino()
    if options.precision not in (Precision.FP32, Precision.FP16):
        raise ConversionError(
            f"OpenVINO IR weights can be fp32 or fp16, not {options.precision.value}",
            hint="bf16 is an execution precision: convert to fp32 and run with --precision bf16",
        )
    t0 = time.perf_counter()
    load_proto(src, check=False, load_external_data=False)  # a broken file: ModelLoadError, not frontend noise
    try:
        model = ov.convert_model(str(src))
    except Exception as exc:  # OpenVINO's frontends raise several unrelated types
        raise ConversionError(f"OpenVINO cannot convert the model: {error_text(exc)}", path=src) from exc
    xml_name = f"{options.name}.xml"
    with atomic_files(out_dir) as staging:
        ov.save_model(model, str(staging / xml_name), compress_to_fp16=options.precision is Precision.FP16)
    files = [out_dir / xml_name, out_dir / f"{options.name}.bin"]
    return ConversionReport(
        source=str(src),
        source_format=Format.ONNX,
        target_format=Format.OPENVINO_IR,
        precision=options.precision,
        artifact=str(out_dir / xml_name),
        files=tuple(str(f) for f in files if f.exists()),
        size_bytes=files_size(files),
        seconds=time.perf_counter() - t0,
        engine=f"openvino {ov.get_version()}",
    )
