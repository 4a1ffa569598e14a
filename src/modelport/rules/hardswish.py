"""``HardSwish`` decomposed for targets without it (``hardswish-decompose``) and fused back (``hardswish-fuse``).

HardSwish (MobileNetV3, YOLO heads) is ``hs(x) = x · max(0, min(6, x + 3)) / 6``. The Edge TPU has no HARD_SWISH
kernel, OpenVINO CPU has one fused HSwish kernel, so a port needs the op in one form or the other.

**Decompose.** ``HardSwish(x) → Mul(Mul(x, Clip(Add(x, 3), 0, 6)), 0.16666666)``: Add, Clip (TFLite's RELU6) and
Mul are Edge TPU builtins. The last factor is a *multiplication by the constant 0.16666666*, not a division by 6,
on purpose: converters that re-fuse HardSwish match the spellings exporters write — a ``Div`` by 6 (onnxscript's
``fuse_hardswish``) or a ``Mul`` by a scalar equal to ``float32(1/6)`` (the TF-Lite converter's MLIR optimize
patterns, written with the literal ``0.166666666f``) — and would turn the graph straight back into the HARD_SWISH
op the target cannot run. ``0.16666666`` rounds to the float32 one ulp *below* ``float32(1/6) = 0.16666667163…``,
namely ``0.16666665673…``, so an exact-constant matcher does not see 1/6 and no pattern on ``Div`` applies.
``tests/rules/test_hardswish.py`` checks that onnxscript's own rules leave the decomposed form alone.

The price of the trick is one ulp in the constant: ``c = 0.16666665673 = (1 − δ)/6`` with ``δ = 8.94·10⁻⁸``.
Every other step is rounded once (``u = 2⁻²⁴ = 5.96·10⁻⁸``): ``x + 3`` has relative error ``≤ u``, Clip keeps it
(it is 1-Lipschitz, clamps to exact 0 and 6 and never changes a sign), and the two products add one ``u`` each, so

    |decomposed(x) − hs(x)| ≤ (δ + 3u) · |hs(x)| ≤ 2.7·10⁻⁷ · |hs(x)|       (float32, normal numbers)

— a relative error of a few ulps: EXACT to rounding (the fp32 tolerance is ``rtol 10⁻⁴``). Measured in ONNX
Runtime on a dense grid of [−8, 8] plus ``±[10⁻³⁰, 10¹⁸]``: ``2.05·10⁻⁷ · |hs(x)|`` at most, and at most ``9.6·10⁻⁷``
(one ulp of the largest outputs) from ONNX Runtime's own HardSwish on [−8, 8] — whose ``x · (x/6 + ½)`` form is the
less accurate one near ``x = −3``, where ``x/6 + ½`` cancels. HardSwish exists from
opset 14 and ``Clip`` takes ``min``/``max`` as inputs from opset 11, so the input form of Clip is always the right
one; a model that declares HardSwish at an opset below 11 is not valid ONNX and is refused.

**Fuse.** ``hardswish-fuse`` is the reverse, for runtimes with a fused kernel, opset ≥ 14 (where HardSwish exists;
the rule set does nothing below it). onnxscript's rules fuse ``(x · Clip(x + 3, 0, 6)) / 6`` and
``x · HardSigmoid(x)`` (``α = 1/6, β = 0.5``); modelport's add the spellings they miss, argument order free:

* ``(x · Clip(x + 3, 0, 6)) · c`` and ``x · (Clip(x + 3, 0, 6) · c)`` with ``c`` within ``10⁻⁶`` (relative) of
  ``1/6`` — which includes our own decomposed form, so decompose → fuse is the identity;
* ``x · (Clip(x + 3, 0, 6) / 6)``.

The constants must be single-element tensors that do not broadcast ``x`` to a larger rank, ``3``, ``0`` and ``6``
exact. onnxscript's ``Clip(x + 3, 0, 6) / 6 → HardSigmoid`` rule is *not* used on its own: it would add
HardSigmoid ops to graphs that hold no HardSwish at all.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet
from onnxscript.rewriter.rules.common import _fuse_hardswish as os_hardswish

from modelport.rules._util import const_array, opset_version, rank_of
from modelport.rules.catalog import Exactness, RuleSettings, target_rule

#: The multiplier of the decomposed form (see the module docstring: one float32 ulp below 1/6).
SIXTH = 0.16666666
#: The relative distance a fused multiplier may have from 1/6.
SIXTH_RTOL = 1e-6
#: The bound on ``|decomposed − hs| / |hs|`` in float32 (``δ + 3u``, module docstring).
DECOMPOSE_REL_BOUND = 2.7e-7
#: HardSwish's first opset.
HARDSWISH_OPSET = 14

_FLOATS = (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE, ir.DataType.BFLOAT16)


def hardswish_decomposed(x: np.ndarray) -> np.ndarray:
    """The decomposed form in numpy, evaluated like the rewritten graph (same operations and order, x's dtype)."""
    dtype = x.dtype.type
    return (x * np.clip(x + dtype(3), dtype(0), dtype(6))) * dtype(SIXTH)


class DecomposeHardSwish(RewriteRuleClassBase):
    """``HardSwish(x)`` → ``x · Clip(x + 3, 0, 6) · 0.16666666``."""

    def __init__(self) -> None:
        super().__init__(name="DecomposeHardSwish")

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return op.HardSwish(x, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        if x.dtype not in _FLOATS:
            return result.fail("HardSwish input dtype unknown or not floating point")
        if opset_version(context.model) < 11:
            return result.fail("Clip takes min/max as inputs only from opset 11 (HardSwish needs opset 14)")
        return result

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> ir.Value:
        assert x.dtype is not None
        dtype = x.dtype.numpy()

        def const(value: float, suffix: str) -> ir.Value:
            return op.initializer(ir.tensor(np.array(value, dtype=dtype)), name=f"{out.name}_hswish_{suffix}")

        relu6 = op.Clip(op.Add(x, const(3.0, "three")), const(0.0, "zero"), const(6.0, "six"))
        return op.Mul(op.Mul(x, relu6), const(SIXTH, "sixth"))


def _scalar(value: ir.Value, x: ir.Value) -> float | None:
    """The value of a single-element constant that does not enlarge x's rank when broadcast; None otherwise."""
    arr = const_array(value)
    if arr is None or arr.size != 1:
        return None
    rank = rank_of(x)
    if arr.ndim > 0 and (rank is None or arr.ndim > rank):
        return None
    return float(arr.reshape(-1)[0])


class FuseHardSwish(RewriteRuleClassBase):
    """The spellings onnxscript misses (module docstring) → ``HardSwish(x)``.

    Args:
        form: ``"mul-outer"`` for ``(x · relu6) · c``, ``"mul-inner"`` for ``x · (relu6 · c)``, ``"div-inner"``
            for ``x · (relu6 / d)``; ``relu6 = Clip(x + b, lo, hi)``.
    """

    def __init__(self, form: str) -> None:
        super().__init__(name=f"FuseHardSwish-{form}")
        self.form = form

    def pattern(self, op: Any, x: ir.Value, b: ir.Value, lo: ir.Value, hi: ir.Value, c: ir.Value) -> ir.Value:
        relu6 = op.Clip(op.Add(x, b), lo, hi)
        if self.form == "mul-outer":
            return op.Mul(op.Mul(x, relu6), c)
        if self.form == "mul-inner":
            return op.Mul(x, op.Mul(relu6, c))
        return op.Mul(x, op.Div(relu6, c))

    def check(self, context: Any, x: ir.Value, b: ir.Value, lo: ir.Value, hi: ir.Value, c: ir.Value) -> MatchResult:
        result = MatchResult()
        if x.dtype not in _FLOATS:
            return result.fail("input dtype unknown or not floating point")
        if opset_version(context.model) < HARDSWISH_OPSET:
            return result.fail(f"HardSwish needs opset {HARDSWISH_OPSET}")
        for name, value, want in (("bias", b, 3.0), ("Clip min", lo, 0.0), ("Clip max", hi, 6.0)):
            if _scalar(value, x) != want:
                return result.fail(f"{name} is not the constant {want:g}")
        scale = _scalar(c, x)
        target = 6.0 if self.form == "div-inner" else 1.0 / 6.0
        if scale is None or not math.isclose(scale, target, rel_tol=SIXTH_RTOL):
            return result.fail(f"the {'divisor' if self.form == 'div-inner' else 'multiplier'} is not {target:.8g}")
        return result

    def rewrite(self, op: Any, x: ir.Value, **_: Any) -> ir.Value:
        return op.HardSwish(x)


class FuseHardSigmoidSwish(RewriteRuleClassBase):
    """``x · HardSigmoid(x)`` with ``α = 1/6, β = ½`` → ``HardSwish(x)``.

    onnxscript has this rule too, but reads an absent ``beta`` as −1 and refuses it; ONNX's default ``beta`` is 0.5
    (and ``alpha``'s 0.2), which is how exporters that omit default attributes write it.
    """

    def __init__(self) -> None:
        super().__init__(name="FuseHardSigmoidSwish")

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return op.Mul(x, op.HardSigmoid(x, _allow_other_attributes=True, _outputs=["gate"]))

    def check(self, context: Any, x: ir.Value, gate: ir.Value) -> MatchResult:
        result = MatchResult()
        if opset_version(context.model) < HARDSWISH_OPSET:
            return result.fail(f"HardSwish needs opset {HARDSWISH_OPSET}")
        node = gate.producer()
        assert node is not None
        alpha, beta = node.attributes.get_float("alpha", 0.2), node.attributes.get_float("beta", 0.5)
        if not math.isclose(alpha, 1.0 / 6.0, rel_tol=SIXTH_RTOL) or beta != 0.5:
            return result.fail(f"HardSigmoid alpha={alpha:g}, beta={beta:g}: HardSwish needs 1/6 and 0.5")
        return result

    def rewrite(self, op: Any, x: ir.Value, gate: ir.Value) -> ir.Value:
        return op.HardSwish(x)


class _FromOpset:
    """A rule set applied only to models whose default-domain opset is at least ``opset``."""

    def __init__(self, rules: RewriteRuleSet, opset: int) -> None:
        self.rules = rules
        self.opset = opset

    def apply_to_model(self, model: ir.Model) -> int:
        if opset_version(model) < self.opset:
            return 0
        return self.rules.apply_to_model(model)


def decompose_rules() -> RewriteRuleSet:
    """``HardSwish`` → Add/Clip/Mul."""
    return RewriteRuleSet([DecomposeHardSwish.rule()])


def fuse_rules() -> RewriteRuleSet:
    """onnxscript's HardSwish fusions plus modelport's (module docstring), without the opset gate."""
    return RewriteRuleSet(
        [
            os_hardswish.HardSwishFusion().rule(),
            FuseHardSigmoidSwish.rule(),
            *(FuseHardSwish.rule(form) for form in ("mul-outer", "mul-inner", "div-inner")),
        ],
        commute=True,
    )


@target_rule(
    "hardswish-decompose",
    summary="HardSwish(x) → x·Clip(x+3, 0, 6)·0.16666666 (a constant converters do not re-fuse), for targets "
    "without a HardSwish kernel",
    removes=("HardSwish",),
    adds=("Add", "Clip", "Mul"),
    exactness=Exactness.EXACT,
)
def hardswish_decompose(settings: RuleSettings) -> RewriteRuleSet:
    """The registered form of :func:`decompose_rules`."""
    return decompose_rules()


@target_rule(
    "hardswish-fuse",
    summary="x·Clip(x+3, 0, 6)·(1/6), x·Clip(x+3, 0, 6)/6 and x·HardSigmoid(x) → HardSwish (opset ≥ 14)",
    removes=("Add", "Clip", "Mul", "Div", "HardSigmoid"),
    adds=("HardSwish",),
    exactness=Exactness.EXACT,
)
def hardswish_fuse(settings: RuleSettings) -> _FromOpset:
    """:func:`fuse_rules`, applied only from opset 14."""
    return _FromOpset(fuse_rules(), HARDSWISH_OPSET)
