"""TFLite → OpenVINO IR directly, through OpenVINO's TFLite frontend (``openvino.convert_model`` on the .tflite).

The other route, TFLite → ONNX (tf2onnx) → OpenVINO, fails on models whose TFLite graph tf2onnx cannot read while
OpenVINO's frontend can (and the other way round); the chain planner tries this one first (one hop) and falls back
to the route through ONNX when it fails to convert or to verify (:mod:`modelport.conversion.chain`).

Weights are kept as the model stores them in fp32 (``compress_to_fp16=False``; OpenVINO's ``save_model`` would
otherwise compress them to fp16 by default) and compressed to fp16 only when fp16 is asked for, as on the ONNX
route (:mod:`modelport.conversion.openvino`). A TFLite file with fp16 or int8 weights keeps them as its frontend
reads them (dequantized constants); the chain judges the artifact at the source's own precision.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from modelport.backends.openvino import error_text, import_openvino
from modelport.conversion.base import ConversionReport, ConvertOptions, register_converter
from modelport.conversion.openvino import check_ir_precision, write_ir
from modelport.conversion.tflite_prep import openvino_stateful, prepare_tflite
from modelport.errors import ConversionError, ModelLoadError
from modelport.formats import Format, sniff_format

log = logging.getLogger(__name__)


@register_converter(Format.TFLITE, Format.OPENVINO_IR)
def openvino_from_tflite(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Convert a .tflite file to OpenVINO IR (``<name>.xml`` + ``<name>.bin``) in ``out_dir``.

    Raises:
        ModelLoadError: ``src`` is missing or not a TFLite file.
        ConversionError: a precision other than fp32/fp16, or OpenVINO's TFLite frontend refused the model (its
            first informative line, e.g. the op it cannot convert).
    """
    ov = import_openvino()
    check_ir_precision(options)
    if not src.is_file() or sniff_format(src) is not Format.TFLITE:
        raise ModelLoadError("not a TFLite file", path=src, hint="give a .tflite flatbuffer")
    t0 = time.perf_counter()
    _check_flatbuffer(src)
    with tempfile.TemporaryDirectory(prefix="modelport-tflite-") as tmp:
        prepared = prepare_tflite(src, Path(tmp))  # sparse weights, explicit state, MediaPipe ops: see tflite_prep
        try:
            model = ov.convert_model(str(prepared.path))
        except Exception as exc:  # OpenVINO's frontends raise several unrelated types
            raise ConversionError(
                f"OpenVINO's TFLite frontend cannot convert the model: {error_text(exc)}",
                path=src,
                hint="the chain also tries TFLite → ONNX → OpenVINO; `modelport convert --via onnx` forces that route",
            ) from exc
    if prepared.state:
        model = openvino_stateful(model, prepared.state)  # variables back inside: ReadValue/Assign
    engine = f"openvino {ov.get_version()} (TFLite frontend)"
    notes = ("direct: OpenVINO's TFLite frontend", *prepared.notes)
    return write_ir(ov, model, src, Format.TFLITE, out_dir, options, t0, engine, notes)


def _check_flatbuffer(src: Path) -> None:
    """Read the whole flatbuffer with TFLite's schema (the object API LiteRT ships), so a truncated or corrupt file
    is a ModelLoadError naming it rather than a frontend crash; skipped when LiteRT is not installed."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        return
    try:
        schema.ModelT.InitFromObj(schema.Model.GetRootAs(src.read_bytes(), 0))
    except Exception as exc:  # struct.error, IndexError … from reading past the end
        raise ModelLoadError(
            "not a valid TFLite flatbuffer (truncated or corrupt)", path=src, hint="export or download the model again"
        ) from exc
