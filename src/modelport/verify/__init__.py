"""Verification: the one comparator of outputs across models and runtimes, and its tolerance policy.

* :mod:`~modelport.verify.tolerance` — :class:`Tolerance`: the magnitude-scaled policy per precision.
* :mod:`~modelport.verify.metrics` — per-tensor metrics and verdict (:func:`compare_arrays`).
* :mod:`~modelport.verify.matching` — pairing tensors by name, order and shape; layouts (NHWC ↔ NCHW).
* :mod:`~modelport.verify.precision` — the precision a model file computes in (:func:`detect_precision`).
* :mod:`~modelport.verify.comparator` — :func:`run`, :func:`check`, :class:`Comparison` (every verb uses them).
* :mod:`~modelport.verify.compare` — the ``compare`` verb (``modelport.compare``).
"""

from __future__ import annotations

from modelport.verify.comparator import Comparison, RunResult, Subject, check, compare_outputs, infer, run
from modelport.verify.metrics import OutputMetrics, compare_arrays
from modelport.verify.precision import detect_precision, loosest
from modelport.verify.tolerance import Tolerance

__all__ = [
    "Comparison",
    "OutputMetrics",
    "RunResult",
    "Subject",
    "Tolerance",
    "check",
    "compare_arrays",
    "compare_outputs",
    "detect_precision",
    "infer",
    "loosest",
    "run",
]
