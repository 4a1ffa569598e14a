"""prelu-to-relu and leakyrelu-to-max: bitwise equal outputs (special values included), every slope broadcast,
refusals with their reasons."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest

from modelport.rules.catalog import RuleSettings, rule_spec
from modelport.rules.relu_family import LeakyReluToMax, PReluToRelu
from rule_helpers import apply_rule

SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38, -3.4e38], dtype=np.float32)


def _apply(name: str, proto: onnx.ModelProto) -> tuple[int, onnx.ModelProto]:
    return apply_rule(name, proto)


def _run(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, feeds)[0])


def _ops(proto: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


def _image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    x = (np.random.default_rng(seed).standard_normal(shape) * 4).astype(np.float32)
    flat = x.reshape(-1)
    flat[: SPECIAL.size] = SPECIAL
    return x


def _prelu(slope_shape: tuple[int, ...], x_shape: str = "2,4,5,6") -> onnx.ModelProto:
    proto = onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[{x_shape}] x) => (float[{x_shape}] y) {{
            y = PRelu(x, slope)
        }}
    """)
    slope = np.random.default_rng(1).uniform(-0.5, 1.5, slope_shape).astype(np.float32)
    proto.graph.initializer.append(onnx.numpy_helper.from_array(slope, "slope"))
    onnx.checker.check_model(proto, full_check=True)
    return proto


@pytest.mark.parametrize("slope_shape", [(4, 1, 1), (1,), (), (6,), (5, 6), (4, 5, 6), (1, 4, 1, 1)])
def test_prelu_bitwise(slope_shape: tuple[int, ...]) -> None:
    proto = _prelu(slope_shape)
    count, out = _apply("prelu-to-relu", proto)
    assert count == 1
    assert sorted(_ops(out)) == ["Add", "Min", "Mul", "Relu"]
    x = _image((2, 4, 5, 6))
    np.testing.assert_array_equal(_run(out, {"x": x}), _run(proto, {"x": x}))  # NaN == NaN, −0 == 0 too


def test_prelu_slope_as_input_and_symbolic_batch() -> None:
    proto = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N,3,4] x, float[3,1] s) => (float[N,3,4] y) {
            y = PRelu(x, s)
        }
    """)
    count, out = _apply("prelu-to-relu", proto)
    assert count == 1
    feeds = {"x": _image((5, 3, 4)), "s": np.array([[0.1], [-2.0], [0.0]], dtype=np.float32)}
    np.testing.assert_array_equal(_run(out, feeds), _run(proto, feeds))


def test_prelu_refuses_what_would_enlarge_x() -> None:
    """Invalid PRelus (no ONNX checker) show the reasons: the Mul would broadcast x instead of the slope."""
    rule = PReluToRelu()
    for x_shape, slope_shape, reason in (
        ("4,5", (2, 4, 5), "rank 3, above the input's 2"),
        ("4,5", (3, 1), "slope dim 3 does not broadcast to input dim 4"),
    ):
        proto = onnx.parser.parse_model(f"""
            <ir_version: 8, opset_import: ["" : 17]>
            g (float[{x_shape}] x) => (float[{x_shape}] y) {{
                y = PRelu(x, slope)
            }}
        """)
        proto.graph.initializer.append(onnx.numpy_helper.from_array(np.ones(slope_shape, np.float32), "slope"))
        model = ir.serde.deserialize_model(proto)
        node = next(iter(model.graph))
        context = type("Ctx", (), {"model": model})()
        result = rule.check(context, node.inputs[0], node.inputs[1], node.outputs[0])  # type: ignore[arg-type]
        assert not result and reason in result.reason
        assert rule_spec("prelu-to-relu").factory(RuleSettings()).apply_to_model(model) == 0


def _leaky(alpha: float | None) -> onnx.ModelProto:
    attr = "" if alpha is None else f"<alpha = {alpha!r}>"
    return onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N,16] x) => (float[N,16] y) {{
            y = LeakyRelu{attr}(x)
        }}
    """)


@pytest.mark.parametrize("alpha", [None, 0.2, 1.0, 0.1000000015, -0.2, -3.0])
def test_leakyrelu_bitwise(alpha: float | None) -> None:
    proto = _leaky(alpha)
    count, out = _apply("leakyrelu-to-max", proto)
    assert count == 1
    assert sorted(_ops(out)) == ["Max", "Mul"]
    x = _image((64, 16))
    np.testing.assert_array_equal(_run(out, {"x": x}), _run(proto, {"x": x}))


def test_leakyrelu_alpha_zero_is_relu() -> None:
    proto = _leaky(0.0)
    count, out = _apply("leakyrelu-to-max", proto)
    assert count == 1 and _ops(out) == ["Relu"]
    x = _image((64, 16))
    got, ref = _run(out, {"x": x}), _run(proto, {"x": x})
    finite_or_plus = x != -np.inf
    np.testing.assert_array_equal(got[finite_or_plus], ref[finite_or_plus])
    assert np.all(got[x == -np.inf] == 0)  # LeakyRelu's 0·(−∞) is NaN there; Relu gives the limit


@pytest.mark.parametrize("alpha", [1.5, 2.0])
def test_leakyrelu_refuses_alpha_above_one(alpha: float) -> None:
    proto = _leaky(alpha)
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))
    node = next(iter(model.graph))
    result = LeakyReluToMax().check(None, node.inputs[0], node.outputs[0])  # type: ignore[arg-type]
    assert not result and "> 1" in result.reason
    count, out = _apply("leakyrelu-to-max", proto)
    assert count == 0 and _ops(out) == ["LeakyRelu"]
    # and the refusal is needed: Max(x, α·x) is wrong there
    x = np.array([[-2.0, 3.0] * 8], dtype=np.float32)
    assert not np.array_equal(np.maximum(x, np.float32(alpha) * x), _run(proto, {"x": x}))
