r"""Per-tensor metrics of a candidate against its reference, and the pass/fail verdict of the tolerance policy.

For a reference :math:`r` and a candidate :math:`o` of the same shape, over the elements finite on both sides
(:math:`d = o - r`):

* max abs :math:`\max |d_i|`; mean abs :math:`\operatorname{mean} |d_i|`;
* max rel :math:`\max |d_i| / |r_i|` (∞ where :math:`r_i = 0` and :math:`d_i \ne 0`);
* cosine :math:`\frac{r \cdot o}{\lVert r\rVert\,\lVert o\rVert}` (1 when both are 0);
* relative L2 :math:`\lVert d\rVert / \lVert r\rVert` (0 when both are 0, ∞ when only :math:`r` is);
* mismatch fraction: the share of elements outside the element bound
  :math:`\text{atol}_\text{eff} + \text{rtol}\,|r_i|` (or NaN/∞ at different places);
* ``ref_peak`` :math:`\max |r_i|` and the ``atol_eff`` it gave (:mod:`modelport.verify.tolerance`).

An infinity against a different value counts as an infinite error. Integer and boolean outputs must be equal;
strings are compared for equality only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from modelport.reports.serialize import JsonReport
from modelport.verify.tolerance import Tolerance

_EXACT_KINDS = "biuUSO"


@dataclasses.dataclass(frozen=True)
class OutputMetrics(JsonReport):
    """How one tensor of a candidate differs from the reference's tensor of the same name.

    Attributes:
        name: the reference's tensor name.
        shape, dtype: the candidate's (after layout alignment).
        max_abs, max_rel, mean_abs, cosine, mismatch_fraction, rel_l2: see the module docstring.
        passed: within the element bound everywhere, and within the aggregate floor where it applies.
        note: why it failed, beyond the numbers (shape, NaNs, the floor).
        ref_peak: ``max |reference|`` over finite elements.
        atol_eff: the absolute bound used, ``max(atol, scale · ref_peak)``.
        candidate_name: the candidate's tensor name, when it differs from ``name``.
        permutation: the axes permutation applied to the candidate (its layout), ``()`` for none.
    """

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
    rel_l2: float = 0.0
    ref_peak: float = 0.0
    atol_eff: float = 0.0
    candidate_name: str = ""
    permutation: tuple[int, ...] = ()


def compare_arrays(
    name: str,
    ref: np.ndarray,
    out: np.ndarray,
    tol: Tolerance,
    *,
    candidate_name: str = "",
    permutation: tuple[int, ...] = (),
) -> OutputMetrics:
    """Metrics and verdict for one tensor (``out`` already in ``ref``'s layout)."""
    metrics = _metrics(name, np.asarray(ref), np.asarray(out), tol)
    if candidate_name in ("", name) and not permutation:
        return metrics
    return dataclasses.replace(
        metrics, candidate_name="" if candidate_name == name else candidate_name, permutation=tuple(permutation)
    )


def _metrics(name: str, ref: np.ndarray, out: np.ndarray, tol: Tolerance) -> OutputMetrics:
    shape, dtype = tuple(int(s) for s in out.shape), str(out.dtype)
    if ref.shape != out.shape:
        inf = float("inf")
        note = f"shape {list(out.shape)} != reference {list(ref.shape)}"
        return OutputMetrics(name, shape, dtype, inf, inf, inf, 0.0, 1.0, False, note, rel_l2=inf)
    if ref.size == 0:
        return OutputMetrics(name, shape, dtype, 0.0, 0.0, 0.0, 1.0, 0.0, True)
    if not (_numeric(ref.dtype) and _numeric(out.dtype)):  # strings, objects: equality only
        frac = float(1.0 - np.mean(ref == out))
        bad = float(frac > 0)
        return OutputMetrics(name, shape, dtype, bad, bad, frac, 1.0 - bad, frac, frac == 0, rel_l2=bad)
    return _float_metrics(name, ref, out, tol)


def _numeric(dtype: np.dtype) -> bool:
    """Booleans, integers and floats, including ml_dtypes' bfloat16/float8 (numpy kind "V")."""
    return dtype.kind in "biuf" or (dtype.kind == "V" and dtype.name.startswith(("bfloat", "float")))


def _float_metrics(name: str, ref: np.ndarray, out: np.ndarray, tol: Tolerance) -> OutputMetrics:
    exact = ref.dtype.kind in _EXACT_KINDS and out.dtype.kind in _EXACT_KINDS
    r, o = ref.astype(np.float64), out.astype(np.float64)
    nan_r, nan_o = np.isnan(r), np.isnan(o)
    nan_mismatch = nan_r != nan_o
    finite = np.isfinite(r) & np.isfinite(o)
    inf_mismatch = ~(finite | nan_r | nan_o) & (r != o)  # an infinity matches only the same infinity
    rz, oz = np.where(finite, r, 0.0), np.where(finite, o, 0.0)
    diff = np.where(inf_mismatch, np.inf, np.abs(oz - rz))
    peak = float(np.abs(np.where(np.isfinite(r), r, 0.0)).max())
    atol_eff = 0.0 if exact else tol.atol_for(peak)
    bound = atol_eff + (0.0 if exact else tol.rtol) * np.abs(rz)
    bad = (diff > bound) | nan_mismatch
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(np.abs(rz) > 0, diff / np.abs(rz), np.where(diff > 0, np.inf, 0.0))
    nr, no, nd = (float(np.linalg.norm(v.ravel())) for v in (rz, oz, oz - rz))
    cosine = float(rz.ravel() @ oz.ravel() / (nr * no)) if nr > 0 and no > 0 else (1.0 if nr == no else 0.0)
    rel_l2 = np.inf if inf_mismatch.any() else (nd / nr if nr > 0 else (0.0 if nd == 0 else np.inf))
    frac = float(np.mean(bad))
    notes = [f"{int(nan_mismatch.sum())} NaN mismatches"] if nan_mismatch.any() else []
    n = np.sqrt(r.size)
    floor_failed = _floor_fails(tol, exact, peak, atol_eff, nr / n, float(rel_l2), nd / n)
    if floor_failed:
        notes.append(f"relative L2 error {rel_l2:.3g} > {tol.max_rel_l2:g}")
    return OutputMetrics(
        name=name,
        shape=tuple(int(s) for s in out.shape),
        dtype=str(out.dtype),
        max_abs=float(diff.max()),
        max_rel=float(rel.max()),
        mean_abs=float(diff.mean()),
        cosine=cosine,
        mismatch_fraction=frac,
        passed=frac == 0.0 and not floor_failed,
        note="; ".join(notes),
        rel_l2=float(rel_l2),
        ref_peak=peak,
        atol_eff=atol_eff,
    )


def _floor_fails(
    tol: Tolerance, exact: bool, peak: float, atol_eff: float, rms: float, rel_l2: float, rms_error: float
) -> bool:
    """The aggregate floor, judged only where the reference stands above the noise and the error above the
    absolute floor ``atol`` (module docstring of :mod:`modelport.verify.tolerance`)."""
    if exact or tol.max_rel_l2 is None or peak <= tol.atol or rms <= atol_eff or rms_error <= tol.atol:
        return False
    return rel_l2 > tol.max_rel_l2
