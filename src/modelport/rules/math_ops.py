"""Exact elementwise rewrites for backends missing ``Abs``, ``Pow`` or ``Neg``: ``abs-to-sqrt-square``,
``pow-to-mul`` and ``neg-to-mul``.

**abs-to-sqrt-square**: ``|x| = √(x·x)``. In IEEE-754 binary arithmetic with round-to-nearest, ``sqrt(fl(x·x))``
returns ``|x|`` *exactly* whenever ``x·x`` neither overflows nor underflows: ``fl(x·x) = x²(1 + δ)`` with
``|δ| ≤ 2⁻²⁴`` (fp32), so ``√fl(x·x) = |x|·(1 + δ/2 + O(δ²))`` lies within half an ulp of ``|x|``, and the
correctly rounded square root rounds it back to ``|x|`` (a float). ``tests/rules/test_math_ops.py`` checks equality
bit for bit on a dense grid over the ordinary range. Where it is **not** exact, in float32:

* ``|x| > √(3.4·10³⁸) ≈ 1.8·10¹⁹``: ``x·x`` overflows to ``+inf`` and the result is ``inf`` instead of ``|x|``
  (float64: ``|x| > 1.3·10¹⁵⁴``; float16 — and any fp16 device such as the Myriad VPU running an fp32 model —
  already for ``|x| > 255.9``, though ONNX Runtime's CPU kernels compute float16 in float32 and do not overflow);
* ``|x| < √(1.2·10⁻³⁸) ≈ 1.1·10⁻¹⁹``: ``x·x`` is subnormal and loses bits, and below ``≈ 2.6·10⁻²³`` it is 0, so
  the result is inexact, then 0 (an absolute error below ``1.1·10⁻¹⁹``, far under any tolerance).

The rule refuses nothing on these grounds (fp32 activations beyond 10¹⁹ do not occur in practice; on an fp16
device the 256 limit is real, so check the model's activation ranges there). ``±inf → inf``, ``NaN → NaN`` and
``−0 → +0`` as Abs does. ``Sqrt`` has no integer kernel: an int32/int64 ``Abs`` (T5's relative-position buckets)
becomes ``x·Sign(x)`` instead, exact for every integer (``|INT_MIN|`` wraps to ``INT_MIN`` in both); other dtypes
are refused.

**pow-to-mul**: ``Pow(x, n)`` for a *constant* integer-valued scalar ``n`` with ``2 ≤ |n| ≤ 8`` becomes a chain of
``Mul`` by binary (square-and-multiply) exponentiation, e.g. ``x⁷ = ((x²)·x)²·x``: ``⌊log₂ n⌋ + popcount(n) − 1``
multiplications, the shortest addition chain for every ``n ≤ 8``::

    n      2  3  4  5  6  7  8
    Mul    1  2  2  3  3  4  3

A negative ``n`` takes the ``Reciprocal`` of the positive chain (one op more); ``n = 1`` becomes ``Identity`` and
``n = −1`` a single ``Reciprocal``. Refused, with the reason: an exponent that is not a constant (a graph input
or computed), not a scalar (a size-1 tensor is accepted where it does not broadcast ``x`` to a higher rank), not
integer-valued (``0.5`` stays a Pow), ``n = 0`` (``Pow(x, 0) = 1`` even for NaN: nothing to multiply) and
``|n| > 8``; integer ``x`` only with ``n > 0`` (no integer Reciprocal).

Rounding: each ``Mul`` rounds once (relative error ``≤ u = 2⁻²⁴`` in fp32), and a relative error ``ε`` in ``y``
becomes ``2ε`` in ``y²``, so the chain's relative error is at most ``(n − 1)·u``, i.e. at most ``n − 1`` ulp of the
result (``x⁸``: three squarings, ``7u``), against ``≤ 0.5`` ulp for ONNX Runtime's ``pow``; the Reciprocal adds half
an ulp. Measured in ONNX Runtime over a dense grid of ``[−4, 4]`` and ``±[10⁻⁴, 10⁴]``
(``tests/rules/test_math_ops.py``): at most 5 ulp from the exact power for ``n = 8`` and 6.6 ulp for ``n = −8``
(relative ``4.3·10⁻⁷``), ``n = 2`` and ``3`` identical to pow — far inside the fp32 tolerance (``rtol 10⁻⁴``), an
EXACT rule up to rounding. Overflow and underflow happen where ``xⁿ`` itself overflows or underflows (the
intermediate powers are nearer 1 than the result), except that for negative ``n`` a positive chain that overflows
gives ``1/inf = 0`` where pow gives a subnormal (an absolute difference ``< 1.2·10⁻³⁸``).

**neg-to-mul**: ``Neg(x) = x·(−1)``: multiplying by −1 only flips the sign bit, so it is exact for every float
(``−0``, ``±inf`` and NaN included) and for int32/int64 (two's complement; ``−INT_MIN`` wraps to ``INT_MIN`` in
both). Other dtypes are refused (ONNX Runtime has no ``Mul`` kernel for int8/int16).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules._util import const_array, rank_of
from modelport.rules.catalog import Exactness, RuleSettings, target_rule

_FLOATS = (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE, ir.DataType.BFLOAT16)
_INTS = (ir.DataType.INT32, ir.DataType.INT64)

#: ``pow-to-mul`` handles exponents with ``2 ≤ |n| ≤ MAX_EXPONENT`` (and ±1).
MAX_EXPONENT = 8


def mul_count(n: int) -> int:
    """Multiplications in the binary-exponentiation chain for ``x**n`` (``n ≥ 1``)."""
    return n.bit_length() - 1 + bin(n).count("1") - 1


class AbsToSqrtSquare(RewriteRuleClassBase):
    """``Abs(x)`` → ``Sqrt(x·x)`` on floats (exact unless ``x·x`` overflows or underflows), ``x·Sign(x)`` on ints."""

    def __init__(self) -> None:
        super().__init__(name="AbsToSqrtSquare")

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return op.Abs(x)

    def check(self, context: Any, x: ir.Value) -> MatchResult:
        result = MatchResult()
        if x.dtype not in _FLOATS + _INTS:
            return result.fail(f"Abs input dtype {x.dtype} is unknown or not float/int32/int64")
        return result

    def rewrite(self, op: Any, x: ir.Value) -> ir.Value:
        if x.dtype in _INTS:
            return op.Mul(x, op.Sign(x))
        return op.Sqrt(op.Mul(x, x))


def pow_exponent(x: ir.Value, n: ir.Value) -> tuple[int | None, str]:
    """The exponent as an int when ``pow-to-mul`` may replace ``Pow(x, n)``, else None and the reason."""
    array = const_array(n)
    if array is None:
        return None, "the exponent is not a constant (graph input or computed)"
    if array.size != 1:
        return None, f"the exponent is not a scalar (shape {array.shape})"
    if array.ndim > 0:
        rank = rank_of(x)
        if rank is None or rank < array.ndim:
            return None, f"the exponent of shape {array.shape} could broadcast x to a higher rank"
    if array.dtype.kind not in "fiu":
        return None, f"the exponent's dtype {array.dtype} is not numeric"
    value = float(array.reshape(()))
    if not np.isfinite(value) or value != round(value):
        return None, f"the exponent {value:g} is not integer-valued"
    k = round(value)
    if k == 0:
        return None, "the exponent is 0 (Pow(x, 0) = 1: nothing to multiply)"
    if abs(k) > MAX_EXPONENT:
        return None, f"|exponent| = {abs(k)} exceeds {MAX_EXPONENT} (the Mul chain would lose accuracy)"
    if x.dtype in _INTS and k < 0:
        return None, "a negative exponent of an integer base needs a Reciprocal, which has no integer kernel"
    if x.dtype not in _FLOATS + _INTS:
        return None, f"Pow base dtype {x.dtype} is unknown or not float/int32/int64"
    return k, ""


class PowToMul(RewriteRuleClassBase):
    """``Pow(x, n)``, constant integer ``n`` with ``1 ≤ |n| ≤ 8`` → Mul chain (Reciprocal for ``n < 0``)."""

    def __init__(self) -> None:
        super().__init__(name="PowToMul")

    def pattern(self, op: Any, x: ir.Value, n: ir.Value) -> ir.Value:
        return op.Pow(x, n)

    def check(self, context: Any, x: ir.Value, n: ir.Value) -> MatchResult:
        result = MatchResult()
        k, reason = pow_exponent(x, n)
        if k is None:
            return result.fail(reason)
        return result

    def rewrite(self, op: Any, x: ir.Value, n: ir.Value) -> ir.Value:
        k, _ = pow_exponent(x, n)
        assert k is not None
        if k == 1:
            return op.Identity(x)
        chain = power_chain(op, x, abs(k))
        return op.Reciprocal(chain) if k < 0 else chain


def power_chain(op: Any, x: ir.Value, n: int) -> ir.Value:
    """``x**n`` (``n ≥ 1``) by left-to-right binary exponentiation: square per bit, multiply by ``x`` per set bit."""
    result = x
    for bit in bin(n)[3:]:
        result = op.Mul(result, result)
        if bit == "1":
            result = op.Mul(result, x)
    return result


class NegToMul(RewriteRuleClassBase):
    """``Neg(x)`` → ``Mul(x, −1)`` for float and int32/int64 tensors (exact: a sign flip)."""

    def __init__(self) -> None:
        super().__init__(name="NegToMul")

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return op.Neg(x, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        if x.dtype not in _FLOATS + _INTS:
            return result.fail(f"Neg input dtype {x.dtype} is unknown or not float/int32/int64")
        return result

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> ir.Value:
        assert x.dtype is not None
        minus_one = ir.tensor(np.array(-1, dtype=x.dtype.numpy()))
        return op.Mul(x, op.initializer(minus_one, name=f"{out.name}_neg_minus_one"))


@target_rule(
    "abs-to-sqrt-square",
    summary="Abs(x) → Sqrt(x·x) on floats (exact unless |x| > 1.8e19 overflows x·x in fp32), x·Sign(x) on ints",
    removes=("Abs",),
    adds=("Mul", "Sqrt", "Sign"),
    exactness=Exactness.EXACT,
)
def abs_to_sqrt_square(settings: RuleSettings) -> RewriteRuleSet:
    """Abs → Sqrt(x·x)."""
    return RewriteRuleSet([AbsToSqrtSquare.rule()])


@target_rule(
    "pow-to-mul",
    summary="Pow(x, n), constant integer 1 ≤ |n| ≤ 8 → Mul chain by squaring (Reciprocal for n < 0)",
    removes=("Pow",),
    adds=("Mul", "Reciprocal", "Identity"),
    exactness=Exactness.EXACT,
)
def pow_to_mul(settings: RuleSettings) -> RewriteRuleSet:
    """Pow with a small constant integer exponent → Mul chain."""
    return RewriteRuleSet([PowToMul.rule()])


@target_rule(
    "neg-to-mul",
    summary="Neg(x) → Mul(x, −1) (floats, int32, int64; exact)",
    removes=("Neg",),
    adds=("Mul",),
    exactness=Exactness.EXACT,
)
def neg_to_mul(settings: RuleSettings) -> RewriteRuleSet:
    """Neg → Mul by −1."""
    return RewriteRuleSet([NegToMul.rule()])
