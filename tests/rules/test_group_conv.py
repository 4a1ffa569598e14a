"""split-group-conv: grouped convs (groups 2 and 4, bias or not, strides/pads/dilations, 1-D and 2-D, old opsets)
against ONNX Runtime's grouped kernel at the fp32 tolerance; depthwise skipped unless asked; refusals with reasons."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from modelport.rules.catalog import RuleSettings, rule_spec
from modelport.rules.group_conv import GROUPED_CONV, SplitGroupConv, is_grouped_conv
from modelport.verify.comparator import compare_outputs
from modelport.verify.tolerance import Tolerance
from rule_helpers import apply_rule, run_one


def _model(
    channels: int,
    out_channels: int,
    group: int,
    *,
    bias: bool = True,
    spatial: tuple[int, ...] = (9, 11),
    kernel: tuple[int, ...] = (3, 3),
    opset: int = 17,
    const_weights: bool = True,
    channel_dim: int | str | None = None,
    **attrs: Any,
) -> onnx.ModelProto:
    rng = np.random.default_rng(group * 7 + channels)
    w = rng.standard_normal((out_channels, channels // group, *kernel)).astype(np.float32)
    b = rng.standard_normal(out_channels).astype(np.float32)
    dim = channels if channel_dim is None else channel_dim
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", dim, *spatial])]
    inits = []
    if const_weights:
        inits.append(onnx.numpy_helper.from_array(w, "w"))
    else:
        inputs.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w.shape)))
    names = ["x", "w"]
    if bias:
        inits.append(onnx.numpy_helper.from_array(b, "b"))
        names.append("b")
    node = helper.make_node("Conv", names, ["y"], group=group, **attrs)
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)
    return onnx.shape_inference.infer_shapes(proto)


def _apply(proto: onnx.ModelProto, settings: RuleSettings | None = None) -> tuple[int, onnx.ModelProto]:
    return apply_rule("split-group-conv", proto, settings)


def _run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return run_one(proto, x)


def _ops(proto: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


def _check_same(proto: onnx.ModelProto, out: onnx.ModelProto, channels: int, spatial: tuple[int, ...]) -> float:
    x = np.random.default_rng(1).standard_normal((2, channels, *spatial)).astype(np.float32)
    ref, got = _run(proto, x), _run(out, x)
    comparison = compare_outputs({"y": ref}, {"y": got}, Tolerance.for_precision("fp32"))
    assert comparison.passed, comparison.reason()
    return comparison.max_abs


CASES: dict[str, dict[str, Any]] = {
    "g2 bias": dict(channels=4, out_channels=6, group=2),
    "g4 no bias": dict(channels=8, out_channels=8, group=4, bias=False),
    "g4 strides pads dilations": dict(
        channels=8, out_channels=12, group=4, strides=[2, 1], pads=[1, 2, 0, 1], dilations=[1, 2]
    ),
    "g2 auto_pad same_upper": dict(channels=6, out_channels=4, group=2, auto_pad="SAME_UPPER", strides=[2, 2]),
    "g2 1-D": dict(channels=4, out_channels=4, group=2, spatial=(17,), kernel=(5,), pads=[2, 2]),
    "g2 opset 11 (Split attribute)": dict(channels=4, out_channels=6, group=2, opset=11),
    "g4 opset 18 (Split sizes input)": dict(channels=8, out_channels=4, group=4, opset=18),
}


@pytest.mark.parametrize("case", list(CASES))
def test_split_matches_grouped_conv(case: str) -> None:
    kw = CASES[case]
    proto = _model(**kw)
    count, out = _apply(proto)
    group = int(kw["group"])
    assert count == 1
    assert _ops(out) == ["Split", *["Conv"] * group, "Concat"]
    assert all(a.i == 1 for n in out.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group")
    if kw.get("opset") == 11:
        (split,) = (n for n in out.graph.node if n.op_type == "Split")
        assert len(split.input) == 1 and [a.name for a in split.attribute if a.name == "split"] == ["split"]
    max_abs = _check_same(proto, out, int(kw["channels"]), tuple(kw.get("spatial", (9, 11))))
    assert max_abs < 1e-5


def test_depthwise_skipped_unless_asked() -> None:
    proto = _model(6, 12, 6)  # depth multiplier 2
    count, out = _apply(proto)
    assert count == 0 and _ops(out) == ["Conv"]
    node = ir.serde.deserialize_model(proto).graph.node(0)
    result = SplitGroupConv().check(None, node.inputs[0], node.inputs[1], node.outputs[0])  # type: ignore[arg-type]
    assert not result and "depthwise" in str(result.reason)
    count, out = _apply(proto, RuleSettings(depthwise=True))
    assert count == 1 and _ops(out) == ["Split", *["Conv"] * 6, "Concat"]
    _check_same(proto, out, 6, (9, 11))


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        (dict(const_weights=False), "not constants"),
        (dict(channel_dim="C"), "channel count is unknown"),
        (dict(group=1), "not a grouped"),
    ],
    ids=["dynamic weights", "unknown channels", "group 1"],
)
def test_refuses(kw: dict[str, Any], reason: str) -> None:
    args: dict[str, Any] = dict(channels=4, out_channels=6, group=2) | kw
    proto = _model(**args)
    node = ir.serde.deserialize_model(proto).graph.node(0)
    result = SplitGroupConv().check(None, node.inputs[0], node.inputs[1], node.outputs[0])  # type: ignore[arg-type]
    assert not result and reason in str(result.reason)
    count, out = _apply(proto)
    assert count == 0 and _ops(out) == ["Conv"]


def test_grouped_conv_pseudo_op_for_the_profile_check() -> None:
    """``--check`` counts grouped (not depthwise) Convs as GROUPED_CONV: the op type the rule removes."""
    assert rule_spec("split-group-conv").removes == (GROUPED_CONV,)

    def grouped(proto: onnx.ModelProto) -> list[bool]:
        return [is_grouped_conv(n) for n in ir.serde.deserialize_model(proto).graph]

    assert grouped(_model(4, 6, 2)) == [True]
    assert grouped(_model(6, 12, 6)) == [False]  # depthwise
    assert grouped(_model(4, 6, 1)) == [False]
    _, out = _apply(_model(4, 6, 2))
    assert not any(grouped(out))
