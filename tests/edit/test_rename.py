"""``edit.rename``: exact and substring renaming of tensors and nodes, sub-graphs included, and every refusal."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import models
from modelport.edit import rename
from modelport.errors import InvalidInputError


def _if_model() -> onnx.ModelProto:
    """y = If(c) then x + k else x * k, where both branches read the outer tensors ``x`` and ``k`` by name."""
    vec = [2, 3]
    then_g = helper.make_graph(
        [helper.make_node("Add", ["x", "k"], ["t_out"], name="then_add")],
        "then",
        [],
        [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, vec)],
    )
    else_g = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["e_out"], name="else_mul")],
        "else",
        [],
        [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, vec)],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then_g, else_branch=else_g)],
        "g",
        [
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, vec),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, vec)],
        [helper.make_tensor("k", TensorProto.FLOAT, vec, np.arange(6, dtype=np.float32) + 1)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def _names(model: onnx.ModelProto) -> set[str]:
    names = {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
    names |= {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        names |= set(node.input) | set(node.output)
    return names - {""}


def test_exact_and_substring_rename_every_occurrence_and_keep_outputs() -> None:
    model = models.mlp()
    saved = model.SerializeToString()
    result = rename(model, {"x": "image", "y": "logits"}, replace=[("w", "weight")])
    out = result.model
    assert _names(out) == {"image", "logits", "weight1", "b1", "weight2", "h", "hb", "r"}
    assert [i.name for i in out.graph.initializer] == ["weight1", "b1", "weight2"]
    assert result.report.inputs == ("image",) and result.report.outputs == ("logits",)
    assert result.report.changes == ("renamed 4 tensors: x → image, y → logits, w1 → weight1, w2 → weight2",)
    v = result.report.verification
    assert v is not None and v.passed and v.max_abs == 0.0 and v.names == ("logits",)
    feeds = models.feeds_for(model, batch=3)
    (want,) = models.ort_outputs(model, feeds)
    (got,) = models.ort_outputs(out, {"image": feeds["x"]})
    np.testing.assert_array_equal(want, got)
    assert model.SerializeToString() == saved  # the input is never modified


def test_exact_name_wins_over_substring() -> None:
    out = rename(models.mlp(), {"w1": "first"}, replace=[("w", "W")]).model
    assert [i.name for i in out.graph.initializer] == ["first", "b1", "W2"]


def test_outer_scope_references_in_sub_graphs_are_renamed() -> None:
    model = _if_model()
    result = rename(model, {"x": "data", "k": "scale", "t_out": "then_y"})
    branches = {a.name: a.g for a in result.model.graph.node[0].attribute}
    assert list(branches["then_branch"].node[0].input) == ["data", "scale"]
    assert list(branches["else_branch"].node[0].input) == ["data", "scale"]
    assert branches["then_branch"].output[0].name == "then_y"
    onnx.checker.check_model(result.model, full_check=True)
    assert result.report.verification is not None and result.report.verification.max_abs == 0.0
    x = np.full((2, 3), 2.0, np.float32)
    for cond, expect in ((True, x + np.arange(1, 7).reshape(2, 3)), (False, x * np.arange(1, 7).reshape(2, 3))):
        (got,) = models.ort_outputs(result.model, {"c": np.array(cond), "data": x})
        np.testing.assert_array_equal(got, expect.astype(np.float32))


def test_rename_nodes_only_leaves_tensors() -> None:
    model = _if_model()
    result = rename(model, {"branch": "choose"}, replace=[("_", "-")], what="nodes")
    node = result.model.graph.node[0]
    assert node.name == "choose"
    assert {a.name: a.g.node[0].name for a in node.attribute} == {"then_branch": "then-add", "else_branch": "else-mul"}
    assert _names(result.model) == _names(model)
    (line,) = result.report.changes
    assert line.startswith("renamed 3 nodes: ")
    assert all(pair in line for pair in ("branch → choose", "then_add → then-add", "else_mul → else-mul"))
    with pytest.raises(InvalidInputError, match="no node named 'x'"):
        rename(model, {"x": "y2"}, what="nodes")


def test_both_renames_tensors_and_nodes() -> None:
    result = rename(_if_model(), replace=[("e", "E")], what="both")
    branches = {a.name: a.g for a in result.model.graph.node[0].attribute}  # attribute names stay
    assert branches["else_branch"].node[0].name == "ElsE_mul" and branches["then_branch"].node[0].name == "thEn_add"
    assert branches["else_branch"].output[0].name == "E_out" and list(branches["else_branch"].node[0].output) == [
        "E_out"
    ]
    assert result.model.graph.initializer[0].name == "k" and result.model.graph.output[0].name == "y"
    assert [line.split(":")[0] for line in result.report.changes] == ["renamed 1 tensor", "renamed 2 nodes"]


@pytest.mark.parametrize(
    ("mapping", "replace", "what", "message"),
    [
        ({"nope": "a"}, [], "tensors", "no tensor named 'nope'"),
        ({"x": ""}, [], "tensors", "the new name for 'x' is empty"),
        ({"x": "h"}, [], "tensors", "gives tensors 'x' and 'h' the same name 'h'|gives tensors 'h' and 'x'"),
        ({}, [("1", "2")], "tensors", "the same name 'w2'"),
        ({}, [("", "a")], "tensors", "substring to replace is empty"),
        ({}, [("zzz", "a")], "tensors", "matches no tensor name"),
        ({}, [("x", "")], "tensors", "leaves an empty name"),
        ({}, [], "tensors", "nothing to rename"),
        ({"x": "a"}, [], "ops", "tensors, nodes or both"),
    ],
)
def test_bad_renamings_raise_one_clear_error(
    mapping: dict[str, str], replace: list[tuple[str, str]], what: str, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        rename(models.mlp(), mapping, replace=replace, what=what)


def test_node_name_collision_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="gives nodes"):
        rename(_if_model(), {"then_add": "else_mul"}, what="nodes")
