"""``PRelu`` and ``LeakyRelu`` written with ops every integer accelerator has (Relu, Max, Mul, Add, Sub).

onnx2tf does such replacements only inside its TensorFlow lowering (its "pseudo operator" options); here they
are ONNX → ONNX, so every runtime sees them and the result is verified like any rewrite.

**prelu-to-relu.** ``PRelu(x, s) = x`` where ``x ≥ 0`` and ``s·x`` elsewhere, ``s`` broadcast to ``x``
unidirectionally (opset ≥ 7). The rule writes::

    PRelu(x, s) = Relu(x) + s · Min(x, 0)

which is *bitwise* exact in floating point, not just to rounding: for ``x ≥ 0`` it is ``x + s·0 = x`` (adding a
signed zero to ``x`` gives ``x``; at ``x = ±0`` both sides are a zero); for ``x < 0`` it is ``0 + s·x``, exactly
the product PRelu computes. ``±∞`` and NaN give what PRelu gives (an infinite *slope* would not: ``∞·0`` is NaN,
no exporter writes one). The textbook spelling ``Relu(x) + s·(x − Relu(x))`` is not used: ``x − Relu(x)`` is
``∞ − ∞ = NaN`` at ``x = +∞``; ``Relu(x) − s·Relu(−x)`` is exact too but needs a ``Neg``, which the Edge TPU lacks.
The slope may be a constant or a tensor; its broadcast must not enlarge ``x``: a valid model guarantees it, and the
rule refuses what would break it in an invalid one (a slope of unknown or higher rank than ``x``, or a slope dim
other than 1 that differs from ``x``'s known one), since the Mul would then broadcast ``x`` instead of the slope.

**leakyrelu-to-max.** ``LeakyRelu(x, α) = x`` for ``x ≥ 0`` and ``α·x`` otherwise. For ``α ≤ 1``::

    LeakyRelu(x, α) = Max(x, α·x)

since ``α·x ≤ x`` when ``x ≥ 0`` and ``α·x ≥ x`` when ``x < 0`` (for ``α < 0`` trivially: the product has the
other sign). Rounding does not break the order (``fl(α·x)`` rounds a value on the right side of the representable
``x``, monotonically), and the ``α·x`` that wins is the product LeakyRelu computes: exact, bit for bit, ``±∞`` and
NaN included. For ``α > 1`` the order flips and Max picks the wrong branch: the rule refuses, with that reason
(``Min(x, α·x)`` would serve, but no exporter writes such a LeakyRelu). ``α = 0`` is written ``Relu(x)``: there
``Max(x, 0·x)`` is NaN at ``x = +∞`` (``0·∞``); Relu differs from ONNX Runtime's LeakyRelu only at ``x = −∞``,
where LeakyRelu's own ``0·(−∞)`` is NaN and Relu gives the limit, 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules._util import const_array, opset_version
from modelport.rules.catalog import Exactness, RuleSettings, target_rule

_FLOATS = (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE, ir.DataType.BFLOAT16)


def _slope_dims(slope: ir.Value) -> tuple[int | str | None, ...] | None:
    """The slope's dims (from its constant or its shape); None when not even its rank is known."""
    arr = const_array(slope)
    if arr is not None:
        return tuple(int(d) for d in arr.shape)
    if slope.shape is None:
        return None
    return tuple(d if isinstance(d, int) else None for d in slope.shape.dims)


def slope_broadcast_problem(x: ir.Value, slope: ir.Value) -> str | None:
    """Why ``Mul(slope, …)`` could broadcast to a larger shape than ``x``'s; None when it cannot."""
    if x.shape is None:
        return "the input's rank is unknown (run shape inference)"
    dims = _slope_dims(slope)
    if dims is None:
        return "the slope's rank is unknown"
    x_dims = list(x.shape.dims)
    if len(dims) > len(x_dims):
        return f"the slope has rank {len(dims)}, above the input's {len(x_dims)}"
    for s, d in zip(reversed(dims), reversed(x_dims), strict=False):
        if s is None or s == 1:
            continue
        if isinstance(d, int) and d != s:
            return f"slope dim {s} does not broadcast to input dim {d}"
    return None


class PReluToRelu(RewriteRuleClassBase):
    """``PRelu(x, s)`` → ``Relu(x) + s · Min(x, 0)``."""

    def __init__(self) -> None:
        super().__init__(name="PReluToRelu")

    def pattern(self, op: Any, x: ir.Value, slope: ir.Value) -> ir.Value:
        return op.PRelu(x, slope, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, slope: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        if x.dtype not in _FLOATS:
            return result.fail("PRelu input dtype unknown or not floating point")
        if opset_version(context.model) < 7:
            return result.fail("PRelu before opset 7 broadcasts differently")
        problem = slope_broadcast_problem(x, slope)
        if problem is not None:
            return result.fail(problem)
        return result

    def rewrite(self, op: Any, x: ir.Value, slope: ir.Value, out: ir.Value) -> ir.Value:
        assert x.dtype is not None
        zero = op.initializer(ir.tensor(np.array(0, dtype=x.dtype.numpy())), name=f"{out.name}_zero")
        return op.Add(op.Relu(x), op.Mul(slope, op.Min(x, zero)))


class LeakyReluToMax(RewriteRuleClassBase):
    """``LeakyRelu(x, α)``, ``α ≤ 1`` → ``Max(x, α·x)`` (``Relu(x)`` for ``α = 0``)."""

    def __init__(self) -> None:
        super().__init__(name="LeakyReluToMax")

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return op.LeakyRelu(x, _allow_other_attributes=True, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        if x.dtype not in _FLOATS:
            return result.fail("LeakyRelu input dtype unknown or not floating point")
        alpha = _alpha(out)
        if not alpha <= 1.0:
            return result.fail(f"alpha = {alpha:g} > 1: Max(x, alpha·x) would pick the wrong branch")
        return result

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> ir.Value:
        assert x.dtype is not None
        alpha = np.array(_alpha(out), dtype=x.dtype.numpy())
        if alpha == 0:
            return op.Relu(x)
        return op.Max(x, op.Mul(x, op.initializer(ir.tensor(alpha), name=f"{out.name}_alpha")))


def _alpha(out: ir.Value) -> float:
    """The LeakyRelu's alpha (ONNX default 0.01)."""
    node = out.producer()
    assert node is not None
    return node.attributes.get_float("alpha", 0.01)


@target_rule(
    "prelu-to-relu",
    summary="PRelu(x, s) → Relu(x) + s·Min(x, 0) (bitwise exact), for targets without PRelu",
    removes=("PRelu",),
    adds=("Relu", "Min", "Mul", "Add"),
    exactness=Exactness.EXACT,
)
def prelu_to_relu(settings: RuleSettings) -> RewriteRuleSet:
    """``PRelu`` → Relu/Min/Mul/Add."""
    return RewriteRuleSet([PReluToRelu.rule()])


@target_rule(
    "leakyrelu-to-max",
    summary="LeakyRelu(x, α) with α ≤ 1 → Max(x, α·x) (Relu(x) for α = 0; bitwise exact)",
    removes=("LeakyRelu",),
    adds=("Mul", "Max", "Relu"),
    exactness=Exactness.EXACT,
)
def leakyrelu_to_max(settings: RuleSettings) -> RewriteRuleSet:
    """``LeakyRelu`` → Mul/Max (or Relu)."""
    return RewriteRuleSet([LeakyReluToMax.rule()])
