"""``GatherND`` with constant indices → ``Gather`` (``gathernd-to-gather``), for targets without GatherND (the Edge
TPU's op set, the Myriad plugin).

``GatherND(data, indices)`` with ``batch_dims = 0`` and ``indices`` of shape ``[i₁ … i_q, k]`` picks, for every
index tuple ``(j₀ … j_{k−1})`` in ``indices``, the slice ``data[j₀, …, j_{k−1}, :, …, :]``; the output has shape
``[i₁ … i_q] + data.shape[k:]``. When the indices are a constant, the whole index computation can be done at rewrite
time:

* ``k = 1``: ``GatherND(data, indices) = Gather(data, indices[…, 0], axis=0)`` — the last dim dropped from the
  constant; Gather takes negative indices like GatherND, and the shapes agree (``[i₁ … i_q] + data.shape[1:]``).
* ``k ≥ 2`` (data shape static, ``[d₀ … d_{r−1}]``): the first ``k`` axes are flattened into one,
  ``Reshape(data, [d₀·…·d_{k−1}] + data.shape[k:])`` (row-major, so the slice ``(j₀ … j_{k−1})`` moves to the
  linear position ``ℓ = Σ_{m<k} j_m · Π_{m<n<k} d_n``), and ``Gather(…, ℓ, axis=0)`` with the linear indices
  computed here (a negative ``j_m`` first becomes ``j_m + d_m``).

Both are pure data movement — no arithmetic on the values — so the outputs are **bitwise** equal. The rule refuses,
with the reason, non-constant indices (the index arithmetic would have to run in the graph), ``batch_dims ≠ 0``,
indices out of range, and for ``k ≥ 2`` a data shape that is not fully static.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules._util import const_array, static_shape
from modelport.rules.catalog import Exactness, RuleSettings, target_rule


def linear_indices(indices: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    """Row-major linear positions of the index tuples in ``indices[…, k]`` in a tensor of leading dims ``dims[:k]``.

    Raises:
        ValueError: an index out of ``[−d, d − 1]``.
    """
    k = indices.shape[-1]
    lead = np.asarray(dims[:k], dtype=np.int64)
    idx = indices.astype(np.int64)
    if np.any(idx < -lead) or np.any(idx >= lead):
        raise ValueError("index out of range")
    idx = np.where(idx < 0, idx + lead, idx)
    strides = np.cumprod(np.concatenate([lead[1:], [1]])[::-1])[::-1]
    return np.asarray(idx @ strides, dtype=np.int64)


class GatherNDToGather(RewriteRuleClassBase):
    """``GatherND(data, C)``, constant ``C``, ``batch_dims = 0`` → ``Gather`` (+ ``Reshape`` when ``k ≥ 2``)."""

    def __init__(self) -> None:
        super().__init__(name="GatherNDToGather")

    def pattern(self, op: Any, data: ir.Value, indices: ir.Value) -> ir.Value:
        return op.GatherND(data, indices, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context: Any, data: ir.Value, indices: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        node = out.producer()
        assert node is not None
        if node.attributes.get_int("batch_dims", 0) != 0:
            return result.fail("batch_dims ≠ 0")
        idx = const_array(indices)
        if idx is None:
            return result.fail("the indices are not a constant")
        if idx.ndim == 0 or idx.shape[-1] == 0 or idx.dtype.kind not in "iu":
            return result.fail("the indices are not an integer tensor with a non-empty last dim")
        k = int(idx.shape[-1])
        shape = static_shape(data)
        if k >= 2 and shape is None:
            return result.fail(f"the data shape is not static (needed to flatten its first {k} dims)")
        if shape is not None:
            if k > len(shape):
                return result.fail(f"index tuples of length {k} for data of rank {len(shape)}")
            try:
                linear_indices(idx, shape)
            except ValueError:
                return result.fail("an index is out of range")
        return result

    def rewrite(self, op: Any, data: ir.Value, indices: ir.Value, out: ir.Value) -> ir.Value:
        idx = const_array(indices)
        assert idx is not None
        k = int(idx.shape[-1])
        if k == 1:
            first = op.initializer(ir.tensor(idx[..., 0].astype(np.int64)), name=f"{out.name}_gather_idx")
            return op.Gather(data, first, axis=0)
        shape = static_shape(data)
        assert shape is not None
        flat_shape = np.array([int(np.prod(shape[:k])), *shape[k:]], dtype=np.int64)
        flat = op.Reshape(data, op.initializer(ir.tensor(flat_shape), name=f"{out.name}_flat_shape"))
        linear = op.initializer(ir.tensor(linear_indices(idx, shape)), name=f"{out.name}_gather_idx")
        return op.Gather(flat, linear, axis=0)


@target_rule(
    "gathernd-to-gather",
    summary="GatherND with constant indices (batch_dims 0) → Gather on axis 0 (+ Reshape flattening the indexed "
    "dims, linear indices computed at rewrite time); bitwise exact",
    removes=("GatherND",),
    adds=("Gather", "Reshape"),
    exactness=Exactness.EXACT,
)
def gathernd_to_gather(settings: RuleSettings) -> RewriteRuleSet:
    """``GatherND`` → ``Gather`` (+ ``Reshape``)."""
    return RewriteRuleSet([GatherNDToGather.rule()])
