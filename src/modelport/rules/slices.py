"""Two Slices on disjoint axes merged into one.

``Slice(x, s, e, A, k)`` selects, independently along each axis ``a ∈ A``, the indices ``s_a, s_a + k_a, …``
clipped to ``[0, dim_a)`` (negative starts/ends count from the end) and leaves the other axes whole. The
selection along an axis depends only on that axis's size, which a Slice on *other* axes does not change, so for
disjoint axis sets ``A₁ ∩ A₂ = ∅``

    Slice(Slice(x, s₁, e₁, A₁, k₁), s₂, e₂, A₂, k₂) = Slice(x, s₁‖s₂, e₁‖e₂, A₁‖A₂, k₁‖k₂)

(``‖`` = concatenation). Exporters emit such pairs for ``x[:, :, ::2, ::2]`` (YOLOv5's Focus) and other
multi-axis indexing, one Slice per axis. Needs constant starts/ends/axes/steps (the input form, opset ≥ 10);
a negative axis is normalized with the rank of ``x`` (required known then). The merged node's constants are
int64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules._util import const_array, rank_of

_Parts = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _parts(node: ir.Node, rank: int | None) -> _Parts | None:
    """(starts, ends, axes ≥ 0, steps) of a Slice with constant inputs, as int64; None otherwise."""
    if len(node.inputs) < 3:
        return None
    starts, ends = const_array(node.inputs[1]), const_array(node.inputs[2])
    if starts is None or ends is None or starts.ndim != 1 or ends.shape != starts.shape:
        return None
    n = starts.shape[0]
    axes_value = node.inputs[3] if len(node.inputs) > 3 else None
    steps_value = node.inputs[4] if len(node.inputs) > 4 else None
    axes = np.arange(n) if axes_value is None else const_array(axes_value)
    steps = np.ones(n, np.int64) if steps_value is None else const_array(steps_value)
    if axes is None or steps is None or axes.shape != starts.shape or steps.shape != starts.shape:
        return None
    if (axes < 0).any():
        if rank is None:
            return None
        axes = np.where(axes < 0, axes + rank, axes)
    return tuple(np.asarray(a, np.int64) for a in (starts, ends, axes, steps))  # type: ignore[return-value]


class SliceSlice(RewriteRuleClassBase):
    """``Slice(Slice(x, …A₁…), …A₂…)`` with ``A₁ ∩ A₂ = ∅`` → one Slice over ``A₁ ∪ A₂``."""

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        inner = op.Slice(x, _allow_other_inputs=True, _outputs=["inner"])
        return op.Slice(inner, _allow_other_inputs=True, _outputs=["out"])

    def _both(self, x: ir.Value, inner: ir.Value, out: ir.Value) -> tuple[_Parts, _Parts] | None:
        first, second = inner.producer(), out.producer()
        if first is None or second is None:
            return None
        rank = rank_of(x)
        p1, p2 = _parts(first, rank), _parts(second, rank)
        if p1 is None or p2 is None or set(p1[2].tolist()) & set(p2[2].tolist()):
            return None
        return p1, p2

    def check(self, context: Any, x: ir.Value, inner: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        if inner.is_graph_output():
            return result.fail("the inner Slice is a graph output")
        if self._both(x, inner, out) is None:
            return result.fail("non-constant slice parameters, unknown rank or overlapping axes")
        return result

    def rewrite(self, op: Any, x: ir.Value, inner: ir.Value, out: ir.Value) -> ir.Value:
        both = self._both(x, inner, out)
        assert both is not None
        p1, p2 = both
        names = ("starts", "ends", "axes", "steps")
        merged = [
            op.initializer(ir.tensor(np.concatenate([a, b])), name=f"{out.name}_{name}")
            for name, a, b in zip(names, p1, p2, strict=True)
        ]
        return op.Slice(x, *merged)


def slice_rules() -> RewriteRuleSet:
    """The Slice-merging rule; the inner Slice is left in place (it may feed other Slices, as in YOLOv5's Focus)
    and removed by ``remove-unused`` once its last consumer is merged."""
    return RewriteRuleSet([SliceSlice.rule(remove_nodes=False)])
