"""INT8 quantization per runtime, calibrated on real data and measured against FP32 (``modelport quantize``).

    >>> import modelport
    >>> report = modelport.quantize("model.onnx", "out", runtime="openvino", calib="images/", eval="val/")
    >>> report.drop, report.int8.speedup

Engines are imported only when used: :mod:`~modelport.quantization.ort` (ONNX Runtime),
:mod:`~modelport.quantization.openvino` (NNCF), :mod:`~modelport.quantization.tflite` (LiteRT).
"""

from __future__ import annotations

from modelport.data import SampleSet, TaskMetrics, load_samples
from modelport.quantization.api import DEFAULT_MAX_DROP, quantize
from modelport.quantization.options import CalibrationMethod, Mode, QuantizeOptions, QuantTypes
from modelport.quantization.report import (
    AccuracyDropError,
    DataInfo,
    LayerSummary,
    QuantizeReport,
    VariantResult,
)

__all__ = [
    "DEFAULT_MAX_DROP",
    "AccuracyDropError",
    "CalibrationMethod",
    "DataInfo",
    "LayerSummary",
    "Mode",
    "QuantTypes",
    "QuantizeOptions",
    "QuantizeReport",
    "SampleSet",
    "TaskMetrics",
    "VariantResult",
    "load_samples",
    "quantize",
]
