"""erf-gelu-approx and erf-gelu-fitted: each form's error against the exact GELU on a dense grid of the real line
(float64 and float32 in ONNX Runtime), every exporter spelling matched by both rules, refusals, and a GELU MLP judged
by the comparator at the fp32 tolerance with its floor raised to the documented bound (and, for the fitted form,
``modelport.rewrite`` passing at its default tolerance)."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnxscript.rewriter import MatchResult

import models
from modelport.formats import Precision
from modelport.rewriting import RewriteOptions, rewrite
from modelport.rules.catalog import Exactness, RuleSettings, rule_spec
from modelport.rules.gelu import (
    FITTED_BOUND,
    FITTED_C,
    FITTED_CLIP,
    FP32_BOUND,
    ErfGeluToFitted,
    ErfGeluToTanh,
    gelu_fitted,
    gelu_tanh,
)
from modelport.verify.comparator import compare_outputs
from modelport.verify.tolerance import Tolerance

RULE = "erf-gelu-approx"
FITTED = "erf-gelu-fitted"
#: what replaces one GELU: x·x, (x·x)·x, c·x³, k·(…), x·½, the final product; x + c·x³, tanh + 1; Tanh
AFTER = Counter({"Mul": 6, "Add": 2, "Tanh": 1})
#: the fitted form: Clip; t·t, one Mul and one Add per Horner step, t·(…), x·½, the final product; tanh + 1; Tanh
AFTER_FITTED = Counter({"Clip": 1, "Mul": len(FITTED_C) + 3, "Add": len(FITTED_C), "Tanh": 1})


def _grid() -> np.ndarray:
    """Dense on [-12, 12] (step 5e-5), log-spaced out to the largest float32, and the special values."""
    tails = np.geomspace(12.0, 3.4e38, 2_000)
    return np.concatenate([np.linspace(-12.0, 12.0, 480_001), tails, -tails, [0.0, -0.0, np.inf]])


def _exact(x: np.ndarray) -> np.ndarray:
    return np.array([0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0))) for v in x.tolist()])


def _gelu_model(
    divide: bool = True,
    form: str = "half-last",
    swap: bool = False,
    scale: float | None = None,
    one: float = 1.0,
    half: float = 0.5,
    dtype: str = "float",
    dims: str = "N, 4",
) -> onnx.ModelProto:
    """One exporter spelling of ½·x·(1 + erf(x/√2)); ``swap`` reverses every commutative operand pair."""
    s = scale if scale is not None else (math.sqrt(2.0) if divide else 1.0 / math.sqrt(2.0))

    def pair(a: str, b: str) -> str:
        return f"{b}, {a}" if swap else f"{a}, {b}"

    scaled = "d = Div(x, s)" if divide else f"d = Mul({pair('x', 's')})"
    tail = {
        "half-last": f"m = Mul({pair('x', 'a')})\n y = Mul({pair('m', 'h')})",
        "half-first": f"m = Mul({pair('x', 'h')})\n y = Mul({pair('m', 'a')})",
        "half-inside": f"m = Mul({pair('a', 'h')})\n y = Mul({pair('x', 'm')})",
    }[form]
    return onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g ({dtype}[{dims}] x) => ({dtype}[{dims}] y)
            <{dtype} s = {{{s!r}}}, {dtype} one = {{{one!r}}}, {dtype} h = {{{half!r}}}> {{
            {scaled}
            e = Erf(d)
            a = Add({pair("e", "one")})
            {tail}
        }}
    """)


def _float16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The same model in float16 (the text parser has no float16 literals)."""
    for value in [*proto.graph.input, *proto.graph.output]:
        value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    for i, init in enumerate(proto.graph.initializer):
        array = onnx.numpy_helper.to_array(init).astype(np.float16)
        proto.graph.initializer[i].CopyFrom(onnx.numpy_helper.from_array(array, init.name))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _apply(proto: onnx.ModelProto, rule: str = RULE) -> tuple[int, onnx.ModelProto]:
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))
    count = rule_spec(rule).factory(RuleSettings()).apply_to_model(model)
    out = ir.serde.serialize_model(model)
    onnx.checker.check_model(out, full_check=True)
    return count, out


def _run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


def _ops(proto: onnx.ModelProto) -> Counter[str]:
    return Counter(n.op_type for n in proto.graph.node)


def _bound_tolerance(bound: float = FP32_BOUND) -> Tolerance:
    """The fp32 policy with its absolute floor raised to the rule's bound (what ``rewrite`` applies to APPROX)."""
    base = Tolerance.for_precision(Precision.FP32)
    return Tolerance(rtol=base.rtol, atol=max(base.atol, bound), scale=base.scale, max_rel_l2=None)


def test_tanh_form_error_in_float64() -> None:
    x = _grid()
    with np.errstate(invalid="ignore"):
        err = np.abs(gelu_tanh(x) - _exact(x))
    finite = np.isfinite(x)
    assert err[finite].max() <= 4.75e-4  # the documented 4.73e-4 …
    assert err[finite].max() >= 4.7e-4  # … is the real maximum, not a loose cap
    worst = np.abs(x[finite][np.argmax(err[finite])])
    assert 2.6 < worst < 2.8


def test_rewritten_graph_in_float32_within_bound() -> None:
    count, out = _apply(_gelu_model(dims="N"))
    assert count == 1 and _ops(out) == AFTER
    x = _grid().astype(np.float32)
    got = _run(out, x).astype(np.float64)
    finite = np.isfinite(x)
    err = np.abs(got[finite] - _exact(x[finite].astype(np.float64)))
    assert err.max() <= FP32_BOUND, err.max()
    assert err.max() > 4.5e-4
    np.testing.assert_allclose(got[-3:], [0.0, 0.0, np.inf])
    np.testing.assert_allclose(got, gelu_tanh(x).astype(np.float64), atol=2e-6)  # numpy mirror = graph
    huge = _run(out, np.array([-1e13, 1e13, -np.inf], np.float32))  # x³ overflows: GELU's limits, and NaN
    assert huge[0] == 0.0 and huge[1] == np.float32(1e13) and np.isnan(huge[2])


def test_fitted_form_error_in_float64_is_equioscillating() -> None:
    """The fit: max |ε| = 3.06e-6 on the real line, reached with alternating signs near the documented points."""
    x = np.linspace(-12.0, 12.0, 480_001)
    err = gelu_fitted(x) - _exact(x)
    assert 3.0e-6 <= np.abs(err).max() <= 3.07e-6
    for point, sign in ((0.50, -1), (1.14, 1), (1.77, -1), (2.45, 1), (3.23, -1), (4.24, 1)):
        near = err[np.abs(x - point) < 0.05]
        extreme = near[np.argmax(np.abs(near))]
        assert np.sign(extreme) == sign and abs(extreme) >= 2.9e-6  # the documented sign, at the maximum
    assert np.abs(err[np.abs(x) >= FITTED_CLIP]).max() <= 6e-9  # past the clip: x or 0, GELU up to x·Φ(−x)


def test_fitted_clip_saturates_tanh_in_float32() -> None:
    """p(±6) is large enough that tanh rounds to exactly ±1 in float32 (numpy and ONNX Runtime) and p rises
    monotonically up to the clip."""
    t = np.linspace(0.0, FITTED_CLIP, 60_001)
    acc = np.full_like(t, FITTED_C[-1])
    for c in reversed(FITTED_C[:-1]):
        acc = c + t * t * acc
    p = t * acc
    assert np.all(np.diff(p) > 0) and p[-1] > 10
    assert np.tanh(np.float32(p[-1])) == np.float32(1)
    _, out = _apply(_gelu_model(dims="N"), FITTED)
    got = _run(out, np.array([6.0, 6.5, 1e6, -6.0, -1e6], np.float32))
    np.testing.assert_array_equal(got, np.array([6.0, 6.5, 1e6, 0.0, 0.0], np.float32))


def test_fitted_graph_in_float32_within_bound() -> None:
    count, out = _apply(_gelu_model(dims="N"), FITTED)
    assert count == 1 and _ops(out) == AFTER_FITTED
    x = _grid().astype(np.float32)
    got = _run(out, x).astype(np.float64)
    finite = np.isfinite(x)
    err = np.abs(got[finite] - _exact(x[finite].astype(np.float64)))
    assert err.max() <= FITTED_BOUND, err.max()
    assert err.max() > 3e-6  # the bound is the fit's error plus float32 rounding, not a loose cap
    assert err.max() * 100 < FP32_BOUND  # over 100× below the tanh form's
    np.testing.assert_allclose(got[-3:], [0.0, 0.0, np.inf])
    np.testing.assert_allclose(got, gelu_fitted(x).astype(np.float64), atol=2e-6)  # numpy mirror = graph
    huge = _run(out, np.array([-3.4e38, 3.4e38, -np.inf, np.nan], np.float32))
    assert huge[0] == 0.0 and huge[1] == np.float32(3.4e38) and np.isnan(huge[2]) and np.isnan(huge[3])


def test_fitted_registered_as_approximate() -> None:
    spec = rule_spec(FITTED)
    assert spec.exactness is Exactness.APPROX and spec.bound == FITTED_BOUND
    assert spec.removes == ("Erf",) and set(spec.adds) == {"Clip", "Mul", "Add", "Tanh"}


def test_fitted_refuses_float64_and_old_opsets_and_says_why() -> None:
    double = _gelu_model(dtype="double")
    assert _apply(double, RULE)[0] == 1  # the tanh form rewrites float64 …
    count, out = _apply(double, FITTED)  # … the fitted one does not: tanh(p(6)) is not 1 in float64
    assert count == 0 and _ops(out)["Erf"] == 1
    assert "float32 only" in str(_check(double, fitted=True).reason)
    report = rewrite(double, options=RewriteOptions(rules=(FITTED,))).report  # the CLI prints why
    assert report.rules[0].matches == 0 and "float32 only" in " ".join(report.rules[0].refused)
    old = _gelu_model()
    old.opset_import[0].version = 10  # Erf exists, Clip's bounds are attributes there
    assert _apply(old, FITTED)[0] == 0
    assert "opset 11" in str(_check(old, fitted=True).reason)
    assert "not the GELU's" in str(_check(_gelu_model(scale=1.5), fitted=True).reason)  # the shared checks run
    assert _check(_gelu_model(), fitted=True)


def test_fitted_gelu_mlp_passes_rewrite_at_the_default_tolerance() -> None:
    """modelport.rewrite with only erf-gelu-fitted on a GELU MLP: verified at its default (bound-raised fp32)
    tolerance, and the difference is far below the tanh form's."""
    proto = models.gelu_mlp("N", 64, 32)
    result = rewrite(proto, options=RewriteOptions(rules=(FITTED,)))
    report = result.report
    assert [(r.name, r.matches) for r in report.rules] == [(FITTED, 1)]
    assert report.verification is not None and report.verification.passed
    assert _ops(result.model) == AFTER_FITTED + Counter({"MatMul": 1})
    fitted_error = max(o.max_abs for o in report.verification.outputs)
    tanh = rewrite(proto, options=RewriteOptions(rules=(RULE,), tolerance=Tolerance(rtol=1e-4, atol=1.0)))
    assert tanh.report.verification is not None
    assert 0 < fitted_error * 10 < max(o.max_abs for o in tanh.report.verification.outputs)


SPELLINGS = list(itertools.product([True, False], ["half-last", "half-first", "half-inside"], [False, True]))


#: each rule with what replaces one GELU and its bound
RULES = [(RULE, AFTER, FP32_BOUND), (FITTED, AFTER_FITTED, FITTED_BOUND)]


@pytest.mark.parametrize(("rule", "after", "bound"), RULES, ids=[RULE, FITTED])
@pytest.mark.parametrize(("divide", "form", "swap"), SPELLINGS)
def test_every_exporter_spelling_is_matched(
    divide: bool, form: str, swap: bool, rule: str, after: Counter[str], bound: float
) -> None:
    proto = _gelu_model(divide, form, swap)
    count, out = _apply(proto, rule)
    assert count == 1
    assert _ops(out) == after  # Erf, Div and the scale Mul are gone; only the rule's adds appear
    assert set(_ops(out)) == set(rule_spec(rule).adds)
    x = np.random.default_rng(0).uniform(-8, 8, (256, 4)).astype(np.float32)
    ref, got = _run(proto, x), _run(out, x)
    assert np.abs(ref - got).max() <= bound
    comparison = compare_outputs({"y": ref}, {"y": got}, _bound_tolerance(bound))
    assert comparison.passed, comparison.reason()


def test_registered_as_approximate() -> None:
    spec = rule_spec(RULE)
    assert spec.removes == ("Erf",) and spec.exactness is Exactness.APPROX and spec.bound == FP32_BOUND


@pytest.mark.parametrize(
    "proto",
    [
        _gelu_model(scale=1.5),  # not √2
        _gelu_model(divide=False, scale=0.75),  # not 1/√2
        _gelu_model(half=0.4),
        _gelu_model(one=2.0),
        _float16(_gelu_model()),
    ],
    ids=["div-scale", "mul-scale", "half", "one", "float16"],
)
@pytest.mark.parametrize("rule", [RULE, FITTED])
def test_other_functions_are_refused(proto: onnx.ModelProto, rule: str) -> None:
    count, out = _apply(proto, rule)
    assert count == 0 and _ops(out) == _ops(proto)


@pytest.mark.parametrize("rule", [RULE, FITTED])
def test_a_bare_erf_or_a_shared_intermediate_is_left_alone(rule: str) -> None:
    bare = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N] x) => (float[N] y) { y = Erf(x) }
    """)
    assert _apply(bare, rule)[0] == 0
    shared = _gelu_model()
    shared.graph.output.append(onnx.helper.make_tensor_value_info("e", onnx.TensorProto.FLOAT, ["N", 4]))
    count, out = _apply(shared, rule)  # the Erf's output is also a model output: removing it would change it
    assert count == 0 and _ops(out)["Erf"] == 1


def test_scale_from_a_graph_input_is_refused() -> None:
    proto = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 4] x, float s) => (float[N, 4] y) <float one = {1.0}, float h = {0.5}> {
            d = Div(x, s)
            e = Erf(d)
            a = Add(e, one)
            m = Mul(x, a)
            y = Mul(m, h)
        }
    """)
    count, out = _apply(proto)
    assert count == 0 and _ops(out)["Erf"] == 1


def test_gelu_mlp_within_the_raised_fp32_tolerance() -> None:
    """BERT's GELU after a MatMul (tests/models.gelu_mlp): 6 → 9 nodes, no Erf, the comparator passes."""
    proto = models.gelu_mlp("N", 64, 32)
    count, out = _apply(proto)
    assert count == 1
    assert _ops(proto) == Counter({"MatMul": 1, "Div": 1, "Erf": 1, "Add": 1, "Mul": 2})
    assert _ops(out) == AFTER + Counter({"MatMul": 1})
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    candidate = ort.InferenceSession(out.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"x": np.random.default_rng(0).standard_normal((16, 64)).astype(np.float32)}
    ref, got = session.run(None, feeds)[0], candidate.run(None, feeds)[0]
    comparison = compare_outputs({"y": ref}, {"y": got}, _bound_tolerance())
    assert comparison.passed, comparison.reason()
    assert 1e-5 < comparison.max_abs <= FP32_BOUND  # an approximation: visible, and within its bound
    strict = compare_outputs({"y": ref}, {"y": got}, Tolerance.for_precision(Precision.FP32))
    assert comparison.max_abs > strict.tolerance.atol  # why the floor is raised: plain fp32 atol is below it


class _Context:
    """What a rule's check reads from onnxscript's match context: the model."""

    def __init__(self, model: ir.Model) -> None:
        self.model = model


def _check(proto: onnx.ModelProto, fitted: bool = False) -> MatchResult:
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))
    values = {v.name: v for node in model.graph for v in (*node.inputs, *node.outputs) if v is not None}
    rule = ErfGeluToFitted(True, "half-last") if fitted else ErfGeluToTanh(True, "half-last")
    return rule.check(_Context(model), values["x"], values["s"], values["one"], values["h"], values["y"])


def test_refusal_says_why() -> None:
    """The check's MatchResult carries the reason ``rewrite`` reports (here: the Erf argument is not x/√2)."""
    refused = _check(_gelu_model(scale=1.5))
    assert not refused and "x / 1.5, not the GELU's 1.41421" in str(refused.reason)
    assert "½ has another constant" in str(_check(_gelu_model(half=0.25)).reason)
    assert _check(_gelu_model())


def test_gelu_inside_a_subgraph_is_found() -> None:
    """The quick 'no Erf here' exit looks into If branches: a GELU in a branch is rewritten."""
    gelu = _gelu_model(dims="N")
    branch = onnx.helper.make_graph(
        list(gelu.graph.node), "then", [], [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N"])],
        initializer=list(gelu.graph.initializer),
    )  # fmt: skip
    other = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["z"])], "else", [],
        [onnx.helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, ["N"])],
    )  # fmt: skip
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("If", ["c"], ["out"], then_branch=branch, else_branch=other)],
        "g",
        [
            onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N"]),
            onnx.helper.make_tensor_value_info("c", onnx.TensorProto.BOOL, []),
        ],
        [onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, ["N"])],
    )
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    count, out = _apply(proto)
    assert count == 1
    x = np.linspace(-6, 6, 1001, dtype=np.float32)
    feeds = {"x": x, "c": np.array(True)}
    ref = ort.InferenceSession(proto.SerializeToString()).run(None, feeds)[0]
    got = ort.InferenceSession(out.SerializeToString()).run(None, feeds)[0]
    assert np.abs(ref - got).max() <= FP32_BOUND
    assert _apply(_model_without_erf())[0] == 0


def _model_without_erf() -> onnx.ModelProto:
    return onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N] x) => (float[N] y) { y = Tanh(x) }
    """)
