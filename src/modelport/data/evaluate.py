"""The one batch loop (a runner over a sample set) and the classifier evaluation built on it.

:func:`run_samples` feeds every sample through a runner and returns its outputs for all samples: a model with a
fixed batch ``B`` (its inputs' leading dim) gets batches of exactly ``B``, the last one padded by repeating its
final sample and the padded rows dropped from the outputs; a dynamic-batch model gets chunks of ``batch``.
:func:`task_metrics` turns the outputs into :class:`~modelport.data.metrics.TaskMetrics`; ``port`` and
``quantize`` both call these two, so the same runner on the same samples scores the same.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping

import numpy as np

from modelport.backends.runner import Runner
from modelport.data.metrics import TOP5_MIN_CLASSES, TaskMetrics, classifier_scores, top1_agreement, topk_accuracy
from modelport.data.samples import SampleSet, fixed_batch, padded_batches
from modelport.errors import InvalidInputError

log = logging.getLogger(__name__)

#: samples per inference call on a dynamic-batch model.
DEFAULT_BATCH = 100


def run_samples(runner: Runner, samples: SampleSet, *, batch: int = DEFAULT_BATCH) -> dict[str, np.ndarray]:
    """Every sample through ``runner``; each output concatenated along axis 0, one row per sample.

    Args:
        runner: an entered runner; its inputs decide the batch (a fixed leading dim wins over ``batch``).
        samples: one array per model input (arrays for names the model does not take are not fed).
        batch: samples per call on a dynamic-batch model.

    Returns:
        Output name → array with ``len(samples)`` rows, in the runner's output order.

    Raises:
        InvalidInputError: the samples lack one of the model's inputs, or ``batch`` < 1.
    """
    specs = runner.input_specs
    names = [s.name for s in specs]
    missing = [n for n in names if n not in samples.inputs]
    if missing:
        raise InvalidInputError(
            f"{samples.name} has no data for the model's input(s) {', '.join(missing)}",
            hint=f"the samples hold {', '.join(samples.inputs)}; the model takes {', '.join(names)}",
        )
    if set(samples.inputs) != set(names):
        samples = dataclasses.replace(samples, inputs={n: samples.inputs[n] for n in names})
    fixed = fixed_batch(specs)
    outputs = runner.output_names
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in outputs}
    for feeds, n in padded_batches(samples, fixed or batch, fixed is not None):
        out = runner.infer(feeds)
        for name in outputs:
            chunks[name].append(np.asarray(out[name])[:n])
    log.debug("ran %d samples of %s in batches of %d", len(samples), samples.name, fixed or batch)
    return {n: np.concatenate(c) for n, c in chunks.items()}


def task_metrics(
    outputs: Mapping[str, np.ndarray], samples: SampleSet, reference: Mapping[str, np.ndarray] | None = None
) -> TaskMetrics:
    """Top-1/top-5 of a classifier's ``outputs`` on labelled ``samples``, and top-1 agreement with ``reference``.

    Metrics that do not apply are None: top-k without labels or for outputs that are not one ``N×C`` score
    tensor, top-5 with fewer than :data:`~modelport.data.metrics.TOP5_MIN_CLASSES` classes, agreement without a
    reference.

    Raises:
        InvalidInputError: labels outside the classifier's classes.
    """
    scores = classifier_scores(outputs)
    top1 = top5 = agreement = None
    if scores is not None and samples.labels is not None:
        top1 = topk_accuracy(scores, samples.labels, 1)
        top5 = topk_accuracy(scores, samples.labels, 5) if scores.shape[1] >= TOP5_MIN_CLASSES else None
    if scores is not None and reference is not None:
        ref = classifier_scores(reference)
        if ref is not None and ref.shape == scores.shape:
            agreement = top1_agreement(scores, ref)
    return TaskMetrics(samples.name, len(samples), top1, top5, agreement)


def evaluate_classifier(runner: Runner, samples: SampleSet, *, batch: int = DEFAULT_BATCH) -> TaskMetrics:
    """Top-1 (and top-5 with more than 5 classes) accuracy of ``runner`` on labelled ``samples``.

    Raises:
        InvalidInputError: unlabelled samples, samples that do not fit the model, an output that is not a
            classifier's ``N×C`` scores, or labels outside its classes.
    """
    if samples.labels is None:
        raise InvalidInputError(
            f"{samples.name} has no labels: accuracy needs labelled data",
            hint="give labelled data: mnist:test, an image folder of class sub-folders, an .npz with 'labels'",
        )
    outputs = run_samples(runner, samples, batch=batch)
    if classifier_scores(outputs) is None:
        shapes = ", ".join(f"{k} {list(v.shape)} {v.dtype}" for k, v in outputs.items())
        raise InvalidInputError(
            f"accuracy needs one N×C floating-point score output; the model gives {shapes}",
            hint="evaluate classifiers only",
        )
    return task_metrics(outputs, samples)
