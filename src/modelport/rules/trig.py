"""``Asin``, ``Acos`` and ``Atan`` from elementary ops, for backends without inverse trigonometric kernels
(TFLite builtins, the Myriad VPU): the rule ``approx-asin-acos-atan``.

**Asin and Acos.** Abramowitz & Stegun, *Handbook of Mathematical Functions*, formula 4.4.46, for ``0 ≤ a ≤ 1``::

    acos(a) = √(1 − a) · P(a) + ε(a),     P(a) = c₀ + c₁a + … + c₇a⁷,     |ε(a)| ≤ 2·10⁻⁸,

    c₀ = 1.5707963050, c₁ = −0.2145988016, c₂ = 0.0889789874, c₃ = −0.0501743046,
    c₄ = 0.0308918810, c₅ = −0.0170881256, c₆ = 0.0066700901, c₇ = −0.0012624911

(the handbook states it as ``asin(a) = π/2 − √(1 − a)·P(a)``; ``acos = π/2 − asin``). With ``a = |x|`` and
``r = √(1 − a)·P(a)``, the symmetries ``asin(−x) = −asin(x)`` and ``acos(−x) = π − acos(x)`` give on ``[−1, 1]``::

    asin(x) = sign(x) · (π/2 − r),          acos(x) = r if x ≥ 0 else π − r,

so the approximation's error on ``[0, 1]`` carries over to the whole domain. ``acos`` takes the branch with a
``Where`` rather than ``π/2 − asin(x)``: near ``x = 1`` it then returns ``r`` itself, small and accurate. Outside
the domain, ``|x| > 1`` makes ``1 − a < 0`` and ``√`` returns NaN, which every later op keeps: NaN, as
``Asin``/``Acos`` give (``tests/rules/test_trig.py`` checks it). ``x = ±1`` gives ``r = 0`` exactly.

**Atan.** A&S 4.4.49, for ``0 ≤ t ≤ 1``::

    atan(t) = t · Q(t²) + ε(t),     Q(s) = 1 + d₁s + d₂s² + … + d₈s⁸,     |ε(t)| ≤ 2·10⁻⁸,

    d₁ = −0.3333314528, d₂ = 0.1999355085, d₃ = −0.1420889944, d₄ = 0.1065626393,
    d₅ = −0.0752896400, d₆ = 0.0429096138, d₇ = −0.0161657367, d₈ = 0.0028662257,

with the range reduction ``atan(a) = π/2 − atan(1/a)`` for ``a = |x| > 1`` and oddness::

    t = 1/a if a > 1 else a,     atan(x) = sign(x) · (π/2 − t·Q(t²) if a > 1 else t·Q(t²)).

The reduction is exact (``1/a`` only rounds, and ``atan′ ≤ 1`` keeps that rounding at the ulp level), so the bound
holds on the whole real line; ``x = ±inf`` gives ``t = 0`` and ``±π/2``, NaN stays NaN. Every polynomial is
evaluated in Horner form.

**Float32.** Rounding adds to the handbook's bound (with the published 10-digit coefficients, measured in
float64 over the grids below: 2.2·10⁻⁸ for 4.4.46 — the handbook rounds its bound — and 1.4·10⁻⁸ for 4.4.49):
the final ``π/2 − r`` or ``π − r`` subtracts numbers up to π, whose ulp is ``2.4·10⁻⁷``, and ``P``/``Q`` carry a
few ulps of their own. Measured in ONNX Runtime against numpy's float64 ``arcsin``/``arccos``/``arctan`` over a
dense grid of ``[−1, 1]`` (2·10⁶ points plus the ends; the tests use 10⁶) and, for atan, of ``[−64, 64]`` plus
log-spaced points out to ``±3.4·10³⁸`` and ``±inf``, the maximum absolute error is::

    op     rewrite (fp32)   ONNX Runtime's own fp32 kernel   rewrite vs that kernel
    asin   2.9·10⁻⁷         2.5·10⁻⁷                         3.6·10⁻⁷
    acos   4.2·10⁻⁷         4.7·10⁻⁷                         4.8·10⁻⁷
    atan   1.8·10⁻⁷         1.9·10⁻⁷                         2.4·10⁻⁷

i.e. as accurate as the runtime's own kernels (about 2 ulp of the result). The registered bound is
:data:`FP32_BOUND` = 5·10⁻⁷ on the error against the exact function, asserted over those grids by
``tests/rules/test_trig.py``; against the original op run in float32 the difference adds the kernel's own error
(≤ 4.8·10⁻⁷ measured, well inside the fp32 verification tolerance). Only float32 and float64 inputs are rewritten
(the bound is for those; a float16 graph would round the coefficients to 3 digits).

Ops used: Abs, Sign, Sqrt, Sub, Mul, Add, Div, Less, Where — all TFLite builtins and OpenVINO (Myriad) layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules.catalog import Exactness, RuleSettings, target_rule

#: A&S 4.4.46: ``acos(a) ≈ √(1 − a)·(c₀ + c₁a + … + c₇a⁷)`` on ``[0, 1]``.
ACOS_C = (
    1.5707963050,
    -0.2145988016,
    0.0889789874,
    -0.0501743046,
    0.0308918810,
    -0.0170881256,
    0.0066700901,
    -0.0012624911,
)
#: A&S 4.4.49: ``atan(t) ≈ t·(1 + d₁t² + … + d₈t¹⁶)`` on ``[0, 1]``.
ATAN_D = (
    1.0,
    -0.3333314528,
    0.1999355085,
    -0.1420889944,
    0.1065626393,
    -0.0752896400,
    0.0429096138,
    -0.0161657367,
    0.0028662257,
)
#: The handbook's bound for both formulas, in exact arithmetic.
AS_BOUND = 2e-8
#: The bound in float32 against the exact functions (handbook + rounding; measured 4.2e-7, see the docstring).
FP32_BOUND = 5e-7

_FLOATS = (ir.DataType.FLOAT, ir.DataType.DOUBLE)


def _horner(coefficients: Sequence[float], x: Any, mul: Any, add: Any, const: Any) -> Any:
    """``c₀ + c₁x + … + cₙxⁿ`` as ``c₀ + x·(c₁ + x·(…))`` with the given mul/add/constant builders."""
    acc = const(coefficients[-1], len(coefficients) - 1)
    for i in range(len(coefficients) - 2, -1, -1):
        acc = add(const(coefficients[i], i), mul(x, acc))
    return acc


def _np_acos_abs(a: np.ndarray, dtype: Any) -> np.ndarray:
    poly = _horner(ACOS_C, a, np.multiply, np.add, lambda c, i: dtype(c))
    return np.sqrt(dtype(1) - a) * poly


def asin_approx(x: np.ndarray) -> np.ndarray:
    """The asin approximation in numpy, evaluated like the rewritten graph (same ops, same order, x's dtype)."""
    dtype = x.dtype.type
    with np.errstate(invalid="ignore"):
        return np.sign(x) * (dtype(np.pi / 2) - _np_acos_abs(np.abs(x), dtype))


def acos_approx(x: np.ndarray) -> np.ndarray:
    """The acos approximation in numpy, evaluated like the rewritten graph."""
    dtype = x.dtype.type
    with np.errstate(invalid="ignore"):
        r = _np_acos_abs(np.abs(x), dtype)
        return np.where(x < dtype(0), dtype(np.pi) - r, r)


def atan_approx(x: np.ndarray) -> np.ndarray:
    """The atan approximation in numpy, evaluated like the rewritten graph."""
    dtype = x.dtype.type
    a = np.abs(x)
    big = dtype(1) < a
    with np.errstate(divide="ignore"):
        t = np.where(big, dtype(1) / a, a)
    p = t * _horner(ATAN_D, t * t, np.multiply, np.add, lambda c, i: dtype(c))
    return np.sign(x) * np.where(big, dtype(np.pi / 2) - p, p)


class _InverseTrig(RewriteRuleClassBase):
    """Shared check and constant helper of the three rules (subclasses set ``op_type`` and ``build``)."""

    op_type = ""

    def __init__(self) -> None:
        super().__init__(name=f"Approx{self.op_type}")

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return getattr(op, self.op_type)(x, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        if x.dtype not in _FLOATS:
            return result.fail(f"{self.op_type} input dtype {x.dtype} is unknown or not float32/float64")
        return result

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> ir.Value:
        assert x.dtype is not None
        dtype = x.dtype.numpy()
        prefix = f"{out.name}_{self.op_type.lower()}"

        def const(value: float, suffix: str) -> ir.Value:
            return op.initializer(ir.tensor(np.array(value, dtype=dtype)), name=f"{prefix}_{suffix}")

        return self.build(op, x, const)

    def build(self, op: Any, x: ir.Value, const: Any) -> ir.Value:
        raise NotImplementedError


def _acos_abs(op: Any, a: ir.Value, const: Any) -> ir.Value:
    """``√(1 − a)·P(a)`` (A&S 4.4.46) for ``a = |x|``."""
    poly = _horner(ACOS_C, a, op.Mul, op.Add, lambda c, i: const(c, f"c{i}"))
    return op.Mul(op.Sqrt(op.Sub(const(1.0, "one"), a)), poly)


class ApproxAsin(_InverseTrig):
    """``Asin(x)`` → ``sign(x)·(π/2 − √(1 − |x|)·P(|x|))``."""

    op_type = "Asin"

    def build(self, op: Any, x: ir.Value, const: Any) -> ir.Value:
        r = _acos_abs(op, op.Abs(x), const)
        return op.Mul(op.Sign(x), op.Sub(const(np.pi / 2, "half_pi"), r))


class ApproxAcos(_InverseTrig):
    """``Acos(x)`` → ``r`` for ``x ≥ 0``, ``π − r`` for ``x < 0``, ``r = √(1 − |x|)·P(|x|)``."""

    op_type = "Acos"

    def build(self, op: Any, x: ir.Value, const: Any) -> ir.Value:
        r = _acos_abs(op, op.Abs(x), const)
        negative = op.Less(x, const(0.0, "zero"))
        return op.Where(negative, op.Sub(const(np.pi, "pi"), r), r)


class ApproxAtan(_InverseTrig):
    """``Atan(x)`` → ``sign(x)·(π/2 − t·Q(t²) if |x| > 1 else t·Q(t²))``, ``t = min(|x|, 1/|x|)``."""

    op_type = "Atan"

    def build(self, op: Any, x: ir.Value, const: Any) -> ir.Value:
        one = const(1.0, "one")
        a = op.Abs(x)
        big = op.Less(one, a)
        t = op.Where(big, op.Div(one, a), a)
        poly = _horner(ATAN_D, op.Mul(t, t), op.Mul, op.Add, lambda c, i: one if i == 0 else const(c, f"d{i}"))
        p = op.Mul(t, poly)
        return op.Mul(op.Sign(x), op.Where(big, op.Sub(const(np.pi / 2, "half_pi"), p), p))


def trig_rules() -> RewriteRuleSet:
    """``Asin``, ``Acos``, ``Atan`` → elementary ops (A&S 4.4.46 / 4.4.49)."""
    return RewriteRuleSet([ApproxAsin.rule(), ApproxAcos.rule(), ApproxAtan.rule()])


@target_rule(
    "approx-asin-acos-atan",
    summary="Asin/Acos/Atan → polynomials (Abramowitz–Stegun 4.4.46/4.4.49) from Sqrt/Mul/Add/Where, |ε| ≤ 5e-7",
    removes=("Asin", "Acos", "Atan"),
    adds=("Abs", "Sign", "Sqrt", "Sub", "Mul", "Add", "Div", "Less", "Where"),
    exactness=Exactness.APPROX,
    bound=FP32_BOUND,
)
def approx_asin_acos_atan(settings: RuleSettings) -> RewriteRuleSet:
    """The registered form of :func:`trig_rules`."""
    return trig_rules()
