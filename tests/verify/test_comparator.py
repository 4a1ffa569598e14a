"""The comparator: subjects run on the same feeds, results keyed by tensor name, one frozen verdict."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import models
from modelport.backends.runner import RunnerOptions
from modelport.errors import InvalidInputError, VerificationError
from modelport.formats import Format, Precision
from modelport.verify import Comparison, Subject, Tolerance, check, run
from modelport.verify.comparator import worst_of


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("comparator")
    models.save(models.two_inputs(), d / "two.onnx")
    models.save(models.mlp(seed=0), d / "a.onnx")
    models.save(models.mlp(seed=1), d / "b.onnx")
    return d


FEEDS = {"a": np.ones((2, 3), np.float32), "b": np.full((2, 3), 2.0, np.float32)}


def test_run_and_check_two_runtimes(model_dir: Path) -> None:
    ref = run(Subject(model_dir / "two.onnx", "onnxruntime", label="ref"), FEEDS)
    cand = run(Subject(model_dir / "two.onnx", "openvino"), FEEDS)
    assert list(ref.tensors) == ["s", "p"] and ref.label == "ref" and ref.precision is Precision.FP32
    assert cand.label == "two.onnx@openvino/fp32" and cand.runner is not None and cand.runner.runtime == "openvino"
    c = check(ref, cand, Tolerance.for_precision("fp32"))
    assert isinstance(c, Comparison) and bool(c) and c.passed and c.reason() == ""
    assert c.names == ("s", "p") and c.output("p").max_abs == 0.0
    with pytest.raises(KeyError):
        c.output("nope")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.reference = "other"  # type: ignore[misc]


def test_check_named_tensors_only(model_dir: Path) -> None:
    ref = run(Subject(model_dir / "two.onnx", Format.ONNX), FEEDS)
    cand = dataclasses.replace(ref, tensors={"s": ref.tensors["s"], "p": ref.tensors["p"] + 1}, label="cand")
    assert not check(ref, cand, Tolerance())
    only_s = check(ref, cand, Tolerance(), names=["s"])
    assert only_s and only_s.names == ("s",)
    with pytest.raises(InvalidInputError, match="no output 'q'"):
        check(ref, cand, Tolerance(), names=["q"])


def test_feeds_are_paired_to_the_subjects_inputs(model_dir: Path) -> None:
    # an .npy-like feed without the model's names pairs by position
    result = run(Subject(model_dir / "two.onnx", "onnxruntime"), {"0": FEEDS["a"], "1": FEEDS["b"]})
    assert list(result.feeds) == ["a", "b"]
    np.testing.assert_array_equal(result.tensors["s"], np.full((2, 3), 3.0))


def test_failing_comparison_says_why(model_dir: Path) -> None:
    x = {"x": np.random.default_rng(0).random((2, 8), np.float32)}
    a = run(Subject(model_dir / "a.onnx", "onnxruntime"), x)
    b = run(Subject(model_dir / "b.onnx", "onnxruntime", RunnerOptions(threads=1)), x)
    c = check(a, b, Tolerance.for_precision("fp32"))
    assert not c and "output 'y' max abs error" in c.reason() and "atol_eff=" in c.reason()
    with pytest.raises(VerificationError, match=r"b\.onnx@onnxruntime/fp32 differs from a\.onnx@onnxruntime/fp32"):
        c.require()
    same = check(a, a, Tolerance.for_precision("fp32"))
    assert worst_of([same, c]) is c and worst_of([same]) is same
    assert Comparison.from_json(c.to_json()) == c
