"""The tolerance policy: accepts rounding noise that scales with an output's magnitude, rejects wrong outputs."""

from __future__ import annotations

import numpy as np
import pytest

from modelport.formats import Precision
from modelport.verify.comparator import compare_outputs
from modelport.verify.metrics import compare_arrays
from modelport.verify.tolerance import Tolerance

STRICT = (Precision.FP32, Precision.FP16)


def feature_map(seed: int = 0, scale: float = 5.0, size: int = 16, channels: int = 8) -> np.ndarray:
    """A realistic NCHW activation: smooth per channel, signed, with many elements near 0."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((1, channels, size, size)) * scale).astype(np.float32)


def rounded(ref: np.ndarray, precision: Precision, seed: int = 1) -> np.ndarray:
    """``ref`` plus the noise a correct run at ``precision`` adds: a fraction of the output's peak per element."""
    rng = np.random.default_rng(seed)
    share = {Precision.FP32: 1e-6, Precision.FP16: 1e-3}[precision]
    peak = float(np.abs(ref).max())
    return (ref + rng.uniform(-1, 1, ref.shape) * share * peak).astype(ref.dtype)


# --- accept -------------------------------------------------------------------------------------------------


def test_accepts_magnitude_scaled_fp32_noise() -> None:
    """Outputs reaching ~1,000 whose near-zero elements differ by ~1e-4 (summation order): a correct conversion."""
    rng = np.random.default_rng(0)
    ref = np.concatenate([rng.uniform(-1000, 1000, 200), rng.uniform(-1e-3, 1e-3, 200)]).astype(np.float32)
    out = ref + rng.uniform(-1e-4, 1e-4, ref.shape).astype(np.float32)
    assert not compare_arrays("landmarks", ref, out, Tolerance(1e-4, 1e-5)).passed  # the old fixed rule rejects it
    m = compare_arrays("landmarks", ref, out, Tolerance.for_precision("fp32"))
    assert m.passed, m
    assert m.ref_peak == pytest.approx(float(np.abs(ref).max()))
    assert m.atol_eff == pytest.approx(1e-4 * m.ref_peak)  # the bound used scales with the output
    assert m.max_abs > 5e-5 and m.mismatch_fraction == 0.0


@pytest.mark.parametrize("precision", [*STRICT, Precision.BF16, Precision.INT8])
def test_accepts_its_own_rounding(precision: Precision) -> None:
    ref = feature_map()
    noise = Precision.FP16 if precision is not Precision.FP32 else Precision.FP32
    assert compare_arrays("y", ref, rounded(ref, noise), Tolerance.for_precision(precision)).passed


def test_all_zero_output_judged_by_atol() -> None:
    ref = np.zeros((4, 10), np.float32)
    tol = Tolerance.for_precision("fp32")
    near = compare_arrays("y", ref, np.full_like(ref, 5e-6), tol)
    assert near.passed and near.atol_eff == tol.atol  # peak 0: no scaling, and the L2 floor does not apply
    assert near.rel_l2 == np.inf  # reported, not judged: noise over nothing
    assert not compare_arrays("y", ref, np.full_like(ref, 1e-3), tol).passed


# --- reject -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", STRICT)
def test_rejects_one_channel_off_by_one_percent_of_the_range(precision: Precision) -> None:
    ref = feature_map()
    out = rounded(ref, precision)
    out[0, 3] += 0.01 * float(ref.max() - ref.min())
    m = compare_arrays("y", ref, out, Tolerance.for_precision(precision))
    assert not m.passed
    assert 0 < m.mismatch_fraction <= 1 / 8  # only inside the shifted channel


@pytest.mark.parametrize("precision", STRICT)
def test_rejects_one_channel_off_in_a_non_negative_output(precision: Precision) -> None:
    """ReLU / probability-like outputs in [0, P]: the range is the peak, so the shift is only 1 % of the peak."""
    ref = np.abs(feature_map(seed=3))
    out = rounded(ref, precision)
    out[0, 5] += 0.01 * float(ref.max() - ref.min())
    assert not compare_arrays("y", ref, out, Tolerance.for_precision(precision)).passed


@pytest.mark.parametrize("precision", list(Precision))
def test_rejects_swapped_outputs(precision: Precision) -> None:
    a, b = feature_map(seed=1), feature_map(seed=2)
    tol = Tolerance.for_precision(precision)
    same = compare_outputs({"boxes": a, "scores": b}, {"boxes": a.copy(), "scores": b.copy()}, tol)
    assert same.passed
    swapped = compare_outputs({"boxes": a, "scores": b}, {"boxes": b, "scores": a}, tol)  # same names, swapped
    assert not swapped and [o.passed for o in swapped.outputs] == [False, False]
    renamed = compare_outputs({"boxes": a, "scores": b}, {"Identity": b, "Identity_1": a}, tol)  # order only
    assert not renamed


@pytest.mark.parametrize("precision", list(Precision))
def test_rejects_a_transposed_square_map(precision: Precision) -> None:
    ref = feature_map(seed=4)
    out = np.ascontiguousarray(ref.transpose(0, 1, 3, 2))  # H ↔ W: same shape, nothing to align
    c = compare_outputs({"heatmap": ref}, {"heatmap": out}, Tolerance.for_precision(precision))
    assert not c and c.outputs[0].permutation == ()


def test_rejects_a_bias_below_a_spiky_outputs_bound_with_the_l2_floor() -> None:
    """One element at 1,000 loosens every element's bound to 0.1; a bias just below it on all the small
    elements passes the element rule, and the relative L2 floor rejects it."""
    ref = feature_map(seed=5, scale=0.5)
    ref[0, 0, 0, 0] = 1000.0
    tol = Tolerance.for_precision("fp32")
    out = ref + np.float32(0.9 * tol.scale * 1000.0)
    out[0, 0, 0, 0] = ref[0, 0, 0, 0]
    m = compare_arrays("y", ref, out, tol)
    assert m.mismatch_fraction == 0.0  # the element rule alone accepts it
    assert not m.passed and "relative L2 error" in m.note and m.rel_l2 > tol.max_rel_l2


# --- overrides, floors, printing ----------------------------------------------------------------------------


def test_with_overrides_is_the_users_rule() -> None:
    policy = Tolerance.for_precision("fp16")
    assert policy.with_overrides() is policy
    explicit = policy.with_overrides(atol=1e-3)
    assert (explicit.rtol, explicit.atol, explicit.scale, explicit.max_rel_l2) == (policy.rtol, 1e-3, 0.0, None)
    assert explicit.explicit and explicit.at_least(Precision.INT8) is explicit  # never raised to a model's precision
    only_rtol = policy.with_overrides(rtol=0.5)
    assert only_rtol.rtol == 0.5 and only_rtol.scale == policy.scale and only_rtol.max_rel_l2 is None
    ref = np.array([0.0, 100.0])
    assert not compare_arrays("y", ref, np.array([2e-3, 100.0]), explicit).passed  # atol means atol
    with pytest.raises(ValueError, match="atol must be"):
        policy.with_overrides(atol=-1.0)


def test_at_least_and_looser() -> None:
    fp32 = Tolerance.for_precision("fp32")
    assert fp32.at_least(None, Precision.FP32) is fp32
    assert fp32.at_least(Precision.INT8) == Tolerance.for_precision("int8")
    assert Tolerance.for_precision("fp16").at_least(Precision.FP32) == Tolerance.for_precision("fp16")
    assert fp32.looser(Tolerance.for_precision("fp16")) == Tolerance.for_precision("fp16")
    mixed = Tolerance(1e-3, 1e-6).looser(fp32)
    assert (mixed.rtol, mixed.atol, mixed.scale, mixed.max_rel_l2, mixed.precision) == (1e-3, 1e-5, 1e-4, None, None)


def test_printed_tolerance_shows_the_effective_bound() -> None:
    tol = Tolerance.for_precision("fp32")
    ref = {"y": np.array([1000.0, 0.0]), "z": np.array([0.05, 0.0])}
    c = compare_outputs(ref, {k: v.copy() for k, v in ref.items()}, tol)
    text = str(c.tolerance)
    assert text == "fp32: rtol=0.0001, atol_eff=0.1 (y), 1e-05 (z), rel-L2 ≤ 0.001"
    assert c.tolerance == tol  # the annotation is not part of the policy
    assert [o.atol_eff for o in c.outputs] == [pytest.approx(0.1), 1e-5]
    single = compare_outputs({"y": np.array([50.0])}, {"y": np.array([50.0])}, tol)
    assert str(single.tolerance) == "fp32: rtol=0.0001, atol_eff=0.005, rel-L2 ≤ 0.001"
    many = {f"y{i}": np.array([10.0**i]) for i in range(5)}
    assert "atol_eff=0.0001…1 over 5 outputs" in str(compare_outputs(many, many, tol).tolerance)


def test_the_l2_floor_ignores_an_error_below_the_absolute_floor() -> None:
    """A probability near 1e-5 (rms just above atol) off by 4e-8: 0.4 % of the element bound, relative L2 0.004.
    The error is below atol everywhere, so it is rounding and passes; ten times atol on the same output fails."""
    tol = Tolerance.for_precision("fp32")
    ref = np.full((1, 1), 1.1e-5, dtype=np.float32)
    tiny = compare_arrays("p", ref, ref + np.float32(4.3e-8), tol)
    assert tiny.passed and tiny.rel_l2 > tol.max_rel_l2
    big = np.full((1, 64), 1.1e-3, dtype=np.float32)
    biased = compare_arrays("p", big, big + np.float32(2e-5), tol)  # rms error 2e-5 > atol, rel-L2 0.018
    assert not biased.passed and "relative L2 error" in biased.note
