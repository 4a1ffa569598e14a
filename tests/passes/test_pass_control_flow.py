"""Control flow and graph order: If conditions as scalars, constant Ifs inlined, Identity kept where a subgraph
needs it, unsorted graphs sorted; each result checked by onnx.checker and run against the original in ORT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import onnx_ir.passes.common as common
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper
from onnx import helper as oh

from modelport.passes import optimize
from modelport.passes.cleanup import EliminateIdentity
from modelport.passes.control_flow import (
    IfScalarCondition,
    InlineConstantIf,
    constant_condition,
    needs_sort,
    sort_proto,
)

W = np.arange(6, dtype=np.float32).reshape(2, 3)


def _value(name: str, dtype: int = TensorProto.FLOAT, shape: tuple[int, ...] = (2, 3)) -> onnx.ValueInfoProto:
    return oh.make_tensor_value_info(name, dtype, list(shape))


def _branches() -> tuple[onnx.GraphProto, onnx.GraphProto]:
    """then: x·w (w an outer-scope initializer); else: Identity(x) − w (an Identity reading an outer input)."""
    then = oh.make_graph([oh.make_node("Mul", ["x", "w"], ["t_out"])], "then", [], [_value("t_out")])
    other = oh.make_graph(
        [oh.make_node("Identity", ["x"], ["e_id"]), oh.make_node("Sub", ["e_id", "w"], ["e_out"])],
        "else",
        [],
        [_value("e_out")],
    )
    return then, other


def if_model(cond_shape: tuple[int, ...] = (1, 1), constant: bool | None = None) -> onnx.ModelProto:
    """y = If(cond, x·w, x − w): cond = (ΣReduceSum(x) > 0) reshaped to ``cond_shape``, or a constant."""
    then, other = _branches()
    inits = [numpy_helper.from_array(W, "w")]
    nodes = []
    if constant is None:
        nodes += [
            oh.make_node("ReduceSum", ["x"], ["s"], keepdims=1),
            oh.make_node("Greater", ["s", "zero"], ["c2"]),
            oh.make_node("Reshape", ["c2", "cshape"], ["c"]),
        ]
        inits += [
            numpy_helper.from_array(np.zeros((1, 1), np.float32), "zero"),
            numpy_helper.from_array(np.array(cond_shape, np.int64), "cshape"),
        ]
    else:
        inits.append(numpy_helper.from_array(np.array(constant).reshape(cond_shape), "c"))
    nodes.append(oh.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other))
    graph = oh.make_graph(nodes, "g", [_value("x")], [_value("y")], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def identity_branch_output_model() -> onnx.ModelProto:
    """A branch whose output is ``Identity(a)`` of an outer value ``a``, and a model output ``z = Identity(a)``."""
    then = oh.make_graph([oh.make_node("Identity", ["a"], ["t"])], "then", [], [_value("t")])
    other = oh.make_graph([oh.make_node("Neg", ["a"], ["e"])], "else", [], [_value("e")])
    graph = oh.make_graph(
        [
            oh.make_node("Relu", ["x"], ["a"]),
            oh.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
            oh.make_node("Identity", ["a"], ["z"]),
        ],
        "g",
        [_value("x"), _value("c", TensorProto.BOOL, (1,))],
        [_value("y"), _value("z")],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [np.asarray(o) for o in session.run(None, feeds)]


def _apply(pass_: ir.passes.PassBase, model: onnx.ModelProto) -> tuple[onnx.ModelProto, bool, bool]:
    """The pass applied twice to a copy: the result (checked), whether each run modified it."""
    work = ir.serde.deserialize_model(model)
    first = pass_(work).modified
    second = pass_(work).modified
    out = ir.serde.serialize_model(work)
    onnx.checker.check_model(out, full_check=True)
    return out, first, second


def _same(a: onnx.ModelProto, b: onnx.ModelProto, feed_sets: list[dict[str, np.ndarray]]) -> None:
    for feeds in feed_sets:
        for want, got in zip(_run(a, feeds), _run(b, feeds), strict=True):
            np.testing.assert_array_equal(got, want)


X_SETS = [{"x": np.full((2, 3), 0.5, np.float32)}, {"x": np.full((2, 3), -0.5, np.float32)}]  # both branches


@pytest.mark.parametrize("shape", [(1,), (1, 1), (1, 1, 1)])
def test_if_scalar_condition(shape: tuple[int, ...]) -> None:
    model = if_model(shape)
    out, first, second = _apply(IfScalarCondition(), model)
    assert first and not second
    if_node = next(n for n in out.graph.node if n.op_type == "If")
    reshape = next(n for n in out.graph.node if n.output[0] == if_node.input[0])
    assert reshape.op_type == "Reshape" and reshape.input[0] == "c"
    inferred = onnx.shape_inference.infer_shapes(out, strict_mode=True)
    cond = next(v for v in inferred.graph.value_info if v.name == if_node.input[0])
    assert len(cond.type.tensor_type.shape.dim) == 0  # a scalar
    _same(model, out, X_SETS)


def test_if_scalar_condition_leaves_scalars() -> None:
    """A condition known to be a scalar stays (one of unknown shape is reshaped: a no-op for a scalar)."""
    out, first, _ = _apply(IfScalarCondition(), onnx.shape_inference.infer_shapes(if_model(())))
    assert not first
    assert [n.op_type for n in out.graph.node] == ["ReduceSum", "Greater", "Reshape", "If"]


@pytest.mark.parametrize(("constant", "op"), [(True, "Mul"), (False, "Sub")])
@pytest.mark.parametrize("shape", [(), (1,)])
def test_inline_constant_if(constant: bool, op: str, shape: tuple[int, ...]) -> None:
    model = if_model(shape, constant=constant)
    out, first, second = _apply(InlineConstantIf(), model)
    assert first and not second
    ops = [n.op_type for n in out.graph.node]
    assert "If" not in ops and op in ops
    assert [o.name for o in out.graph.output] == ["y"]  # the model output keeps its name
    _same(model, out, X_SETS)


def test_inline_nested_constant_if() -> None:
    """An If in the taken branch with its own constant condition is inlined too (outermost first)."""
    inner = if_model((), constant=False)
    inner_branches = {a.name: a.g for a in inner.graph.node[-1].attribute}
    true = oh.make_node("Constant", [], ["t_cond"], value=numpy_helper.from_array(np.array(True), "tc"))
    then = oh.make_graph(
        [true, oh.make_node("If", ["t_cond"], ["t_y"], **inner_branches)],
        "outer_then",
        [],
        [_value("t_y")],
    )
    other = oh.make_graph([oh.make_node("Neg", ["x"], ["o_y"])], "outer_else", [], [_value("o_y")])
    graph = oh.make_graph(
        [oh.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
        "g",
        [_value("x")],
        [_value("y")],
        [numpy_helper.from_array(W, "w"), numpy_helper.from_array(np.array(True), "c")],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    out, first, second = _apply(InlineConstantIf(), model)
    assert first and not second
    assert "If" not in [n.op_type for n in out.graph.node]
    _same(model, out, X_SETS)


def test_condition_from_a_graph_input_is_not_constant() -> None:
    model = if_model((), constant=True)
    model.graph.input.append(_value("c", TensorProto.BOOL, ()))  # an initializer that is also an input
    work = ir.serde.deserialize_model(model)
    assert constant_condition(work.graph.initializers["c"]) is None
    assert not InlineConstantIf()(work).modified


def test_eliminate_identity_keeps_subgraph_outputs() -> None:
    model = identity_branch_output_model()
    with pytest.raises(ValueError, match="already an output of a different graph"):
        common.IdentityEliminationPass()(ir.serde.deserialize_model(model))  # onnx-ir 1.1.0's pass
    out, first, second = _apply(EliminateIdentity(), model)
    assert first and not second
    assert [n.op_type for n in out.graph.node] == ["Relu", "If"]  # z = Identity(a): a is renamed z
    assert [o.name for o in out.graph.output] == ["y", "z"]
    then = next(a.g for a in out.graph.node[1].attribute if a.name == "then_branch")
    assert [n.op_type for n in then.node] == ["Identity"]  # reads an outer value: kept
    x = np.array([[-1, 2, -3], [4, -5, 6]], np.float32)
    feeds = [{"x": x, "c": np.array([flag])} for flag in (True, False)]
    _same(model, out, feeds)


def test_eliminate_identity_inside_branches() -> None:
    """``e_id = Identity(x)`` in a branch (not a branch output) goes; the branch reads ``x`` directly."""
    model = if_model()
    out, first, _ = _apply(EliminateIdentity(), model)
    assert first
    other = next(a.g for a in out.graph.node[-1].attribute if a.name == "else_branch")
    assert [n.op_type for n in other.node] == ["Sub"] and other.node[0].input[0] == "x"
    _same(model, out, X_SETS)


def _unsorted() -> onnx.ModelProto:
    """y = Relu(x) + 1, listed backwards (the If's branch reads ``a``, defined after it in the list)."""
    then = oh.make_graph([oh.make_node("Neg", ["a"], ["t"])], "then", [], [_value("t")])
    other = oh.make_graph([oh.make_node("Abs", ["a"], ["e"])], "else", [], [_value("e")])
    graph = oh.make_graph(
        [
            oh.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other),
            oh.make_node("Add", ["r", "one"], ["a"]),
            oh.make_node("Relu", ["x"], ["r"]),
        ],
        "g",
        [_value("x"), _value("c", TensorProto.BOOL, ())],
        [_value("y")],
        [numpy_helper.from_array(np.ones((2, 3), np.float32), "one")],
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)


def test_sort_unsorted_graph_with_subgraph() -> None:
    model = _unsorted()
    with pytest.raises(onnx.checker.ValidationError, match="topologically sorted"):
        onnx.checker.check_model(model)
    assert needs_sort(model)
    out = sort_proto(model)
    onnx.checker.check_model(out, full_check=True)
    assert not needs_sort(out)
    assert [n.op_type for n in out.graph.node] == ["Relu", "Add", "If"]
    assert sort_proto(out) is out  # already sorted: returned as is
    x = np.array([[-1, 2, -3], [4, -5, 6]], np.float32)
    for flag in (True, False):
        got = _run(out, {"x": x, "c": np.array(flag)})[0]
        want = -(np.maximum(x, 0) + 1) if flag else np.abs(np.maximum(x, 0) + 1)
        np.testing.assert_array_equal(got, want)


def test_needs_sort_sees_subgraph_order() -> None:
    """A branch whose nodes are listed out of order is found (and sorted) too."""
    then = oh.make_graph(
        [oh.make_node("Neg", ["m"], ["t"]), oh.make_node("Mul", ["x", "x"], ["m"])], "then", [], [_value("t")]
    )
    other = oh.make_graph([oh.make_node("Abs", ["x"], ["e"])], "else", [], [_value("e")])
    graph = oh.make_graph(
        [oh.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
        "g",
        [_value("x"), _value("c", TensorProto.BOOL, ())],
        [_value("y")],
    )
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)
    assert needs_sort(model)
    out = sort_proto(model)
    assert not needs_sort(out)
    then_sorted = next(a.g for a in out.graph.node[0].attribute if a.name == "then_branch")
    assert [n.op_type for n in then_sorted.node] == ["Mul", "Neg"]
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    np.testing.assert_array_equal(_run(out, {"x": x, "c": np.array(True)})[0], -(x * x))


def test_optimize_model_with_identity_branch_output(tmp_path: Path) -> None:
    """The optimizer runs its default passes on the model onnx-ir's identity pass fails on, and verifies."""
    path = tmp_path / "m.onnx"
    onnx.save(identity_branch_output_model(), str(path))
    result = optimize(path)
    assert result.report.verification is not None and result.report.verification.passed
    assert not result.report.rolled_back
