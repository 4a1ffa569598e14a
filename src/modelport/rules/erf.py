"""``Erf`` decomposed into elementwise builtins, for runtimes without an erf kernel (TFLite's builtin op set).

onnx2tf turns ONNX ``Erf`` into TensorFlow's ``Erf``, which the TFLite converter can only keep as a Select-TF
(Flex) op that a plain LiteRT interpreter cannot run. Every GELU written as ``x · 0.5 · (1 + erf(x / √2))`` (BERT,
MiniLM, ViT exports) contains one. The rule here replaces ``Erf`` by the rational-exponential approximation of
Abramowitz & Stegun, *Handbook of Mathematical Functions*, formula 7.1.26, for ``x ≥ 0``::

    erf(x) ≈ 1 − (a₁t + a₂t² + a₃t³ + a₄t⁴ + a₅t⁵) · exp(−x²),     t = 1 / (1 + p·x),

    p = 0.3275911,  a₁ = 0.254829592,  a₂ = −0.284496736,  a₃ = 1.421413741,  a₄ = −1.453152027,
    a₅ = 1.061405429,

with ``|ε(x)| ≤ 1.5·10⁻⁷`` for every ``x ≥ 0`` (the handbook's bound). erf is odd, so for any real ``x``::

    erf(x) = sign(x) · erf(|x|),

and the bound holds on the whole real line. The polynomial is evaluated in Horner form
``t·(a₁ + t·(a₂ + t·(a₃ + t·(a₄ + t·a₅))))``. In float32 rounding adds to the handbook's bound: the last
step ``1 − t·P(t)·exp(−x²)`` subtracts two numbers close to 1 when ``x`` is near 0, so the absolute error grows by a
few ulps of 1 (ulp = 1.2·10⁻⁷); the measured maximum over a dense grid of the real line against :func:`math.erf`,
run in ONNX Runtime, is 5.3·10⁻⁷, and ``tests/rules/test_erf.py`` asserts ``≤ 6·10⁻⁷``. (The error is absolute:
near 0 the *relative* error of erf itself is large, which GELU's ``1 + erf`` does not see.) The limits are
exact: ``x → ±∞`` gives ``t → 0`` and ``exp(−x²) → 0``, so the result is ``±1``; ``x = 0`` gives ``sign(0) = 0``.

For GELU, ``gelu(x) = x/2 · (1 + erf(x/√2))``, the error becomes ``|x|/2 · ε ≤ 3·10⁻⁷ · |x|`` in float32: inside
the fp32 verification tolerance (``atol 10⁻⁵ + rtol 10⁻⁴ · |ref|``, and ``|gelu(x)| ≈ |x|`` where ``|x|`` is large).

Every op used — Abs, Sign, Mul, Add, Div, Neg, Exp, Sub — is a TFLite builtin.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules.catalog import Exactness, RuleSettings, target_rule

#: Abramowitz & Stegun 7.1.26: ``p`` and ``a₁ … a₅``.
AS_P = 0.3275911
AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
#: The handbook's bound on ``|erf(x) − approximation(x)|`` in exact arithmetic.
AS_BOUND = 1.5e-7

_FLOATS = (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.DOUBLE)


def erf_approx(x: np.ndarray) -> np.ndarray:
    """The approximation in numpy, evaluated like the rewritten graph (same operations, same order, x's dtype)."""
    dtype = x.dtype.type
    with np.errstate(over="ignore"):  # x² overflows to inf for huge x: exp(−inf) = 0, as in the graph
        return _approx(x, dtype)


def _approx(x: np.ndarray, dtype: Any) -> np.ndarray:
    ax = np.abs(x)
    t = dtype(1) / (dtype(1) + dtype(AS_P) * ax)
    poly = dtype(AS_A[4])
    for a in reversed(AS_A[:4]):
        poly = dtype(a) + t * poly
    poly = t * poly
    return np.sign(x) * (dtype(1) - poly * np.exp(-(ax * ax)))


class DecomposeErf(RewriteRuleClassBase):
    """``Erf(x)`` on a float tensor → ``sign(x) · (1 − t·P(t) · exp(−x²))``, ``t = 1/(1 + p|x|)`` (A&S 7.1.26)."""

    def __init__(self) -> None:
        super().__init__(name="DecomposeErf")

    def pattern(self, op: Any, x: ir.Value) -> ir.Value:
        return op.Erf(x, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        result = MatchResult()
        if x.dtype not in _FLOATS:
            return result.fail("Erf input dtype unknown or not float16/float32/float64")
        return result

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> ir.Value:
        assert x.dtype is not None
        dtype = x.dtype.numpy()

        def const(value: float, suffix: str) -> ir.Value:
            return op.initializer(ir.tensor(np.array(value, dtype=dtype)), name=f"{out.name}_erf_{suffix}")

        one = const(1.0, "one")
        ax = op.Abs(x)
        t = op.Div(one, op.Add(one, op.Mul(const(AS_P, "p"), ax)))
        poly = const(AS_A[4], "a5")
        for i in (3, 2, 1, 0):
            poly = op.Add(const(AS_A[i], f"a{i + 1}"), op.Mul(t, poly))
        poly = op.Mul(t, poly)
        gauss = op.Exp(op.Neg(op.Mul(ax, ax)))
        return op.Mul(op.Sign(x), op.Sub(one, op.Mul(poly, gauss)))


#: The bound in float32 (the handbook's plus rounding; measured 5.3e-7, see the module docstring).
FP32_BOUND = 6e-7


def erf_rules() -> RewriteRuleSet:
    """``Erf`` → elementwise builtins (A&S 7.1.26, ``|ε| ≤ 1.5e-7``)."""
    return RewriteRuleSet([DecomposeErf.rule()])


@target_rule(
    "erf-decompose",
    summary="Erf → Abs/Sign/Exp/Mul/Add/Div (Abramowitz–Stegun 7.1.26), for runtimes without an Erf kernel",
    removes=("Erf",),
    adds=("Abs", "Sign", "Exp", "Mul", "Add", "Div", "Neg", "Sub"),
    exactness=Exactness.APPROX,
    bound=FP32_BOUND,
)
def erf_decompose(settings: RuleSettings) -> RewriteRuleSet:
    """The registered form of :func:`erf_rules`."""
    return erf_rules()
