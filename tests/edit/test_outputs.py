"""``modelport.edit.outputs``: add inner tensors as outputs, remove outputs and prune; verified; bad inputs."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.parser
import pytest

import models
from modelport.edit import CheckOptions, add_outputs, remove_outputs
from modelport.errors import InvalidInputError


def two_heads() -> onnx.ModelProto:
    """x → Relu → r → Exp → e (output); r → Neg → n (output)."""
    return models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        h (float[N,3] x) => (float[N,3] e, float[N,3] n) {
            r = Relu(x)
            e = Exp(r)
            n = Neg(r)
        }
    """)


def test_add_outputs_types_them_from_shape_inference() -> None:
    source = two_heads()
    before = source.SerializeToString()
    result = add_outputs(source, ["r"])
    outputs = result.model.graph.output
    assert [o.name for o in outputs] == ["e", "n", "r"]
    r_type = outputs[2].type.tensor_type
    assert r_type.elem_type == onnx.TensorProto.FLOAT and r_type.shape.dim[1].dim_value == 3
    onnx.checker.check_model(result.model, full_check=True)
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(models.ort_outputs(result.model, {"x": x})[2], np.maximum(x, 0))
    assert result.report.changes == ("added output r",)
    assert result.report.verification is not None and result.report.verification.max_abs == 0
    assert source.SerializeToString() == before


def test_add_outputs_errors() -> None:
    with pytest.raises(InvalidInputError, match="no computed tensor named 'rr'") as exc:
        add_outputs(two_heads(), ["rr"])
    assert exc.value.hint is not None and "did you mean r" in exc.value.hint
    with pytest.raises(InvalidInputError, match="needs the names"):
        add_outputs(two_heads(), [])
    untyped = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17, "custom" : 1]>
        g (float[N,4] x) => (float[N,4] y) {
            c = custom.Mystery(x)
            y = Relu(x)
        }
    """)
    with pytest.raises(InvalidInputError, match="no type for 'c'"):
        add_outputs(untyped, ["c"], check=CheckOptions(verify=False))


def test_remove_outputs_prunes_what_only_they_used() -> None:
    result = remove_outputs(two_heads(), ["n"])
    graph = result.model.graph
    assert [o.name for o in graph.output] == ["e"]
    assert sorted(n.op_type for n in graph.node) == ["Exp", "Relu"]
    assert result.report.changes == ("removed output n", "pruned 1 node(s) that fed only the removed outputs")
    assert (result.report.nodes_before, result.report.nodes_after) == (3, 2)
    assert result.report.verification is not None and result.report.verification.max_abs == 0


def test_remove_outputs_prunes_initializers_too() -> None:
    result = remove_outputs(add_outputs(models.mlp(), ["r"]).model, ["y"])
    assert [o.name for o in result.model.graph.output] == ["r"]
    assert sorted(t.name for t in result.model.graph.initializer) == ["b1", "w1"]


def test_remove_outputs_errors() -> None:
    with pytest.raises(InvalidInputError, match="no output named 'r'") as exc:
        remove_outputs(two_heads(), ["r"])  # an inner tensor, not an output
    assert exc.value.hint is not None and "e" in exc.value.hint
    with pytest.raises(InvalidInputError, match="removing every output"):
        remove_outputs(two_heads(), ["e", "n"])
    with pytest.raises(InvalidInputError, match="needs the names"):
        remove_outputs(two_heads(), [])
