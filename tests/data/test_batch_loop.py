"""The one batch loop (modelport.data.evaluate.run_samples) and the classifier evaluation built on it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

import models
from modelport.backends import open_runner
from modelport.backends.runner import Runner, RunnerInfo
from modelport.data.evaluate import evaluate_classifier, run_samples, task_metrics
from modelport.data.samples import SampleSet, padded_batches
from modelport.errors import InvalidInputError
from modelport.inputs import TensorSpec


class RecordingRunner(Runner):
    """Scores = the input's row sums times (1, 2, 3); records the batch sizes and feeds it was given."""

    name = "recording"

    def __init__(self, batch: int | None) -> None:
        super().__init__("recording.onnx")
        self._batch = batch
        self.calls: list[dict[str, np.ndarray]] = []

    def load(self) -> None:
        self._inputs = [TensorSpec("x", "float32", (self._batch if self._batch else "N", 2))]
        self._outputs = ["scores"]

    def info(self) -> RunnerInfo:
        return RunnerInfo("recording", "0", "cpu", "fp32", "fp32", None)

    def _run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        self.calls.append(dict(feeds))
        total = feeds["x"].sum(axis=1, keepdims=True)
        return [total * np.array([[1.0, 2.0, 3.0]], np.float32)]


def _rows(n: int) -> SampleSet:
    x = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
    return SampleSet("rows", {"x": x}, labels=np.full(n, 2))


def test_fixed_batch_pads_the_last_chunk_and_drops_the_padding() -> None:
    samples = _rows(5)
    with RecordingRunner(batch=2) as runner:
        out = run_samples(runner, samples, batch=100)  # the model's fixed batch wins over the asked one
    assert [len(c["x"]) for c in runner.calls] == [2, 2, 2]
    np.testing.assert_array_equal(runner.calls[-1]["x"], samples.inputs["x"][[4, 4]])  # last sample repeated
    assert out["scores"].shape == (5, 3)
    np.testing.assert_array_equal(out["scores"][:, 0], samples.inputs["x"].sum(axis=1))


def test_dynamic_batch_is_chunked_without_padding() -> None:
    samples = _rows(7)
    with RecordingRunner(batch=None) as runner:
        out = run_samples(runner, samples, batch=3)
    assert [len(c["x"]) for c in runner.calls] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([c["x"] for c in runner.calls]), samples.inputs["x"])
    assert out["scores"].shape == (7, 3)
    with RecordingRunner(batch=None) as runner, pytest.raises(InvalidInputError, match="batch must be ≥ 1"):
        run_samples(runner, samples, batch=0)


def test_padded_batches_yields_real_counts() -> None:
    samples = SampleSet("s", {"x": np.arange(5, dtype=np.float32)[:, None]})
    batches = list(padded_batches(samples, 2, fixed=True))
    assert [n for _, n in batches] == [2, 2, 1]
    assert batches[-1][0]["x"].tolist() == [[4.0], [4.0]]  # the last sample repeated to the fixed batch
    assert [n for _, n in padded_batches(samples, 2, fixed=False)] == [2, 2, 1]
    assert len(list(padded_batches(samples, 2, fixed=False))[-1][0]["x"]) == 1


def test_multi_input_fixed_batch_model_in_onnxruntime(tmp_path: Path) -> None:
    path = models.save(models.two_inputs(), tmp_path / "two.onnx")  # a[2,3], b[2,3] → s = a + b, p = a · b
    rng = np.random.default_rng(0)
    a, b = rng.random((5, 3), dtype=np.float32), rng.random((5, 3), dtype=np.float32)
    extra = np.zeros((5, 7), np.float32)  # an array the model does not take is not fed
    samples = SampleSet("pairs", {"b": b, "a": a, "unused": extra})
    with open_runner("onnxruntime", path) as runner:
        out = run_samples(runner, samples)
        assert list(out) == ["s", "p"]
        np.testing.assert_allclose(out["s"], a + b, rtol=1e-6)
        np.testing.assert_allclose(out["p"], a * b, rtol=1e-6)
        with pytest.raises(InvalidInputError, match=r"has no data for the model's input\(s\) b"):
            run_samples(runner, SampleSet("only-a", {"a": a}))


def test_evaluate_classifier_on_a_fixed_batch_model(tmp_path: Path) -> None:
    proto = models.fixed_batch_mlp(2)
    path = models.save(proto, tmp_path / "fixed.onnx")
    x = np.random.default_rng(3).standard_normal((5, 8)).astype(np.float32)
    logits = models.mlp_reference(x, proto)
    labels = np.argmax(logits, axis=1)
    labels[0] = np.argmin(logits[0])  # one wrong label: top-1 is 4/5
    with open_runner("onnxruntime", path) as runner:
        result = evaluate_classifier(runner, SampleSet("toy", {"x": x}, labels))
        assert (result.dataset, result.samples) == ("toy", 5)
        assert result.top1 == pytest.approx(0.8)
        assert result.top5 is None and result.agreement is None  # only 4 classes; no reference
        with pytest.raises(InvalidInputError, match="toy has no labels"):
            evaluate_classifier(runner, SampleSet("toy", {"x": x}))
        with pytest.raises(InvalidInputError, match="no data for the model's input"):
            evaluate_classifier(runner, SampleSet("toy", {"image": x}, labels))
        with pytest.raises(InvalidInputError, match="label 7 is out of range"):
            evaluate_classifier(runner, SampleSet("toy", {"x": x}, np.array([0, 1, 2, 3, 7])))
    with pytest.raises(InvalidInputError, match="labels for"):
        SampleSet("toy", {"x": x}, labels[:3])


def test_evaluate_classifier_refuses_outputs_that_are_not_scores(tmp_path: Path) -> None:
    path = models.save(models.two_inputs(), tmp_path / "two.onnx")
    samples = SampleSet(
        "pairs", {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}, np.zeros(2, np.int64)
    )
    with open_runner("onnxruntime", path) as runner, pytest.raises(InvalidInputError, match="one N×C floating-point"):
        evaluate_classifier(runner, samples)


def test_task_metrics_with_a_reference() -> None:
    samples = SampleSet("s", {"x": np.zeros((4, 1), np.float32)}, np.array([0, 1, 1, 0]))
    ref = {"y": np.array([[1, 0], [0, 1], [0, 1], [1, 0]], np.float32)}
    out = {"y": np.array([[1, 0], [0, 1], [1, 0], [1, 0]], np.float32)}
    m = task_metrics(out, samples, reference=ref)
    assert (m.top1, m.top5, m.agreement) == (0.75, None, 0.75)
    unlabelled = SampleSet("u", samples.inputs)
    m = task_metrics(out, unlabelled, reference=ref)
    assert (m.top1, m.agreement, m.samples) == (None, 0.75, 4)
    two = task_metrics({"a": out["y"], "b": out["y"]}, samples, reference=ref)  # not one score output
    assert (two.top1, two.agreement) == (None, None)
    with pytest.raises(InvalidInputError, match="label 2 is out of range"):
        task_metrics(out, SampleSet("s", samples.inputs, np.array([0, 1, 2, 0])))
