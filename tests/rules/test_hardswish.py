"""hardswish-decompose / hardswish-fuse: the decomposed form's error bound on a dense grid, onnxscript leaving it
alone, every fused spelling, refusals, and the decompose → fuse round trip."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnxscript.rewriter.rules.common import fuse_hardswish_rules

from modelport.formats import Precision
from modelport.rules.catalog import RuleSettings, rule_spec
from modelport.rules.hardswish import DECOMPOSE_REL_BOUND, SIXTH, hardswish_decomposed
from modelport.verify.comparator import compare_outputs
from modelport.verify.tolerance import Tolerance
from rule_helpers import apply_rule, run_one


def _model(body: str, opset: int = 17, inits: str = "") -> onnx.ModelProto:
    return onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : {opset}]>
        g (float[N,8] x) => (float[N,8] y) {inits}{{
            {body}
        }}
    """)


def _apply(name: str, proto: onnx.ModelProto) -> tuple[int, onnx.ModelProto]:
    return apply_rule(name, proto)


def _ops(proto: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


def _run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return run_one(proto, x)


def _exact(x: np.ndarray) -> np.ndarray:
    x64 = x.astype(np.float64)
    return x64 * np.clip(x64 + 3.0, 0.0, 6.0) / 6.0


HARDSWISH = _model("y = HardSwish(x)")


def test_decompose_bound_and_graph() -> None:
    count, out = _apply("hardswish-decompose", HARDSWISH)
    assert count == 1
    assert sorted(_ops(out)) == ["Add", "Clip", "Mul", "Mul"]
    sixth = [i for i in out.graph.initializer if i.name.endswith("_sixth")]
    assert len(sixth) == 1 and onnx.numpy_helper.to_array(sixth[0]).item() == np.float32(SIXTH)
    assert np.float32(SIXTH) != np.float32(1 / 6)  # the trick: one ulp below float32(1/6)
    x = np.concatenate([np.linspace(-8, 8, 160_000), np.geomspace(1e-30, 1e18, 2000)]).astype(np.float32)
    x = np.concatenate([x, -x]).reshape(-1, 8)
    got, ref = _run(out, x), _run(HARDSWISH, x)
    exact = _exact(x)
    rel = np.abs(got - exact) / np.maximum(np.abs(exact), 1e-30)
    assert rel.max() <= DECOMPOSE_REL_BOUND, rel.max()
    assert rel.max() > 0  # not HardSwish itself: the constant's ulp is visible
    np.testing.assert_array_equal(got, hardswish_decomposed(x))  # numpy mirror = graph
    comparison = compare_outputs({"y": ref}, {"y": got}, Tolerance.for_precision(Precision.FP32))
    assert comparison.passed, comparison.reason()


def test_decompose_refuses_non_float() -> None:
    proto = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (int32[N,8] x) => (int32[N,8] y) {
            y = HardSwish(x)
        }
    """)
    model = ir.serde.deserialize_model(proto)
    assert rule_spec("hardswish-decompose").factory(RuleSettings()).apply_to_model(model) == 0
    assert [n.op_type for n in model.graph] == ["HardSwish"]


def test_onnxscript_leaves_the_decomposed_form_alone() -> None:
    """The reason for 0.16666666: onnxscript's own HardSwish fusion leaves the decomposed graph alone."""
    _, out = _apply("hardswish-decompose", HARDSWISH)
    model = ir.serde.deserialize_model(out)
    assert fuse_hardswish_rules().apply_to_model(model) == 0
    assert "HardSwish" not in _ops(ir.serde.serialize_model(model))


INITS = "<float three = {3.0}, float zero = {0.0}, float six = {6.0}, float sixth = {0.16666667}>"
SPELLINGS = {
    "mul-outer": "a = Add(x, three)\n c = Clip(a, zero, six)\n m = Mul(x, c)\n y = Mul(m, sixth)",
    "mul-outer swapped": "a = Add(x, three)\n c = Clip(a, zero, six)\n m = Mul(c, x)\n y = Mul(sixth, m)",
    "mul-inner": "a = Add(x, three)\n c = Clip(a, zero, six)\n m = Mul(c, sixth)\n y = Mul(x, m)",
    "div-inner": "a = Add(x, three)\n c = Clip(a, zero, six)\n m = Div(c, six)\n y = Mul(x, m)",
    "div-outer (onnxscript)": "a = Add(x, three)\n c = Clip(a, zero, six)\n m = Mul(x, c)\n y = Div(m, six)",
    "hardsigmoid (onnxscript)": "m = HardSigmoid<alpha = 0.16666667, beta = 0.5>(x)\n y = Mul(x, m)",
}


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_fuse_spellings(spelling: str) -> None:
    proto = _model(SPELLINGS[spelling], inits=INITS)
    count, out = _apply("hardswish-fuse", proto)
    assert count == 1
    assert _ops(out) == ["HardSwish"]
    x = np.linspace(-7, 7, 4000, dtype=np.float32).reshape(-1, 8)
    comparison = compare_outputs({"y": _run(proto, x)}, {"y": _run(out, x)}, Tolerance.for_precision("fp32"))
    assert comparison.passed, comparison.reason()


@pytest.mark.parametrize(
    ("body", "opset"),
    [
        ("c = Clip(a, zero, six)\n m = Mul(x, c)\n y = Mul(m, fifth)", 17),  # not 1/6
        ("c = Clip(a, zero, five)\n m = Mul(x, c)\n y = Mul(m, sixth)", 17),  # Relu5
        ("c = Clip(a, zero, six)\n m = Mul(x, c)\n y = Mul(m, sixth)", 13),  # no HardSwish before opset 14
        ("c = Clip(a, zero, six)\n m = Mul(z, c)\n y = Mul(m, sixth)", 17),  # another tensor than x
    ],
)
def test_fuse_refuses(body: str, opset: int) -> None:
    inits = "<float three = {3.0}, float zero = {0.0}, float six = {6.0}, float five = {5.0}, "
    inits += "float sixth = {0.16666667}, float fifth = {0.2}>"
    proto = _model(f"a = Add(x, three)\n z = Neg(x)\n {body}", opset=opset, inits=inits)
    count, out = _apply("hardswish-fuse", proto)
    assert count == 0
    assert "HardSwish" not in _ops(out)


def test_fuse_keeps_intermediate_used_elsewhere() -> None:
    """x·Clip(x+3, 0, 6) also feeds a second output: fusing would drop it, so nothing changes."""
    proto = onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N,8] x) => (float[N,8] y, float[N,8] m) {INITS}{{
            a = Add(x, three)
            c = Clip(a, zero, six)
            m = Mul(x, c)
            y = Mul(m, sixth)
        }}
    """)
    count, _ = _apply("hardswish-fuse", proto)
    assert count == 0


def test_round_trip() -> None:
    """HardSwish → decomposed → HardSwish, on a small conv net (MobileNetV3's block activation)."""
    proto = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,3,8,8] x) => (float[1,4,8,8] y) {
            c = Conv<pads = [1, 1, 1, 1]>(x, w)
            h = HardSwish(c)
            d = Conv(h, v)
            y = HardSwish(d)
        }
    """)
    rng = np.random.default_rng(0)
    proto.graph.initializer.extend(
        [
            onnx.numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
            onnx.numpy_helper.from_array(rng.standard_normal((4, 4, 1, 1)).astype(np.float32), "v"),
        ]
    )
    count, decomposed = _apply("hardswish-decompose", proto)
    assert count == 2 and "HardSwish" not in _ops(decomposed)
    count, fused = _apply("hardswish-fuse", decomposed)
    assert count == 2
    assert _ops(fused) == _ops(proto)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32) * 3
    ref = _run(proto, x)
    comparison = compare_outputs({"y": ref}, {"y": _run(decomposed, x)}, Tolerance.for_precision("fp32"))
    assert comparison.passed, comparison.reason()
    np.testing.assert_array_equal(_run(fused, x), ref)


def test_decompose_refuses_below_opset_11() -> None:
    """HardSwish needs opset 14, Clip's min/max inputs opset 11: an (invalid) older model is left as it is."""
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(_model("y = HardSwish(x)", opset=10)))
    assert rule_spec("hardswish-decompose").factory(RuleSettings()).apply_to_model(model) == 0
    assert [n.op_type for n in model.graph] == ["HardSwish"]


@pytest.mark.parametrize(
    ("attrs", "fused"),
    [
        ("alpha=0.16666667", True),  # beta omitted: ONNX's default 0.5 (onnxscript's own rule reads it as -1)
        ("alpha=0.16666667, beta=0.5", True),
        ("", False),  # both defaults: alpha 0.2 is not HardSwish's gate
        ("alpha=0.16666667, beta=0.4", False),
    ],
)
def test_fuse_hardsigmoid_gate_reads_the_default_attributes(attrs: str, fused: bool) -> None:
    proto = _model(f"h = HardSigmoid<{attrs}>(x)\ny = Mul(x, h)" if attrs else "h = HardSigmoid(x)\ny = Mul(h, x)")
    count, out = _apply("hardswish-fuse", proto)
    assert (count, _ops(out) == ["HardSwish"]) == ((1, True) if fused else (0, False))
    if fused:
        x = np.linspace(-6, 6, 32, dtype=np.float32).reshape(4, 8)
        np.testing.assert_allclose(_run(out, x), _run(proto, x), atol=1e-6)
