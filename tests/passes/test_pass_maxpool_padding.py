"""zero-pad-maxpool: MaxPool padding becomes an explicit zero Pad after non-negative ops, exactly; left alone where
zeros could win a window (input can be negative) or where a window could hold only padding."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import numpy_helper

import models
from modelport.passes import default_passes, registry
from modelport.passes.maxpool_padding import ZeroPadMaxPool

PASS = ["zero-pad-maxpool"]
HEAD = '<ir_version: 8, opset_import: ["" : 17]>'
POOL = "MaxPool<kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]>"


def _model(body: str, **inits: np.ndarray) -> onnx.ModelProto:
    """x[N,3,9,9] → body → y[N,3,5,5]; ``body`` computes ``h`` from ``x``, then ``y = MaxPool(h)``."""
    text = f"{HEAD}\ng (float[N,3,9,9] x) => (float[N,3,5,5] y) {{\n {body}\n y = {POOL}(h)\n}}"
    return models.build(text, **inits)


def _pads(model: onnx.ModelProto, pad: onnx.NodeProto) -> list[int]:
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return inits[pad.input[1]].tolist()


def _run_pass(model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool]:
    ir_model = ir.serde.deserialize_model(model)
    modified = ZeroPadMaxPool()(ir_model).modified
    return ir.serde.serialize_model(ir_model), modified


def test_maxpool_after_relu_gets_a_zero_pad_and_the_raw_one_keeps_its_padding() -> None:
    text = f"""
        {HEAD}
        g (float[N,3,9,9] x) => (float[N,3,5,5] y, float[N,3,5,5] z) {{
            r = Relu(x)
            y = {POOL}(r)
            z = {POOL}(x)
        }}
    """
    # run_optimizer checks onnx.checker, identical ORT outputs (its optimizations off) and modified=False on rerun
    out, report = models.run_optimizer(models.parse(text), PASS, rtol=0, atol=0)
    assert models.op_types(out) == ["Relu", "Pad", "MaxPool", "MaxPool"]
    (stats,) = report.passes  # type: ignore[attr-defined]
    assert stats.modified and stats.nodes_after - stats.nodes_before == 1  # one MaxPool rewritten
    relu, pad, pooled, raw = out.graph.node
    assert pad.input[0] == relu.output[0] and pooled.input[0] == pad.output[0]
    assert _pads(out, pad) == [0, 0, 1, 1, 0, 0, 1, 1]  # ONNX Pad: all begins (N, C, H, W), then all ends
    assert not any(a.name == "pads" for a in pooled.attribute)
    assert [a.ints for a in raw.attribute if a.name == "pads"] == [[1, 1, 1, 1]]


def test_raw_input_would_change_if_it_were_zero_padded() -> None:
    """The negative case matters: on all-negative data a zero pad would win every border window."""
    model = _model("h = Identity(x)")
    out, modified = _run_pass(model)
    assert not modified and models.op_types(out) == ["Identity", "MaxPool"]
    x = {"x": -np.random.default_rng(0).uniform(0.5, 1.0, (1, 3, 9, 9)).astype(np.float32)}
    (y,) = models.ort_outputs(out, x)
    assert y.max() < 0  # with −∞ padding every output stays negative; zeros would have given 0 at the borders


CASES = {
    "sigmoid": ("h = Sigmoid(x)", {}),
    "clip-relu6": ("h = Clip(x, lo, hi)", {"lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}),
    "exp": ("h = Exp(x)", {}),
    "softplus": ("h = Softplus(x)", {}),
    "relu-then-transpose": ("r = Relu(x)\n t = Transpose<perm=[0,1,3,2]>(r)\n h = Identity(t)", {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_non_negative_producers(case: str) -> None:
    body, inits = CASES[case]
    before = models.op_types(_model(body, **inits))
    out, _ = models.run_optimizer(_model(body, **inits), PASS, rtol=0, atol=0)
    assert models.op_types(out) == [*before[:-1], "Pad", "MaxPool"], case


LEFT_ALONE = {
    "leaky-relu": ("h = LeakyRelu(x)", {}),
    "clip-negative-min": ("h = Clip(x, lo)", {"lo": np.array(-1, np.float32)}),
    "relu-then-negate": ("r = Relu(x)\n h = Neg(r)", {}),
}


@pytest.mark.parametrize("case", sorted(LEFT_ALONE))
def test_inputs_that_can_be_negative_are_left_alone(case: str) -> None:
    body, inits = LEFT_ALONE[case]
    model = _model(body, **inits)
    out, modified = _run_pass(model)
    assert not modified and models.op_types(out) == models.op_types(model)


def _pool_model(attrs: str, out_hw: int, opset: int = 17, second_output: bool = False) -> onnx.ModelProto:
    outputs = f"float[1,2,{out_hw},{out_hw}] y" + (f", int64[1,2,{out_hw},{out_hw}] i" if second_output else "")
    lhs = "y, i" if second_output else "y"
    text = f"""
        <ir_version: 7, opset_import: ["" : {opset}]>
        g (float[1,2,7,7] x) => ({outputs}) {{
            r = Relu(x)
            {lhs} = MaxPool<kernel_shape=[3,3], {attrs}>(r)
        }}
    """
    return models.parse(text)


WINDOWS = {
    "ceil-mode": ("pads=[1,1,1,1], strides=[2,2], ceil_mode=1", 4, 17, False),
    "dilated": ("pads=[1,1,1,1], dilations=[2,2]", 5, 17, False),
    "auto-pad": ('auto_pad="SAME_UPPER"', 7, 17, False),
    "indices-used": ("pads=[1,1,1,1]", 7, 17, True),
    "opset-10": ("pads=[1,1,1,1]", 7, 10, False),
    "no-padding": ("pads=[0,0,0,0]", 5, 17, False),
}


@pytest.mark.parametrize("case", sorted(WINDOWS))
def test_windows_the_proof_does_not_cover_are_left_alone(case: str) -> None:
    model = _pool_model(*WINDOWS[case])
    out, modified = _run_pass(model)
    assert not modified and models.op_types(out) == ["Relu", "MaxPool"], case


def test_asymmetric_pads_and_a_second_pool() -> None:
    """Begin and end pads differ; two rewritten pools get distinct initializer names; the result is exact."""
    text = f"""
        {HEAD}
        g (float[2,4,8,8] x) => (float[2,4,4,4] y, float[2,4,4,4] z) {{
            r = Relu(x)
            y = MaxPool<kernel_shape=[2,2], strides=[2,2], pads=[1,0,0,1]>(r)
            z = MaxPool<kernel_shape=[2,2], strides=[2,2], pads=[1,0,0,1]>(r)
        }}
    """
    out, _ = models.run_optimizer(models.parse(text), PASS, rtol=0, atol=0)
    assert models.op_types(out).count("Pad") == 2
    pads = [n for n in out.graph.node if n.op_type == "Pad"]
    assert _pads(out, pads[0]) == [0, 0, 1, 0, 0, 0, 0, 1]
    assert len({p.input[1] for p in pads}) == 2


def test_opt_in_only() -> None:
    assert "zero-pad-maxpool" in registry() and not registry()["zero-pad-maxpool"].default
    assert "zero-pad-maxpool" not in default_passes()
