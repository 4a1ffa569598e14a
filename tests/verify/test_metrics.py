"""Per-tensor metrics under the tolerance policy: NaN, infinities, integers, strings, bfloat16, JSON."""

from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest

from modelport.verify.metrics import OutputMetrics, compare_arrays
from modelport.verify.tolerance import Tolerance

POLICY = Tolerance.for_precision("fp32")


def test_metrics_hand_computed_with_the_policy() -> None:
    ref = np.array([100.0, -50.0, 0.0, 1.0], np.float32)
    out = np.array([100.0, -50.0, 0.009, 1.0], np.float32)
    m = compare_arrays("y", ref, out, POLICY)
    assert m.ref_peak == 100.0 and m.atol_eff == pytest.approx(0.01)  # max(1e-5, 1e-4 · 100)
    assert m.passed and m.max_abs == pytest.approx(0.009) and m.max_rel == math.inf  # 0.009 against 0
    assert m.rel_l2 == pytest.approx(0.009 / math.sqrt(100**2 + 50**2 + 1), rel=1e-5)
    worse = compare_arrays("y", ref, np.array([100.0, -50.0, 0.011, 1.0], np.float32), POLICY)
    assert not worse.passed and worse.mismatch_fraction == 0.25


def test_nan_must_sit_at_the_same_places() -> None:
    ref = np.array([1.0, np.nan, 3.0])
    assert compare_arrays("y", ref, ref.copy(), POLICY).passed
    m = compare_arrays("y", ref, np.array([np.nan, 2.0, 3.0]), POLICY)
    assert not m.passed and m.note == "2 NaN mismatches" and m.mismatch_fraction == pytest.approx(2 / 3)
    assert m.ref_peak == 3.0  # NaNs do not make the peak (or the bound) NaN


def test_infinities_match_only_themselves() -> None:
    ref = np.array([np.inf, -np.inf, 2.0])
    same = compare_arrays("y", ref, ref.copy(), POLICY)
    assert same.passed and same.ref_peak == 2.0 and same.atol_eff == pytest.approx(2e-4)
    flipped = compare_arrays("y", ref, np.array([-np.inf, -np.inf, 2.0]), POLICY)
    assert not flipped.passed and flipped.max_abs == math.inf and flipped.rel_l2 == math.inf
    finite = compare_arrays("y", ref, np.array([1e30, -np.inf, 2.0]), POLICY)
    assert not finite.passed and finite.mismatch_fraction == pytest.approx(1 / 3)


def test_integer_and_boolean_outputs_are_exact_whatever_the_policy() -> None:
    loose = Tolerance.for_precision("int8")
    ids = np.array([7, 2, 1000], np.int64)
    m = compare_arrays("ids", ids, np.array([7, 2, 1001], np.int64), loose)  # 0.1 % of the peak: still wrong
    assert not m.passed and m.atol_eff == 0.0 and m.max_abs == 1.0 and m.mismatch_fraction == pytest.approx(1 / 3)
    assert compare_arrays("ids", ids, ids.copy(), loose).passed
    mask = np.array([True, False, True])
    assert compare_arrays("mask", mask, mask.copy(), loose).passed
    assert not compare_arrays("mask", mask, ~mask, loose).passed


def test_strings_compare_for_equality() -> None:
    labels = np.array(["cat", "dog"])
    assert compare_arrays("label", labels, labels.copy(), POLICY).passed
    m = compare_arrays("label", labels, np.array(["cat", "cow"]), POLICY)
    assert not m.passed and m.mismatch_fraction == 0.5


def test_bfloat16_outputs_are_numbers() -> None:
    ref = np.linspace(-4, 4, 64, dtype=np.float32)
    out = ref.astype(ml_dtypes.bfloat16)
    m = compare_arrays("y", ref, out, Tolerance.for_precision("bf16"))
    assert m.passed and 0 < m.max_abs <= 4 * 2**-8 and m.dtype == "bfloat16"
    assert not compare_arrays("y", ref, out, Tolerance.for_precision("fp32")).passed


def test_shape_mismatch_and_empty() -> None:
    m = compare_arrays("y", np.zeros((2, 3)), np.zeros((3, 2)), POLICY)
    assert not m.passed and "shape [3, 2] != reference [2, 3]" in m.note
    assert compare_arrays("y", np.zeros((0, 4)), np.zeros((0, 4)), POLICY).passed


def test_metrics_json_round_trip() -> None:
    m = compare_arrays("y", np.array([1.0, 2.0]), np.array([1.0, np.inf]), POLICY, candidate_name="Identity")
    assert m.candidate_name == "Identity"
    again = OutputMetrics.from_json(m.to_json())
    assert again == m and again.max_abs == math.inf
