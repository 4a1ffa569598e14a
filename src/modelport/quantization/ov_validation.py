"""NNCF validation functions for OpenVINO's accuracy-controlled INT8 (:func:`modelport.quantization.openvino`):
top-1 on labelled data, or agreement with the FP32 outputs when there are no labels (:class:`Agreement`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelport.backends.openvino import import_openvino
from modelport.data.samples import SampleSet
from modelport.quantization.feeds import batches
from modelport.verify.tolerance import Tolerance


def top1_validation(compiled: Any, data: Any) -> tuple[float, list[float]]:
    """NNCF validation function: top-1 over the items, and each item's accuracy (for ranking layers)."""
    per_item: list[float] = []
    total = 0
    hits = 0.0
    output = compiled.outputs[0]
    for feeds, labels, n in data:
        logits = np.asarray(compiled(feeds)[output])[:n].reshape(n, -1)
        correct = (np.argmax(logits, axis=1) == labels).astype(np.float64)
        per_item.append(float(correct.mean()))
        hits += float(correct.sum())
        total += n
    return hits / max(total, 1), per_item


#: evaluation items NNCF's agreement-driven accuracy control runs on (each ranking step runs a subset of them).
AGREEMENT_ITEMS = 16
#: items of that set each ranking step evaluates, and the most layers (groups) it may return to float.
RANKING_ITEMS = 8
MAX_REVERTED = 12
#: accuracy control stops when min over items of 1/(1 + ρ) ≥ 1 − AGREEMENT_DROP, ρ the worst ratio of an item's
#: error to the int8 bound (see :class:`Agreement`): 0.35 ⇔ ρ ≤ 0.54, a margin below the tolerance's own ρ ≤ 1
#: for inputs unlike the evaluation samples (measured: at 0.45, ρ ≤ 0.82, silero-vad v6 failed at another chunk size).
AGREEMENT_DROP = 0.35


class Agreement:
    r"""An NNCF validation function scoring agreement with FP32: 1 for FP32 itself, falling with the error.

    For evaluation item :math:`j` and output :math:`k` with FP32 reference :math:`r` and candidate :math:`o`, with
    the int8 tolerance's :math:`\text{atol}_\text{eff} = \max(\text{atol}, s P_k)` (:math:`P_k` the FP32 peak
    of output :math:`k` over every item, as the comparator computes it),

    .. math::

        \rho_{jk} = \max\Big(\max_i \frac{|o_i - r_i|}{\text{atol}_\text{eff} + \text{rtol}|r_i|},\
        \frac{\lVert o - r\rVert_2}{e_\text{max} \lVert r\rVert_2}\Big), \qquad
        \text{score}_j = \frac{1}{1 + \max_k \rho_{jk}}

    (the L2 term only where the comparator judges it: above the noise). :math:`\rho \le 1` is the comparator's
    pass; the metric is the minimum score over the items, so a drop ≤ 0.5 means every item passes. Integer outputs
    score 0 unless equal. The reciprocal never saturates, so NNCF can rank layers however large the error is.
    """

    def __init__(self, reference: list[list[np.ndarray]], tolerance: Tolerance) -> None:
        self.reference = reference
        self.tol = tolerance
        outputs = len(reference[0]) if reference else 0
        self.peak = [self._peak(k) for k in range(outputs)]

    def _peak(self, k: int) -> float:
        finite = [np.abs(r[k][np.isfinite(r[k])]) for r in self.reference if r[k].dtype.kind == "f"]
        return max((float(f.max()) for f in finite if f.size), default=0.0)

    def ratio(self, k: int, ref: np.ndarray, out: np.ndarray) -> float:
        """ρ of one output of one item (NaN must meet NaN, an infinity the same infinity)."""
        if ref.shape != out.shape:
            return float("inf")
        if ref.dtype.kind != "f":
            return 0.0 if np.array_equal(ref, out) else float("inf")
        ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
        same = (ref64 == out64) | (np.isnan(ref64) & np.isnan(out64))
        diff = np.where(np.isfinite(ref64) & np.isfinite(out64), out64 - ref64, np.where(same, 0.0, np.inf))
        if diff.size == 0:
            return 0.0
        atol = max(self.tol.atol, self.tol.scale * self.peak[k])
        rho = float(np.max(np.abs(diff) / (atol + self.tol.rtol * np.abs(np.nan_to_num(ref64)))))
        finite = np.isfinite(ref64)
        rms_ref = float(np.sqrt(np.mean(ref64[finite] ** 2))) if finite.any() else 0.0
        rms_diff = float(np.sqrt(np.mean(diff**2)))
        if self.tol.max_rel_l2 and self.peak[k] > self.tol.atol and rms_ref > atol and rms_diff > self.tol.atol:
            rho = max(rho, rms_diff / (rms_ref * self.tol.max_rel_l2))
        return rho

    def __call__(self, compiled: Any, data: Any) -> tuple[float, list[float]]:
        scores: list[float] = []
        for feeds, index, n in data:
            result = compiled(feeds)
            rho = 0.0
            for k, ref in enumerate(self.reference[index]):
                rho = max(rho, self.ratio(k, ref, _rows(result[k], n)))
            scores.append(1.0 / (1.0 + rho))
        return min(scores, default=1.0), scores


def _rows(value: Any, n: int | None) -> np.ndarray:
    """An output's first ``n`` rows (a padded batch), or all of it (``n`` None: nothing padded, or a whole feed)."""
    array = np.asarray(value)
    return array if n is None or array.ndim == 0 else array[:n]


def agreement_data(
    nncf: Any, model: Any, samples: SampleSet, batch: int, fixed: bool, whole: bool, tolerance: Tolerance
) -> tuple[Any, Agreement]:
    """The evaluation items as an NNCF dataset of (feeds, index, rows) and the validation function scoring them
    against the FP32 outputs of ``model``, computed here once (CPU, f32 inference precision)."""
    ov = import_openvino()
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    items: list[tuple[dict[str, np.ndarray], int, int | None]] = []
    reference: list[list[np.ndarray]] = []
    for i, (feeds, n) in enumerate(batches(samples, batch, fixed, whole)):
        padded = not whole and any(np.ndim(v) and np.shape(v)[0] > n for v in feeds.values())
        rows = n if padded else None  # a padded batch's extra rows; never slice an output whose axis 0 is not N
        result = compiled(feeds)
        reference.append([_rows(result[k], rows) for k in range(len(compiled.outputs))])
        items.append((feeds, i, rows))
    return nncf.Dataset(items, lambda item: item[0]), Agreement(reference, tolerance)
