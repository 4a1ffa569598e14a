"""Comparing outputs of models and runtimes.

An element passes when ``|candidate - reference| <= atol + rtol * |reference|`` (numpy's ``isclose`` rule);
NaNs must sit at the same places; integer and boolean outputs must match exactly. Per output we report the
max absolute and relative error, the mean absolute error, cosine similarity and the mismatch fraction.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from modelport.backends import open_runner, parse_backends
from modelport.backends.runner import RunnerInfo, RunnerOptions
from modelport.errors import InvalidInputError, VerificationError
from modelport.formats import Precision
from modelport.inputs import random_feeds
from modelport.reports.serialize import JsonReport

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Tolerance(JsonReport):
    """Relative and absolute tolerance (numpy ``isclose`` semantics)."""

    rtol: float = 1e-4
    atol: float = 1e-5

    @classmethod
    def for_precision(cls, precision: Precision | str) -> Tolerance:
        """Default tolerance for a target precision.

        fp32: runtimes differ only in summation order and fused kernels (≈1e-6 relative per op), so 1e-4/1e-5.
        fp16: an 11-bit mantissa rounds each op by up to 4.9e-4 relative; errors accumulate over layers: 1e-2.
        bf16: an 8-bit mantissa rounds by up to 3.9e-3 relative per op: 5e-2.
        int8: quantization is judged by task metrics; element-wise only within 0.1 + 10 %.
        """
        p = Precision(precision)
        return {
            Precision.FP32: cls(rtol=1e-4, atol=1e-5),
            Precision.FP16: cls(rtol=1e-2, atol=1e-2),
            Precision.BF16: cls(rtol=5e-2, atol=5e-2),
            Precision.INT8: cls(rtol=1e-1, atol=1e-1),
        }[p]

    def __str__(self) -> str:
        return f"rtol={self.rtol:g}, atol={self.atol:g}"


@dataclasses.dataclass(frozen=True)
class OutputMetrics(JsonReport):
    """How one output of a candidate differs from the reference."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    max_abs: float
    max_rel: float
    mean_abs: float
    cosine: float
    mismatch_fraction: float
    passed: bool
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Comparison(JsonReport):
    """One candidate against the reference, over all outputs."""

    reference: str
    candidate: str
    tolerance: Tolerance
    outputs: tuple[OutputMetrics, ...]
    runner: RunnerInfo | None = None

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def worst(self) -> OutputMetrics | None:
        return max(self.outputs, key=lambda o: (not o.passed, o.max_abs), default=None)

    def __bool__(self) -> bool:
        return self.passed

    def require(self) -> Comparison:
        """Raise VerificationError naming the worst output unless every output passed."""
        if not self.passed:
            w = self.worst
            assert w is not None
            raise VerificationError(
                f"{self.candidate} differs from {self.reference}: output {w.name!r} max abs error "
                f"{w.max_abs:.3g}, {w.mismatch_fraction:.2%} of elements outside {self.tolerance}"
                + (f" ({w.note})" if w.note else "")
            )
        return self


@dataclasses.dataclass(frozen=True)
class AccuracyReport(JsonReport):
    """Every (model, runtime) pair against the reference on the same feeds."""

    feeds: tuple[tuple[str, tuple[int, ...], str], ...]
    seed: int | None
    comparisons: tuple[Comparison, ...]
    reference_runner: RunnerInfo | None = None

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons)

    def __bool__(self) -> bool:
        return self.passed


def compare_arrays(name: str, ref: np.ndarray, out: np.ndarray, tol: Tolerance) -> OutputMetrics:
    """Metrics for one output."""
    ref = np.asarray(ref)
    out = np.asarray(out)
    if ref.shape != out.shape:
        return OutputMetrics(
            name,
            tuple(out.shape),
            str(out.dtype),
            float("inf"),
            float("inf"),
            float("inf"),
            0.0,
            1.0,
            False,
            note=f"shape {list(out.shape)} != reference {list(ref.shape)}",
        )
    if ref.size == 0:
        return OutputMetrics(name, tuple(out.shape), str(out.dtype), 0.0, 0.0, 0.0, 1.0, 0.0, True)
    exact = ref.dtype.kind in "biuUSO" and out.dtype.kind in "biuUSO"
    r = ref.astype(np.float64) if ref.dtype.kind in "biuf" else ref
    o = out.astype(np.float64) if out.dtype.kind in "biuf" else out
    if r.dtype.kind not in "f":
        equal = r == o
        frac = float(1.0 - np.mean(equal))
        return OutputMetrics(
            name,
            tuple(out.shape),
            str(out.dtype),
            float(frac > 0),
            float(frac > 0),
            frac,
            1.0 if frac == 0 else 0.0,
            frac,
            frac == 0,
        )
    nan_r, nan_o = np.isnan(r), np.isnan(o)
    nan_mismatch = nan_r != nan_o
    finite = np.isfinite(r) & np.isfinite(o)
    # an infinity matches only the same infinity; against anything else the error is infinite
    inf_mismatch = ~(finite | nan_r | nan_o) & (r != o)
    diff = np.where(finite, np.abs(np.where(finite, o, 0.0) - np.where(finite, r, 0.0)), 0.0)
    diff = np.where(inf_mismatch, np.inf, diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(finite & (np.abs(r) > 0), diff / np.abs(r), np.where(diff > 0, np.inf, 0.0))
    if exact:
        bad = (diff > 0) | nan_mismatch
    else:
        bad = (diff > tol.atol + tol.rtol * np.abs(np.where(finite, r, 0.0))) | nan_mismatch
    rv, ov = np.where(finite, r, 0.0).ravel(), np.where(finite, o, 0.0).ravel()
    nr, no = float(np.linalg.norm(rv)), float(np.linalg.norm(ov))
    cosine = float(rv @ ov / (nr * no)) if nr > 0 and no > 0 else (1.0 if nr == no else 0.0)
    frac = float(np.mean(bad))
    return OutputMetrics(
        name=name,
        shape=tuple(int(s) for s in out.shape),
        dtype=str(out.dtype),
        max_abs=float(diff.max()),
        max_rel=float(rel.max()),
        mean_abs=float(diff.mean()),
        cosine=cosine,
        mismatch_fraction=frac,
        passed=frac == 0.0,
        note=f"{int(nan_mismatch.sum())} NaN mismatches" if nan_mismatch.any() else "",
    )


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    tolerance: Tolerance,
    *,
    reference_label: str = "reference",
    candidate_label: str = "candidate",
    runner: RunnerInfo | None = None,
) -> Comparison:
    """Compare two output dicts; outputs are matched by name, or by position if the names differ."""
    ref_names = list(reference)
    cand_names = list(candidate)
    if len(ref_names) != len(cand_names):
        raise VerificationError(
            f"{candidate_label} has {len(cand_names)} outputs, {reference_label} has {len(ref_names)}"
        )
    pairs = (
        [(n, n) for n in ref_names]
        if set(ref_names) == set(cand_names)
        else list(zip(ref_names, cand_names, strict=True))
    )
    metrics = tuple(compare_arrays(rn, reference[rn], candidate[cn], tolerance) for rn, cn in pairs)
    return Comparison(reference_label, candidate_label, tolerance, metrics, runner)


@dataclasses.dataclass(frozen=True)
class Target:
    """A model on a runtime at a precision: one column of a comparison."""

    model: Path
    runtime: str
    options: RunnerOptions = RunnerOptions()

    @property
    def label(self) -> str:
        return f"{self.model.name}@{self.runtime}/{self.options.precision.value}"


def run_target(target: Target, feeds: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], RunnerInfo]:
    """Load a target, run it once on ``feeds``; returns outputs and runner info."""
    with open_runner(target.runtime, target.model, target.options) as runner:
        return runner.infer(feeds), runner.info()


def compare(
    models: Sequence[str | Path],
    runtimes: Sequence[str] | str = ("onnxruntime",),
    *,
    feeds: Mapping[str, np.ndarray] | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
    tolerance: Tolerance | None = None,
    options: RunnerOptions | None = None,
) -> AccuracyReport:
    """Run the same feeds through every (model, runtime) pair and compare each with the first pair.

    Args:
        models: one or more model files; the first on the first runtime is the reference.
        runtimes: runtime names (``"onnxruntime,openvino"`` or a list).
        feeds: inputs; random (seeded) from the reference's metadata when omitted.
        input_shapes: concrete shapes for dynamic dims of random feeds.
        seed: seed of the random feeds.
        tolerance: pass/fail bound (default: :meth:`Tolerance.for_precision` of the options' precision).
        options: runner options for every pair.

    Returns:
        An AccuracyReport; ``bool(report)`` is True when everything matched.
    """
    if not models:
        raise InvalidInputError("no model to compare")
    names = parse_backends(runtimes if isinstance(runtimes, str) else list(runtimes))
    opts = options or RunnerOptions()
    tol = tolerance or Tolerance.for_precision(opts.precision)
    targets = [Target(Path(m), rt, opts) for m in models for rt in names]
    if len(targets) < 2:
        raise InvalidInputError("nothing to compare against", hint="give two models, or two or more --runtimes")
    reference = targets[0]
    with open_runner(reference.runtime, reference.model, reference.options) as ref_runner:
        if feeds is None:
            feeds = random_feeds(ref_runner.input_specs, input_shapes, seed=seed)
        ref_out = ref_runner.infer(feeds)
        ref_info = ref_runner.info()
    comparisons = []
    for target in targets[1:]:
        log.info("running %s", target.label)
        out, info = run_target(target, feeds)
        comparisons.append(
            compare_outputs(
                ref_out, out, tol, reference_label=reference.label, candidate_label=target.label, runner=info
            )
        )
    return AccuracyReport(
        feeds=tuple((k, tuple(int(s) for s in v.shape), str(v.dtype)) for k, v in feeds.items()),
        seed=seed,
        comparisons=tuple(comparisons),
        reference_runner=ref_info,
    )
