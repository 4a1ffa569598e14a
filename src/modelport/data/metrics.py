"""Task metrics of a classifier: top-k accuracy and top-1 agreement, and the one result type that holds them.

Top-k. For scores ``s ∈ ℝ^{N×C}`` and labels ``y ∈ {0‥C−1}^N``, the rank of the true class of row ``i`` is

    rank_i = #{c : s_ic > s_iy} + #{c < y : s_ic = s_iy}

i.e. the number of classes ranked above it when ties go to the lower class index (the order ``np.argmax`` and a
stable descending sort use). Row ``i`` is a top-k hit when ``rank_i < k``; top-k accuracy is the mean of the hits.
Top-1 is therefore exactly ``mean(argmax(s_i) = y_i)``, and the result never depends on a sort's tie order.
A row holding NaN is a miss (its order is undefined).

Agreement of two classifiers on the same samples is ``mean(argmax(a_i) = argmax(b_i))`` over rows without NaN
(a row with NaN in either counts as a disagreement).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from modelport.errors import InvalidInputError
from modelport.reports.serialize import JsonReport

#: top-5 is reported only for classifiers with more classes than this (with ≤ 5 classes it is trivially 1).
TOP5_MIN_CLASSES = 6


@dataclasses.dataclass(frozen=True)
class TaskMetrics(JsonReport):
    """A model's quality on a sample set: what ``port`` reports per target and ``quantize`` per variant.

    Attributes:
        dataset: where the samples came from (the sample set's name).
        samples: how many were evaluated.
        top1: top-1 accuracy in [0, 1] (labelled classification data), else None.
        top5: top-5 accuracy (labelled data, more than 5 classes), else None.
        agreement: fraction of samples whose top-1 class equals a reference's (e.g. FP32's), else None.
    """

    dataset: str
    samples: int
    top1: float | None = None
    top5: float | None = None
    agreement: float | None = None


def _check_scores(scores: np.ndarray, labels: np.ndarray) -> None:
    if scores.ndim != 2 or labels.ndim != 1 or scores.shape[0] != labels.shape[0]:
        raise InvalidInputError(
            f"expected scores N×C and labels N, got {scores.shape} and {labels.shape}", hint="flatten the batch"
        )
    if scores.shape[0] == 0:
        raise InvalidInputError("accuracy of an empty batch is undefined")
    classes = scores.shape[1]
    if labels.dtype.kind not in "iu":
        raise InvalidInputError(f"labels must be integers in 0..{classes - 1}, got {labels.dtype}")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        bad = low if low < 0 else high
        raise InvalidInputError(
            f"label {bad} is out of range: the model scores {classes} classes (labels 0..{classes - 1})",
            hint="the labels do not belong to this model's classes",
        )


def label_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rank of each row's true class (0 = first; ties to the lower class index; ``C`` for a row with NaN).

    Raises:
        InvalidInputError: shapes that do not match, no rows, or labels that are not integers in ``0..C-1``.
    """
    s = np.asarray(scores)
    y = np.asarray(labels)
    _check_scores(s, y)
    rows = np.arange(len(y))
    own = s[rows, y][:, None]
    before = np.arange(s.shape[1])[None, :] < y[:, None]
    ranks = (s > own).sum(axis=1) + ((s == own) & before).sum(axis=1)
    if s.dtype.kind in "fc":
        ranks = np.where(np.isnan(s).any(axis=1), s.shape[1], ranks)
    return ranks.astype(np.int64)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of rows whose label is among the ``k`` highest scores (ties to the lower class index).

    Args:
        scores: ``N×C`` scores (logits or probabilities).
        labels: ``N`` integer labels in ``0..C-1``.
        k: how many top classes count as a hit (1 ≤ k ≤ C).

    Returns:
        Accuracy in [0, 1].

    Raises:
        InvalidInputError: shapes that do not match, no rows, labels out of range, or k out of range.
    """
    classes = np.shape(scores)[1] if np.ndim(scores) == 2 else 0
    if classes and not 1 <= k <= classes:
        raise InvalidInputError(f"k={k} must be between 1 and the number of classes ({classes})")
    return float(np.mean(label_ranks(scores, labels) < k))


def top1_agreement(scores: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of rows whose top-1 class is the same in ``scores`` and ``reference`` (NaN rows disagree).

    Raises:
        InvalidInputError: the two are not ``N×C`` arrays of the same shape, or are empty.
    """
    a, b = np.asarray(scores), np.asarray(reference)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] == 0:
        raise InvalidInputError(f"agreement needs two N×C score arrays of one shape, got {a.shape} and {b.shape}")
    same = np.argmax(a, axis=1) == np.argmax(b, axis=1)
    for x in (a, b):
        if x.dtype.kind in "fc":
            same &= ~np.isnan(x).any(axis=1)
    return float(np.mean(same))


def classifier_scores(outputs: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """The ``N×C`` scores when ``outputs`` look like a classifier's, else None.

    A classifier has one floating-point output with at least two classes; size-1 dims after the batch are
    dropped (``N×C×1×1`` and ``N×1×C`` heads count).
    """
    if len(outputs) != 1:
        return None
    scores = np.asarray(next(iter(outputs.values())))
    if scores.ndim < 2 or scores.dtype.kind != "f":
        return None
    wide = [d for d in scores.shape[1:] if d != 1]
    if len(wide) != 1 or wide[0] < 2:
        return None
    return scores.reshape(scores.shape[0], wide[0])
