"""The exact GELU subgraph → an ``Erf``-free approximation, for backends without ``Erf`` (the Edge TPU): the rules
``erf-gelu-approx`` (the tanh form of the literature) and ``erf-gelu-fitted`` (a fitted form, 130× more accurate).
Both match the same subgraphs (below) and differ only in what replaces them.

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

The tanh form is what ``torch.nn.GELU(approximate="tanh")`` computes. The bound is per activation: the layers
after a GELU carry its error on, and a MatMul sums it over its inputs, so a whole network moves by more. On the
corpus model ``minilm_int8`` (6 GELUs, a real-token input) the last hidden state moved by up to 2.6·10⁻³ (peak
5.9, relative L2 1.4·10⁻³, cosine 0.999999), on ``rewrite``'s verification feeds by 9.4·10⁻² (relative L2
4.6·10⁻³): above the rule's bound, so ``modelport rewrite`` judges such a model at the bound-raised fp32 floor
and fails it unless the user accepts the difference with ``--atol``. Only float32 and float64 graphs are rewritten.

**The fitted form** (``erf-gelu-fitted``) keeps the shape ``½x(1 + tanh(p))`` but makes ``p`` an odd polynomial
of degree 9 fitted to GELU, of its argument clipped to ``[−6, 6]``::

    gelu(x) ≈ ½ · x · (1 + tanh(p(t))),    t = Clip(x, −6, 6),
    p(t) = t · (c₁ + t²·(c₃ + t²·(c₅ + t²·(c₇ + t²·c₉)))),
    c₁ = 0.797827674,  c₃ = 0.0364692654,  c₅ = −0.000124995692,  c₇ = −3.05688746·10⁻⁵,  c₉ = 1.11885935·10⁻⁶.

*How the coefficients were fitted* (our own fit, float64): the error ``ε(x) = ½x(tanh(p(x)) − erf(x/√2))`` is even
in ``x`` (tanh∘p and erf are odd), so it suffices to minimise ``max |ε|`` over ``[0, 6]``. Starting from the tanh
form (``c₁ = √(2/π)``, ``c₃ = 0.044715·√(2/π)``, the rest 0) we solved this minimax problem by sequential linear
programming: linearise ``ε`` in the coefficients (``∂ε/∂c_k = ½x·(1 − tanh²p)·xᵏ``) on 12,001 points of
``[0, 6]``, minimise the largest linearised ``|ε|`` with ``scipy.optimize.linprog`` inside a trust region, step,
repeat until the step vanishes. The result has six extrema of alternating sign, ``ε ≈ ∓3.0·10⁻⁶`` at
``x ≈ 0.50, 1.14, 1.77, 2.45, 3.23, 4.24`` (equal to 2 %; six for five coefficients is Chebyshev's alternation
condition, so it is the minimax fit to that precision), ``max |ε| = 3.06·10⁻⁶`` on the whole real line,
150× below the tanh form's.

*Why degree 9.* The same fit with three coefficients (degree 5: ``0.79750789, 0.0370056406, −0.000351515806``)
has ``max |ε| = 2.52·10⁻⁵``, but ``minilm_int8`` rewritten with it still moves by 3.9·10⁻³ on ``rewrite``'s feeds
(the tolerance there is 5.7·10⁻⁴) and fails verification. Four coefficients gain only 2× and their ``p(6) = 8.3``
leaves ``tanh(p(6)) = 1 − 1.2·10⁻⁷``, not 1, in float32 (the error would grow as ``6·10⁻⁸·|x|``); six do not
keep ``p`` rising up to 6. Degree 9 costs two more Mul/Add pairs per GELU than degree 5.

*Why the clip, and why ±6 is exact enough.* The fit only constrains ``p`` on ``[0, 6]``, and an int8 target
quantizes every intermediate over its range, which the clip bounds (``t² ≤ 36``). ``p`` rises monotonically on
``[0, 6]`` to ``p(6) = 14.41``; ``1 − tanh(14.41) = 6·10⁻¹³`` is far below half an ulp of 1 in float32
(``2⁻²⁵ = 3·10⁻⁸``), so ``tanh(p(±6))`` rounds to exactly ±1 and for ``|x| ≥ 6`` the rewrite returns ``x`` or
``−0`` — float32 GELU there, up to ``|x|·Φ(−|x|) ≤ 6·Φ(−6) = 5.9·10⁻⁹``, which shrinks further out. The outer
product uses ``x`` itself (not ``t``), so ``±3.4·10³⁸`` stay exact, ``+inf`` gives ``inf``, ``−inf`` gives NaN
(``−inf · 0``) as the original does, and NaN stays NaN. In float64 ``tanh(p(6))`` is ``1 − 6·10⁻¹³``, not 1, so the
absolute error would grow with ``|x|``: the fitted rule rewrites float32 graphs only (float64 is refused with that
reason; ``erf-gelu-approx`` takes it).

*Measured bound.* Evaluated as the graph does (float32 in ONNX Runtime: Clip, the Horner steps, Tanh) against the
exact GELU on the grid above (``[−12, 12]`` step 5·10⁻⁵, log-spaced out to ``±3.4·10³⁸``, ``±inf``), the maximum
absolute error is 3.64·10⁻⁶ at ``|x| ≈ 4.26`` (the fit's 3.06·10⁻⁶ plus float32 rounding: half an ulp of the
output is 2.4·10⁻⁷ there, and the Tanh kernel's own error); the registered bound is :data:`FITTED_BOUND` =
5·10⁻⁶, leaving room for another Tanh kernel. Ops: ``Clip`` ×1, ``Mul`` ×8, ``Add`` ×5, ``Tanh`` ×1, all Edge TPU
builtins. ``Clip`` takes its bounds as inputs only from opset 11, so a GELU in an older opset is refused with that
reason. On ``minilm_int8`` the last hidden state moves by 4.1·10⁻⁴ on ``rewrite``'s feeds (relative L2
2.9·10⁻⁵), inside the default tolerance there (5.7·10⁻⁴): ``modelport rewrite --rules erf-gelu-fitted`` verifies
it without ``--atol``, where the tanh form moves it by 9.4·10⁻² and fails.
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
#: The fitted form's coefficients c₁, c₃, … c₉ of ``p(t) = t·(c₁ + t²·(c₃ + t²·(…)))`` (minimax on [0, 6]).
FITTED_C = (0.797827674, 0.0364692654, -0.000124995692, -3.05688746e-05, 1.11885935e-06)
#: Where the fitted form clips its argument: ``tanh(p(±6))`` is ±1 in float32.
FITTED_CLIP = 6.0
#: Measured maximum absolute error of the fitted form is 3.64e-6 in float32 (see the module docstring).
FITTED_BOUND = 5e-6
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


def gelu_fitted(x: np.ndarray) -> np.ndarray:
    """The fitted form in numpy, evaluated like the rewritten graph (same ops, same order, x's dtype)."""
    dtype = x.dtype.type
    t = np.clip(x, dtype(-FITTED_CLIP), dtype(FITTED_CLIP))
    t2 = t * t
    acc = dtype(FITTED_C[-1])
    for c in reversed(FITTED_C[:-1]):
        acc = dtype(c) + t2 * acc
    p = t * acc
    with np.errstate(invalid="ignore"):
        return (x * dtype(0.5)) * (np.tanh(p) + dtype(1))


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


class ExactGelu(RewriteRuleClassBase):
    """The matching shared by both rules: one exporter spelling of ``½·x·(1 + erf(x/√2))``; subclasses write the
    replacement.

    Args:
        divide: the Erf's argument is ``Div(x, √2)`` (else ``Mul(x, 1/√2)``).
        form: where the ½ sits, one of :data:`FORMS`.
    """

    #: the replacement's name in the rule names (``ErfGeluToTanh[div,half-last]``)
    replacement = "Tanh"

    def __init__(self, divide: bool, form: str) -> None:
        if form not in FORMS:
            raise ValueError(f"unknown GELU form {form!r}")
        super().__init__(name=f"ErfGeluTo{self.replacement}[{'div' if divide else 'mul'},{form}]")
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
        values = {name: float(array.reshape(())) for name, array in constants.items() if array is not None}
        missing = [name for name in constants if name not in values]
        if missing:
            return result.fail(f"GELU {', '.join(missing)} not a single-element constant (or it broadcasts x)")
        want = math.sqrt(2.0) if self.divide else 1.0 / math.sqrt(2.0)
        if abs(values["scale"] - want) > SCALE_RTOL * want:
            sign = "/" if self.divide else "·"
            return result.fail(f"the Erf argument is x {sign} {values['scale']:g}, not the GELU's {want:g}")
        if values["one"] != 1.0 or values["half"] != 0.5:
            return result.fail("the GELU's 1 + erf(…) or its ½ has another constant")
        return result


class ErfGeluToTanh(ExactGelu):
    """The exact GELU → the tanh form ``½x(1 + tanh(√(2/π)(x + 0.044715·x³)))`` (``erf-gelu-approx``)."""

    def rewrite(self, op: Any, x: ir.Value, scale: ir.Value, one: ir.Value, half: ir.Value, out: ir.Value) -> ir.Value:
        assert x.dtype is not None
        dtype = x.dtype.numpy()
        prefix = f"{out.name}_gelu_tanh"
        k = op.initializer(ir.tensor(np.array(TANH_K, dtype=dtype)), name=f"{prefix}_k")
        c = op.initializer(ir.tensor(np.array(TANH_C, dtype=dtype)), name=f"{prefix}_c")
        cube = op.Mul(op.Mul(x, x), x)
        inner = op.Mul(k, op.Add(x, op.Mul(c, cube)))
        return op.Mul(op.Mul(x, half), op.Add(op.Tanh(inner), one))


class ErfGeluToFitted(ExactGelu):
    """The exact GELU → the fitted form ``½x(1 + tanh(p(Clip(x, −6, 6))))`` (``erf-gelu-fitted``)."""

    replacement = "Fitted"

    def check(
        self, context: Any, x: ir.Value, scale: ir.Value, one: ir.Value, half: ir.Value, out: ir.Value
    ) -> MatchResult:
        result = super().check(context, x, scale, one, half, out)
        if not result:
            return result
        if x.dtype != ir.DataType.FLOAT:
            return result.fail(
                f"the fitted GELU is float32 only (tanh(p(6)) is not 1 in {x.dtype}): use erf-gelu-approx"
            )
        if context.model.opset_imports.get("", 0) < 11:
            return result.fail("Clip takes its bounds as inputs only from opset 11 (convert the opset first)")
        return result

    def rewrite(self, op: Any, x: ir.Value, scale: ir.Value, one: ir.Value, half: ir.Value, out: ir.Value) -> ir.Value:
        assert x.dtype is not None
        dtype = x.dtype.numpy()
        prefix = f"{out.name}_gelu_fit"

        def const(value: float, suffix: str) -> ir.Value:
            return op.initializer(ir.tensor(np.array(value, dtype=dtype)), name=f"{prefix}_{suffix}")

        t = op.Clip(x, const(-FITTED_CLIP, "lo"), const(FITTED_CLIP, "hi"))
        t2 = op.Mul(t, t)
        acc = const(FITTED_C[-1], f"c{2 * len(FITTED_C) - 1}")
        for k in range(len(FITTED_C) - 2, -1, -1):  # Horner in t²: c₁ + t²·(c₃ + t²·(… + t²·c_last))
            acc = op.Add(const(FITTED_C[k], f"c{2 * k + 1}"), op.Mul(t2, acc))
        return op.Mul(op.Mul(x, half), op.Add(op.Tanh(op.Mul(t, acc)), one))


class GeluRules(RewriteRuleSet):
    """Every spelling (Div/Mul scale × three places of the ½ × operand orders: 144 pattern variants) → the tanh
    form, or with ``fitted`` the fitted form; a model without ``Erf`` is skipped at once (matching all variants takes
    ~2 s on a 1,800-node graph). A RewriteRuleSet, so ``rewrite`` can ask it why it refused a match."""

    def __init__(self, fitted: bool = False) -> None:
        kind = ErfGeluToFitted if fitted else ErfGeluToTanh
        super().__init__([kind.rule(divide, form) for divide in (True, False) for form in FORMS], commute=True)

    def apply_to_model(self, model: ir.Model, *, verbose: int | None = None, tracer: Any = None) -> int:
        """Rewrite every matched GELU in place (with a tracer: only find out why matches fail); the count."""
        graphs: list[ir.Graph | ir.Function] = [model.graph, *model.functions.values()]
        if not any(node.op_type == "Erf" for graph in graphs for node in ir.traversal.RecursiveGraphIterator(graph)):
            return 0
        return int(super().apply_to_model(model, verbose=verbose, tracer=tracer))


def gelu_rules(fitted: bool = False) -> GeluRules:
    """The rule set of :class:`GeluRules` (the tanh form, or with ``fitted`` the fitted form)."""
    return GeluRules(fitted)


@target_rule(
    "erf-gelu-approx",
    summary="exact GELU x·½·(1 + erf(x/√2)) → tanh form ½x(1 + tanh(√(2/π)(x + 0.044715x³))), |ε| ≤ 5e-4",
    removes=("Erf",),
    adds=("Tanh", "Mul", "Add"),
    exactness=Exactness.APPROX,
    bound=FP32_BOUND,
)
def erf_gelu_approx(settings: RuleSettings) -> GeluRules:
    """The registered form of :func:`gelu_rules`."""
    return gelu_rules()


@target_rule(
    "erf-gelu-fitted",
    summary="exact GELU x·½·(1 + erf(x/√2)) → fitted ½x(1 + tanh(p(t))), t = Clip(x, ±6), p odd of degree 9, "
    "|ε| ≤ 5e-6",
    removes=("Erf",),
    adds=("Clip", "Mul", "Add", "Tanh"),
    exactness=Exactness.APPROX,
    bound=FITTED_BOUND,
)
def erf_gelu_fitted(settings: RuleSettings) -> GeluRules:
    """The registered fitted form (:class:`ErfGeluToFitted`)."""
    return gelu_rules(fitted=True)
