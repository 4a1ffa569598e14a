"""``edit.shapes``: set-batch, set-input-shape (fix-dims + shape inference) and set-opset, with every refusal."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

import models
from modelport.edit import set_batch, set_input_shape, set_opset
from modelport.errors import InvalidInputError


def _dims(info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in info.type.tensor_type.shape.dim]


def test_set_batch_fixes_inputs_inner_shapes_and_outputs() -> None:
    model = models.mlp()
    result = set_batch(model, 3)
    out = result.model
    assert _dims(out.graph.input[0]) == [3, 8] and _dims(out.graph.output[0]) == [3, 4]
    inner = {v.name: _dims(v) for v in out.graph.value_info}
    assert inner["h"] == [3, 16] and inner["r"] == [3, 16]
    assert result.report.changes == ("input x: [batch, 8] → [3, 8]", "output y: [3, 4]")
    v = result.report.verification
    assert v is not None and v.passed and v.max_abs == 0.0
    feeds = models.feeds_for(model, batch=3)
    np.testing.assert_array_equal(models.ort_outputs(model, feeds)[0], models.ort_outputs(out, feeds)[0])
    assert _dims(model.graph.input[0]) == ["batch", 8]  # the input is never modified


def test_set_batch_leaves_a_matching_fixed_batch() -> None:
    result = set_batch(models.fixed_batch_mlp(2), 2)
    assert result.report.changes == ("no input changed",)
    assert result.report.verification is not None and result.report.verification.max_abs == 0.0


def test_set_input_shape_on_a_conv_model() -> None:
    result = set_input_shape(models.conv_bn(), {"image": (2, 3, 8, 8)})
    assert _dims(result.model.graph.input[0]) == [2, 3, 8, 8]
    assert result.report.changes[0] == "input image: [N, 3, 8, 8] → [2, 3, 8, 8]"
    assert result.report.verification is not None and result.report.verification.max_abs == 0.0


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        ({"nope": (1, 8)}, "unknown input"),
        ({"x": (1, 8, 1)}, "has rank 3, the model's input has rank 2"),
        ({"x": (2, 7)}, "sets dim 1 to 7, but the model fixes it to 8"),
        ({"x": (0, 8)}, "non-positive dim"),
        ({}, "no input shape given"),
    ],
)
def test_bad_input_shapes(shapes: dict[str, tuple[int, ...]], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        set_input_shape(models.mlp(), shapes)


def test_bad_batches() -> None:
    with pytest.raises(InvalidInputError, match="fixed leading dim 2"):
        set_batch(models.fixed_batch_mlp(2), 3)
    with pytest.raises(InvalidInputError, match="must be positive"):
        set_batch(models.mlp(), 0)


def test_a_model_that_bakes_in_its_batch_is_refused_at_another() -> None:
    model = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N,8] x) => (float[2,8] y) {
            s = Constant<value = int64[2] {2, 8}>()
            y = Reshape(x, s)
        }
    """)
    assert set_batch(model, 2).report.verification is not None
    with pytest.raises(InvalidInputError, match="the original model does not run at batch 3"):
        set_batch(model, 3)


def _opset13() -> onnx.ModelProto:
    return models.parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        g (float[N,4] x) => (float[N,4] y) {
            r = Relu(x)
            y = Add(r, x)
        }
    """)


def test_set_opset_upgrades_and_verifies() -> None:
    result = set_opset(_opset13(), 17)
    assert [(o.domain, o.version) for o in result.model.opset_import] == [("", 17)]
    assert result.report.changes == ("opset 13 → 17",)
    assert result.report.verification is not None and result.report.verification.max_abs == 0.0
    back = set_opset(result.model, 14)
    assert [o.version for o in back.model.opset_import] == [14]


def test_set_opset_names_the_op_it_cannot_convert() -> None:
    model = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N,4] x, float[4] s, float[4] b) => (float[N,4] y) {
            y = LayerNormalization(x, s, b)
        }
    """)
    with pytest.raises(InvalidInputError, match="cannot convert opset 17 → 16: op LayerNormalization cannot be"):
        set_opset(model, 16)
    with pytest.raises(InvalidInputError, match="opset 99 does not exist"):
        set_opset(model, 99)
    with pytest.raises(InvalidInputError, match="opset 0 does not exist"):
        set_opset(model, 0)
