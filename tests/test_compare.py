"""The comparator: per-output metrics, pass/fail rules, model/runtime comparisons and their reports."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import models
from modelport.backends.runner import RunnerOptions
from modelport.errors import InvalidInputError, VerificationError
from modelport.formats import Precision
from modelport.verify.compare import (
    AccuracyReport,
    CompareOptions,
    Tolerance,
    compare,
    compare_arrays,
    compare_outputs,
)

TOL = Tolerance(rtol=0.1, atol=0.01)
SHAPES = CompareOptions(input_shapes=(("x", (2, 8)),))


def test_metrics_hand_computed() -> None:
    ref = np.array([1.0, 2.0, -4.0, 8.0], np.float32)
    out = np.array([1.0, 2.5, -4.0, 8.4], np.float32)
    m = compare_arrays("y", ref, out, TOL)
    assert m.name == "y" and m.shape == (4,) and m.dtype == "float32"
    assert m.max_abs == pytest.approx(0.5)
    assert m.max_rel == pytest.approx(0.25)  # 0.5 / 2
    assert m.mean_abs == pytest.approx((0.5 + 0.4) / 4, rel=1e-6)
    cosine = (1 + 5 + 16 + 8 * 8.4) / (math.sqrt(1 + 4 + 16 + 64) * math.sqrt(1 + 6.25 + 16 + 8.4**2))
    assert m.cosine == pytest.approx(cosine, rel=1e-6)
    # bounds atol + rtol·|ref| = 0.11, 0.21, 0.41, 0.81: only the second element (0.5 > 0.21) is out
    assert m.mismatch_fraction == pytest.approx(0.25)
    assert not m.passed


def test_metrics_within_tolerance_pass() -> None:
    ref = np.array([[1.0, -2.0], [3.0, 100.0]])
    m = compare_arrays("y", ref, ref + np.array([[0.1, -0.2], [0.0, 9.0]]), TOL)
    assert m.passed and m.mismatch_fraction == 0.0
    assert m.max_abs == pytest.approx(9.0)
    identical = compare_arrays("y", ref, ref.copy(), Tolerance(0, 0))
    assert identical.passed and identical.max_abs == 0.0 and identical.cosine == pytest.approx(1.0)


def test_relative_error_against_zero() -> None:
    m = compare_arrays("y", np.array([0.0, 1.0]), np.array([0.001, 1.0]), TOL)
    assert m.max_rel == math.inf
    assert m.passed  # 0.001 ≤ atol
    assert compare_arrays("y", np.zeros(3), np.zeros(3), TOL).max_rel == 0.0


def test_opposite_vectors_cosine() -> None:
    m = compare_arrays("y", np.array([1.0, 2.0]), np.array([-1.0, -2.0]), TOL)
    assert m.cosine == pytest.approx(-1.0)
    assert not m.passed


def test_nan_at_same_places_passes() -> None:
    ref = np.array([1.0, np.nan, 3.0], np.float32)
    m = compare_arrays("y", ref, np.array([1.0, np.nan, 3.0], np.float32), Tolerance(0, 0))
    assert m.passed and m.max_abs == 0.0 and m.note == ""


def test_nan_at_different_places_fails() -> None:
    ref = np.array([1.0, np.nan, 3.0])
    m = compare_arrays("y", ref, np.array([np.nan, 2.0, 3.0]), TOL)
    assert not m.passed
    assert m.mismatch_fraction == pytest.approx(2 / 3)
    assert m.note == "2 NaN mismatches"
    assert not compare_arrays("y", np.array([1.0, 2.0]), np.array([1.0, np.nan]), TOL).passed


def test_infinities() -> None:
    ref = np.array([np.inf, -np.inf, 1.0])
    same = compare_arrays("y", ref, ref.copy(), Tolerance(0, 0))
    assert same.passed
    assert (same.max_abs, same.max_rel, same.mean_abs) == (0.0, 0.0, 0.0)
    assert not math.isnan(same.cosine)
    flipped = compare_arrays("y", ref, np.array([-np.inf, -np.inf, 1.0]), TOL)
    assert not flipped.passed and flipped.mismatch_fraction == pytest.approx(1 / 3)
    finite = compare_arrays("y", ref, np.array([1e30, -np.inf, 1.0]), TOL)
    assert not finite.passed and finite.mismatch_fraction == pytest.approx(1 / 3)


def test_integer_outputs_are_exact() -> None:
    ref = np.array([1, 2, 3], np.int64)
    loose = Tolerance(rtol=1.0, atol=10.0)  # ignored for integers
    m = compare_arrays("ids", ref, np.array([1, 2, 4], np.int64), loose)
    assert not m.passed
    assert m.mismatch_fraction == pytest.approx(1 / 3)
    assert m.max_abs == 1.0
    assert compare_arrays("ids", ref, ref.copy(), Tolerance(0, 0)).passed
    flags = np.array([True, False])
    assert compare_arrays("mask", flags, flags.copy(), loose).passed
    assert not compare_arrays("mask", flags, ~flags, loose).passed


def test_shape_mismatch_fails() -> None:
    m = compare_arrays("y", np.zeros((2, 3)), np.zeros((3, 2)), Tolerance(1, 1))
    assert not m.passed
    assert m.mismatch_fraction == 1.0
    assert "shape [3, 2] != reference [2, 3]" in m.note


def test_empty_outputs_pass() -> None:
    assert compare_arrays("y", np.zeros((0, 4)), np.zeros((0, 4)), Tolerance(0, 0)).passed


def test_compare_outputs_by_position_and_count() -> None:
    ref = {"a": np.ones(2), "b": np.zeros(2)}
    c = compare_outputs(ref, {"out0": np.ones(2), "out1": np.ones(2)}, TOL, candidate_label="cand")
    assert [o.name for o in c.outputs] == ["a", "b"]
    assert [o.passed for o in c.outputs] == [True, False]
    assert c.worst is not None and c.worst.name == "b"
    with pytest.raises(VerificationError, match="cand has 1 outputs, reference has 2"):
        compare_outputs(ref, {"a": np.ones(2)}, TOL, candidate_label="cand")


def test_require_names_the_output() -> None:
    c = compare_outputs({"logits": np.ones(4)}, {"logits": np.array([1, 1, 1, 2.0])}, TOL, candidate_label="m.xml")
    assert not c and not c.passed
    with pytest.raises(VerificationError, match=r"m\.xml differs from reference: output 'logits' max abs error 1"):
        c.require()
    ok = compare_outputs({"logits": np.ones(4)}, {"logits": np.ones(4)}, TOL)
    assert ok.require() is ok


def test_tolerance_for_precision() -> None:
    fp32 = Tolerance.for_precision("fp32")
    assert (fp32.rtol, fp32.atol, fp32.scale, fp32.precision) == (1e-4, 1e-5, 1e-4, Precision.FP32)
    assert Tolerance.for_precision(Precision.FP16).atol > fp32.atol
    assert Tolerance.for_precision("bf16").rtol > Tolerance.for_precision("fp16").rtol
    assert Tolerance.for_precision("int8").scale > Tolerance.for_precision("fp16").scale > fp32.scale
    assert str(Tolerance(1e-4, 1e-5)) == "rtol=0.0001, atol=1e-05"  # explicit values: numpy's isclose rule
    assert str(fp32) == "fp32: rtol=0.0001, atol=max(1e-05, 0.0001·max|ref|), rel-L2 ≤ 0.001"


# --- compare() on models -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("compare")
    models.save(models.mlp(seed=0), d / "a.onnx")
    models.save(models.mlp(seed=1), d / "b.onnx")
    models.save(models.two_inputs(), d / "two.onnx")
    return d


def test_compare_runtimes_pass(model_dir: Path) -> None:
    options = CompareOptions(input_shapes=(("x", (3, 8)),), seed=4)
    report = compare([model_dir / "a.onnx"], "onnxruntime,openvino", options=options)
    assert report.seed == 4
    assert report and report.passed
    assert report.feeds == (("x", (3, 8), "float32"),)
    (c,) = report.comparisons
    assert c.reference == "a.onnx@onnxruntime/fp32"
    assert c.candidate == "a.onnx@openvino/fp32"
    assert c.tolerance == Tolerance.for_precision("fp32")
    assert c.max_abs <= 1e-5
    assert c.runner is not None and c.runner.runtime == "openvino" and c.runner.executed_precision == "fp32"
    assert report.reference_runner is not None and report.reference_runner.runtime == "onnxruntime"


def test_compare_fixed_shapes_no_input_shape_needed(model_dir: Path) -> None:
    report = compare([model_dir / "two.onnx"], ["onnxruntime", "openvino"])
    assert report.passed
    assert [o.name for o in report.comparisons[0].outputs] == ["s", "p"]


def test_compare_different_models_fails(model_dir: Path) -> None:
    report = compare([model_dir / "a.onnx", model_dir / "b.onnx"], "onnxruntime", options=SHAPES)
    assert not report
    (c,) = report.comparisons
    assert c.candidate == "b.onnx@onnxruntime/fp32"
    with pytest.raises(VerificationError, match="output 'y'"):
        c.require()


def test_compare_given_feeds(model_dir: Path) -> None:
    x = np.ones((1, 8), np.float32)
    report = compare([model_dir / "a.onnx"], "onnxruntime,openvino", feeds={"x": x})
    assert report.passed and report.feeds == (("x", (1, 8), "float32"),)


def test_compare_bf16_uses_bf16_tolerance(model_dir: Path) -> None:
    options = CompareOptions(RunnerOptions(precision=Precision.BF16), input_shapes=(("x", (4, 8)),))
    report = compare([model_dir / "a.onnx"], "openvino,onnxruntime", options=options)
    assert report.comparisons[0].tolerance == Tolerance.for_precision("bf16")
    assert report.passed


def test_compare_needs_two_targets(model_dir: Path) -> None:
    with pytest.raises(InvalidInputError, match="nothing to compare against"):
        compare([model_dir / "a.onnx"], "onnxruntime")
    with pytest.raises(InvalidInputError, match="no model"):
        compare([], "onnxruntime,openvino")


def test_compare_dynamic_dim_gets_the_verification_size(model_dir: Path) -> None:
    """A free batch gets the size convert verifies at first (1); --input-shape only narrows."""
    report = compare([model_dir / "a.onnx"], "onnxruntime,openvino")
    assert report.passed and report.feeds == (("x", (1, 8), "float32"),)


def test_compare_models_in_different_formats_each_on_a_runtime_that_reads_it(model_dir: Path, tmp_path: Path) -> None:
    """``a.onnx a.xml -r onnxruntime``: the IR runs on OpenVINO (its native runtime), not on ONNX Runtime."""
    import openvino as ov

    xml = tmp_path / "a.xml"
    ov.save_model(ov.convert_model(str(model_dir / "a.onnx")), str(xml), compress_to_fp16=False)
    report = compare([model_dir / "a.onnx", xml], "onnxruntime")
    (c,) = report.comparisons
    assert c.candidate == "a.xml@openvino/fp32" and report.passed
    both = compare([model_dir / "a.onnx", xml], "onnxruntime,openvino")
    assert [c.candidate for c in both.comparisons] == ["a.onnx@openvino/fp32", "a.xml@openvino/fp32"]


def test_accuracy_report_json_round_trip(model_dir: Path) -> None:
    report = compare([model_dir / "a.onnx", model_dir / "b.onnx"], "onnxruntime,openvino", options=SHAPES)
    assert len(report.comparisons) == 3
    text = report.to_json()
    again = AccuracyReport.from_json(text)
    assert again == report
    assert again.to_json() == text
    # a shape mismatch carries infinite errors, which JSON must hold too
    odd = compare_outputs({"y": np.zeros(2)}, {"y": np.zeros(3)}, TOL)
    round_trip = AccuracyReport(feeds=(), seed=None, comparisons=(odd,))
    assert AccuracyReport.from_json(round_trip.to_json()) == round_trip


def test_compare_reports_progress_and_writes_only_when_asked(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    lines: list[str] = []
    report = compare([model_dir / "a.onnx"], "onnxruntime,openvino", options=SHAPES, progress=lines.append)
    assert lines == ["running the reference a.onnx@onnxruntime/fp32", "running a.onnx@openvino/fp32"]
    assert not list(tmp_path.iterdir())
    path = report.write(tmp_path / "out")
    assert path == tmp_path / "out" / "compare.json"
    assert AccuracyReport.from_json(path.read_text(encoding="utf-8")) == report
