"""``inspect``: what a model file holds — inputs, outputs, opsets, ops, parameters, external data, quantization.

Each format is read by the inspector its backend names (``Backend.inspector``): ONNX
(:mod:`.onnx_model`), OpenVINO IR (:mod:`.openvino`), TFLite (:mod:`.tflite`), SavedModel (:mod:`.saved_model`).
"""

from __future__ import annotations

from pathlib import Path

from modelport.backends import backend_for_format, resolve
from modelport.errors import InvalidInputError, ModelLoadError
from modelport.formats import sniff_format
from modelport.inspection.summary import ModelSummary, QuantizedTensor, SignatureSummary

__all__ = ["ModelSummary", "QuantizedTensor", "SignatureSummary", "inspect"]


def inspect(path: str | Path) -> ModelSummary:
    """Summarise a model file (ONNX, OpenVINO IR, TFLite or a SavedModel directory).

    Raises:
        ModelLoadError: missing, unreadable or unsupported file.
    """
    p = Path(path)
    fmt = sniff_format(p)
    try:
        backend = backend_for_format(fmt)
    except InvalidInputError:
        backend = None
    if backend is None or backend.inspector is None:
        raise ModelLoadError(f"inspect does not read {fmt.value} models yet", path=p)
    summary: ModelSummary = resolve(backend.inspector)(p, fmt)
    return summary
