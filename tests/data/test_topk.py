"""The one top-k (modelport.data.metrics): values, ties, k out of range, labels out of range, NaN, agreement."""

from __future__ import annotations

import numpy as np
import pytest

from modelport.data.metrics import TaskMetrics, classifier_scores, label_ranks, top1_agreement, topk_accuracy
from modelport.errors import InvalidInputError


def test_topk_values() -> None:
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]])
    labels = np.array([1, 0, 0, 1])
    assert topk_accuracy(logits, labels) == 0.5
    assert topk_accuracy(logits, labels, 2) == 0.75
    assert topk_accuracy(logits, labels, 3) == 1.0
    wide = np.tile(np.arange(10, dtype=np.float32), (3, 1))  # class 9 scores highest, class 0 lowest
    assert topk_accuracy(wide, np.array([9, 5, 4]), 5) == pytest.approx(2 / 3)


def test_ties_go_to_the_lower_class_index() -> None:
    flat = np.ones((3, 4), np.float32)  # every class tied: the order is 0, 1, 2, 3
    assert label_ranks(flat, np.array([0, 2, 3])).tolist() == [0, 2, 3]
    assert topk_accuracy(flat, np.array([0, 2, 3]), 1) == pytest.approx(1 / 3)
    assert topk_accuracy(flat, np.array([0, 2, 3]), 3) == pytest.approx(2 / 3)
    # a constant (broken) model cannot score well: only class 0 ever wins a tie
    assert topk_accuracy(np.zeros((10, 10), np.float32), np.arange(10)) == pytest.approx(0.1)
    # top-1 is argmax's choice exactly, on data full of ties, whatever the sort would do
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 3, (500, 6)).astype(np.float32)
    labels = rng.integers(0, 6, 500)
    assert topk_accuracy(scores, labels) == float(np.mean(np.argmax(scores, axis=1) == labels))
    # and top-k is monotone in k, reaching 1 at k = C
    hits = [topk_accuracy(scores, labels, k) for k in range(1, 7)]
    assert hits == sorted(hits) and hits[-1] == 1.0


def test_k_out_of_range_is_a_clear_error() -> None:
    logits = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(InvalidInputError, match=r"k=5 must be between 1 and the number of classes \(4\)"):
        topk_accuracy(logits, np.zeros(3, dtype=np.int64), 5)
    with pytest.raises(InvalidInputError, match="k=0"):
        topk_accuracy(logits, np.zeros(3, dtype=np.int64), 0)


def test_labels_out_of_range_are_a_clear_error() -> None:
    logits = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(InvalidInputError, match=r"label 4 is out of range: the model scores 4 classes \(labels 0..3\)"):
        topk_accuracy(logits, np.array([0, 4, 1]))
    with pytest.raises(InvalidInputError, match="label -1 is out of range"):
        topk_accuracy(logits, np.array([0, -1, 1]))
    with pytest.raises(InvalidInputError, match="labels must be integers"):
        topk_accuracy(logits, np.array([0.0, 1.0, 1.0]))


def test_shapes_and_empty_batches() -> None:
    with pytest.raises(InvalidInputError, match="expected scores N×C and labels N"):
        topk_accuracy(np.zeros((3, 4)), np.zeros(2, dtype=np.int64))
    with pytest.raises(InvalidInputError, match="expected scores N×C"):
        topk_accuracy(np.zeros(4), np.zeros(4, dtype=np.int64))
    with pytest.raises(InvalidInputError, match="empty"):
        topk_accuracy(np.zeros((0, 4)), np.zeros(0, dtype=np.int64))


def test_nan_rows_are_misses() -> None:
    scores = np.array([[np.nan, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, np.nan]], np.float32)
    labels = np.array([1, 1, 0])
    assert label_ranks(scores, labels).tolist() == [3, 0, 3]
    assert topk_accuracy(scores, labels, 3) == pytest.approx(1 / 3)


def test_top1_agreement() -> None:
    a = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [np.nan, 0.0]], np.float32)
    b = np.array([[0.0, 2.0], [0.0, 1.0], [0.5, 0.5], [0.0, 1.0]], np.float32)
    assert top1_agreement(a, b) == pytest.approx(0.5)  # rows 0 and 2 agree; 1 differs; the NaN row disagrees
    assert top1_agreement(b, b) == 1.0
    with pytest.raises(InvalidInputError, match="two N×C score arrays of one shape"):
        top1_agreement(a, b[:2])


def test_classifier_scores() -> None:
    n_c_1_1 = np.zeros((4, 10, 1, 1), np.float32)
    assert classifier_scores({"y": n_c_1_1}).shape == (4, 10)  # type: ignore[union-attr]
    assert classifier_scores({"y": np.zeros((4, 1, 10), np.float32)}).shape == (4, 10)  # type: ignore[union-attr]
    assert classifier_scores({"y": np.zeros((4, 10), np.int64)}) is None  # not scores
    assert classifier_scores({"y": np.zeros((4, 1), np.float32)}) is None  # one class
    assert classifier_scores({"y": np.zeros((4, 3, 5), np.float32)}) is None  # a map, not a score vector
    assert classifier_scores({"a": np.zeros((4, 3), np.float32), "b": np.zeros((4, 3), np.float32)}) is None


def test_task_metrics_round_trip_json() -> None:
    m = TaskMetrics("mnist:test", 100, 0.99, 1.0, None)
    assert TaskMetrics.from_json(m.to_json()) == m
    assert TaskMetrics("x", 3) == TaskMetrics("x", 3, None, None, None)
