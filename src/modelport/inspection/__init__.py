"""``inspect``: what a model file holds — inputs, outputs, opsets, ops, parameters, external data, quantization.

Each format is read by the inspector its backend names (``Backend.inspector``): ONNX
(:mod:`.onnx_model`), OpenVINO IR (:mod:`.openvino`), TFLite (:mod:`.tflite`), SavedModel (:mod:`.saved_model`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

from modelport.backends import backend_for_format, resolve
from modelport.backends.base import LoaderOptions
from modelport.errors import InvalidInputError, ModelLoadError
from modelport.formats import sniff_format
from modelport.inspection.summary import ModelSummary, QuantizedTensor, SignatureSummary

__all__ = ["ModelSummary", "QuantizedTensor", "SignatureSummary", "inspect"]

#: receives one line per step (for a progress display)
Progress: TypeAlias = Callable[[str], None]


def inspect(
    model: str | Path, *, options: LoaderOptions | None = None, progress: Progress | None = None
) -> ModelSummary:
    """Summarise a model file (ONNX, OpenVINO IR, TFLite or a SavedModel directory).

    Args:
        model: the model file or SavedModel directory.
        options: how the model is opened; ``signature`` picks the SavedModel/TFLite signature whose tensors are
            the summary's inputs and outputs (default: ``serving_default`` or the first). Its other fields concern
            sources ``inspect`` does not read (TF GraphDef, PyTorch).
        progress: called with a line per step.

    Returns:
        The summary; nothing is written (``summary.write(out_dir)`` does).

    Raises:
        ModelLoadError: missing, unreadable or unsupported file.
        InvalidInputError: ``options.signature`` names no signature of the model.
    """
    p = Path(model)
    say = progress or (lambda _msg: None)
    fmt = sniff_format(p)
    try:
        backend = backend_for_format(fmt)
    except InvalidInputError:
        backend = None
    if backend is None or backend.inspector is None:
        raise ModelLoadError(f"inspect does not read {fmt.value} models yet", path=p)
    say(f"reading {p.name} ({fmt.value})")
    summary: ModelSummary = resolve(backend.inspector)(p, fmt)
    signature = (options or LoaderOptions()).signature
    if signature is None:
        return summary
    chosen = next((s for s in summary.signatures if s.key == signature), None)
    if chosen is None:
        keys = ", ".join(s.key for s in summary.signatures) or "none"
        raise InvalidInputError(f"{p.name} has no signature {signature!r}", path=p, hint=f"its signatures: {keys}")
    return dataclasses.replace(summary, inputs=chosen.inputs, outputs=chosen.outputs)
