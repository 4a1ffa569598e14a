"""The exact GELU subgraph → its tanh approximation, for backends without ``Erf`` (the Edge TPU): the rule
``erf-gelu-approx``.

Exporters write the exact GELU (BERT, ViT, MiniLM …) as elementwise ops around an ``Erf``::

    gelu(x) = x · Φ(x) = ½ · x · (1 + erf(x/√2)),

spelled ``Div(x, 1.4142135)`` or ``Mul(x, 0.70710677)`` inside the Erf, and the ½ applied last
(``Mul(Mul(x, 1 + erf), 0.5)``), first (``Mul(Mul(x, 0.5), 1 + erf)``) or to the bracket
(``Mul(x, Mul(1 + erf, 0.5))``), with any operand order. Each of those subgraphs, when its intermediate values
have no other consumer, becomes the tanh form of Hendrycks & Gimpel (*Gaussian Error Linear Units*, 2016)::

    gelu(x) ≈ ½ · x · (1 + tanh(√(2/π) · (x + 0.044715·x³))),

with ``x³`` written as ``(x·x)·x`` (no ``Pow``, which the Edge TPU lacks too): ops ``Mul`` ×6, ``Add`` ×2,
``Tanh`` ×1 replace ``Div``/``Mul``, ``Erf``, ``Add``, ``Mul`` ×2. The constants must match: the scale ``√2`` or
``1/√2`` to a relative ``10⁻⁴`` (1.41421, 1.4142135 and 0.70710677 all do), the one and the half exactly, each
a scalar (or a size-1 tensor that cannot broadcast ``x`` to a higher rank); otherwise the match is refused with
the reason. A bare ``Erf`` is left alone (``erf-decompose`` handles it).

**Error.** Both forms are ``x·σ(x)`` with ``σ → 0/1`` in the tails, so the difference vanishes for large ``|x|``
and is largest where the two sigmoids ``Φ(x)`` and ``½(1 + tanh(…))`` differ most, around ``|x| ≈ 2.7``. Measured
against the exact GELU (float64, :func:`math.erf`) on a dense grid of ``[−12, 12]`` (step 5·10⁻⁵) plus log-spaced
points out to ``±3.4·10³⁸`` and ``±inf``, the maximum absolute error is 4.73·10⁻⁴ at ``x = ±2.70`` in float64 and
the same in float32 run in ONNX Runtime (rounding adds ``< 10⁻⁶``), so the registered bound is
:data:`FP32_BOUND` = 5·10⁻⁴ on the GELU's output (``tests/rules/test_gelu.py`` asserts it over that grid). It is
an *absolute* bound: for ``x → −∞`` both forms are tiny (``gelu(−6) ≈ −6·10⁻⁹``) but their ratio is not 1. In
float32, ``x·x·x`` overflows for ``|x| > 7·10¹²``: ``tanh(±inf) = ±1`` gives ``x`` and ``−0`` as GELU does,
and ``x = −inf`` gives NaN in both the original (``−inf · 0``) and the rewrite.

The tanh form is what ``torch.nn.GELU(approximate="tanh")`` computes; its error on a whole network is usually
far below the per-activation bound, but it is an approximation: the rule is ``APPROX`` and a model is verified
with the fp32 tolerance's absolute floor raised to the bound. Only float32 and float64 graphs are rewritten.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase, RewriteRuleSet

from modelport.rules._util import const_array, rank_of
from modelport.rules.catalog import Exactness, RuleSettings, target_rule

#: √(2/π) and the cubic coefficient of the tanh form.
TANH_K = math.sqrt(2.0 / math.pi)
TANH_C = 0.044715
#: Measured maximum absolute error of the tanh form against the exact GELU is 4.73e-4 (see the module docstring).
FP32_BOUND = 5e-4
#: Relative tolerance on the matched √2 (or 1/√2) constant.
SCALE_RTOL = 1e-4

_FLOATS = (ir.DataType.FLOAT, ir.DataType.DOUBLE)

#: Where the ½ sits: ``(x·(1+erf))·½``, ``(x·½)·(1+erf)`` or ``x·((1+erf)·½)``.
FORMS = ("half-last", "half-first", "half-inside")


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """The tanh form in numpy, evaluated like the rewritten graph (same ops, same order, x's dtype)."""
    dtype = x.dtype.type
    with np.errstate(over="ignore", invalid="ignore"):
        cube = (x * x) * x
        inner = dtype(TANH_K) * (x + dtype(TANH_C) * cube)
        return (x * dtype(0.5)) * (np.tanh(inner) + dtype(1))


def _scalar_like(value: ir.Value, x: ir.Value) -> np.ndarray | None:
    """The constant as a numpy array when it is a single element that does not broadcast ``x`` to a higher rank."""
    array = const_array(value)
    if array is None or array.size != 1:
        return None
    if array.ndim > 0:
        rank = rank_of(x)
        if rank is None or rank < array.ndim:
            return None
    return array


class ErfGeluToTanh(RewriteRuleClassBase):
    """One exporter spelling of ``½·x·(1 + erf(x/√2))`` → the tanh form.

    Args:
        divide: the Erf's argument is ``Div(x, √2)`` (else ``Mul(x, 1/√2)``).
        form: where the ½ sits, one of :data:`FORMS`.
    """

    def __init__(self, divide: bool, form: str) -> None:
        if form not in FORMS:
            raise ValueError(f"unknown GELU form {form!r}")
        super().__init__(name=f"ErfGeluToTanh[{'div' if divide else 'mul'},{form}]")
        self.divide = divide
        self.form = form

    def pattern(self, op: Any, x: ir.Value, scale: ir.Value, one: ir.Value, half: ir.Value) -> ir.Value:
        scaled = op.Div(x, scale) if self.divide else op.Mul(x, scale)
        bracket = op.Add(op.Erf(scaled), one)
        if self.form == "half-last":
            return op.Mul(op.Mul(x, bracket), half, _outputs=["out"])
        if self.form == "half-first":
            return op.Mul(op.Mul(x, half), bracket, _outputs=["out"])
        return op.Mul(x, op.Mul(bracket, half), _outputs=["out"])

    def check(
        self, context: Any, x: ir.Value, scale: ir.Value, one: ir.Value, half: ir.Value, out: ir.Value
    ) -> MatchResult:
        result = MatchResult()
        if x.dtype not in _FLOATS:
            return result.fail(f"GELU input dtype {x.dtype} is unknown or not float32/float64")
        constants = {name: _scalar_like(v, x) for name, v in (("scale", scale), ("one", one), ("half", half))}
        missing = [name for name, array in constants.items() if array is None]
        if missing:
            return result.fail(f"GELU {', '.join(missing)} not a single-element constant (or it broadcasts x)")
        want = math.sqrt(2.0) if self.divide else 1.0 / math.sqrt(2.0)
        got = float(constants["scale"].reshape(()))  # type: ignore[union-attr]
        if abs(got - want) > SCALE_RTOL * want:
            return result.fail(f"the Erf argument is x {'/' if self.divide else '·'} {got:g}, not the GELU's {want:g}")
        if float(constants["one"].reshape(())) != 1.0 or float(constants["half"].reshape(())) != 0.5:  # type: ignore[union-attr]
            return result.fail("the GELU's 1 + erf(…) or its ½ has another constant")
        return result

    def rewrite(self, op: Any, x: ir.Value, scale: ir.Value, one: ir.Value, half: ir.Value, out: ir.Value) -> ir.Value:
        assert x.dtype is not None
        dtype = x.dtype.numpy()
        prefix = f"{out.name}_gelu_tanh"
        k = op.initializer(ir.tensor(np.array(TANH_K, dtype=dtype)), name=f"{prefix}_k")
        c = op.initializer(ir.tensor(np.array(TANH_C, dtype=dtype)), name=f"{prefix}_c")
        cube = op.Mul(op.Mul(x, x), x)
        inner = op.Mul(k, op.Add(x, op.Mul(c, cube)))
        return op.Mul(op.Mul(x, half), op.Add(op.Tanh(inner), one))


def gelu_rules() -> RewriteRuleSet:
    """Every spelling (Div/Mul scale × three places of the ½ × operand orders) → the tanh form."""
    rules = [ErfGeluToTanh.rule(divide, form) for divide in (True, False) for form in FORMS]
    return RewriteRuleSet(rules, commute=True)


@target_rule(
    "erf-gelu-approx",
    summary="exact GELU x·½·(1 + erf(x/√2)) → tanh form ½x(1 + tanh(√(2/π)(x + 0.044715x³))), |ε| ≤ 5e-4",
    removes=("Erf",),
    adds=("Tanh", "Mul", "Add"),
    exactness=Exactness.APPROX,
    bound=FP32_BOUND,
)
def erf_gelu_approx(settings: RuleSettings) -> RewriteRuleSet:
    """The registered form of :func:`gelu_rules`."""
    return gelu_rules()
