"""INT8 quantization per runtime, calibrated on real data and measured against FP32 (``modelport quantize``).

    >>> import modelport
    >>> report = modelport.quantize("model.onnx", "out", runtime="openvino", calib="images/", eval="val/")
    >>> report.drop, report.int8.speedup

Engines are imported only when used: :mod:`~modelport.quantize.ort` (ONNX Runtime),
:mod:`~modelport.quantize.openvino` (NNCF), :mod:`~modelport.quantize.tflite` (LiteRT).
"""

from __future__ import annotations

import sys
import types
from typing import Any

from modelport.quantize.api import DEFAULT_MAX_DROP, quantize
from modelport.quantize.calibration import SampleSet, load_samples
from modelport.quantize.options import CalibrationMethod, Mode, QuantizeOptions, QuantTypes
from modelport.quantize.report import AccuracyDropError, DataInfo, LayerSummary, Metric, QuantizeReport, VariantResult

__all__ = [
    "DEFAULT_MAX_DROP",
    "AccuracyDropError",
    "CalibrationMethod",
    "DataInfo",
    "LayerSummary",
    "Metric",
    "Mode",
    "QuantTypes",
    "QuantizeOptions",
    "QuantizeReport",
    "SampleSet",
    "VariantResult",
    "load_samples",
    "quantize",
]


class _CallableModule(types.ModuleType):
    """``modelport.quantize`` is both this package and the function: importing a submodule (``modelport.quantize.ort``)
    rebinds the package attribute ``modelport.quantize`` to the module, so the module itself must be callable."""

    def __call__(self, *args: Any, **kwargs: Any) -> QuantizeReport:
        return quantize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
