"""Data for running and judging models: one sample container, its readers and preprocessing, one batch loop,
one set of task metrics.

- :mod:`~modelport.data.samples` — :class:`SampleSet` (inputs per name, optional labels, class names, synthetic
  flag, preprocessing text) and :func:`padded_batches`, the only place samples are cut into feeds;
- :mod:`~modelport.data.readers` — :func:`load_samples`: image folders, ``.npy``/``.npz``, built-in datasets,
  ``random``, arrays and callables;
- :mod:`~modelport.data.datasets` — MNIST and Fashion-MNIST from local packages;
- :mod:`~modelport.data.preprocess` — pixels → a model's image tensor;
- :mod:`~modelport.data.evaluate` — :func:`run_samples` (the one batch loop) and :func:`evaluate_classifier`;
- :mod:`~modelport.data.metrics` — :class:`TaskMetrics` and the one top-k.

The shipped default model lives in :mod:`modelport.assets`.
"""

from __future__ import annotations

from modelport.data.evaluate import DEFAULT_BATCH, evaluate_classifier, run_samples, task_metrics
from modelport.data.metrics import TaskMetrics, top1_agreement, topk_accuracy
from modelport.data.readers import load_samples
from modelport.data.samples import Role, SampleSet, check_samples, padded_batches

__all__ = [
    "DEFAULT_BATCH",
    "Role",
    "SampleSet",
    "TaskMetrics",
    "check_samples",
    "evaluate_classifier",
    "load_samples",
    "padded_batches",
    "run_samples",
    "task_metrics",
    "top1_agreement",
    "topk_accuracy",
]
