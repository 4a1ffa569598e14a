"""gathernd-to-gather: bitwise equal outputs for index tuples of every length (negative indices included), the
ops it leaves, and refusals with reasons."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

from modelport.rules.gather import GatherNDToGather, linear_indices
from rule_helpers import apply_rule, run_one

DATA = (3, 4, 5, 2)


def _model(
    indices: np.ndarray | None, *, batch_dims: int = 0, data_dims: list[int | str] | None = None
) -> onnx.ModelProto:
    """y = GatherND(x, indices) (indices an initializer, or a graph input when None); x goes through Relu first so
    the data is not a graph input either."""
    dims = data_dims if data_dims is not None else list(DATA)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)]
    inits = []
    if indices is None:
        inputs.append(helper.make_tensor_value_info("idx", TensorProto.INT64, [2, 1]))
    else:
        inits.append(onnx.numpy_helper.from_array(indices, "idx"))
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("GatherND", ["r", "idx"], ["y"], batch_dims=batch_dims),
    ]
    out_dims = [2, *dims[1:]] if indices is None else [*indices.shape[:-1], *dims[batch_dims + indices.shape[-1] :]]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_dims)
    graph = helper.make_graph(nodes, "g", inputs, [output], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _apply(proto: onnx.ModelProto) -> tuple[int, onnx.ModelProto]:
    return apply_rule("gathernd-to-gather", proto)


def _run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    return run_one(proto, x)


def _ops(proto: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


def _x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal(DATA).astype(np.float32)


CASES = {
    "k=1": (np.array([[2], [0], [-1], [1]], np.int64), ["Relu", "Gather"]),
    "k=1 single": (np.array([1], np.int64), ["Relu", "Gather"]),
    "k=1 batch of pairs": (np.array([[[0], [2]], [[1], [1]]], np.int64), ["Relu", "Gather"]),
    "k=2": (np.array([[0, 3], [2, -1], [-3, 0]], np.int64), ["Relu", "Reshape", "Gather"]),
    "k=3 nested": (np.array([[[1, 2, 4], [0, 0, 0]], [[2, 3, -5], [-1, -1, -1]]], np.int64), None),
    "k=4 scalars": (np.array([[2, 3, 4, 1], [0, 1, 2, 0]], np.int64), ["Relu", "Reshape", "Gather"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bitwise_equal(case: str) -> None:
    indices, ops = CASES[case]
    proto = _model(indices)
    count, out = _apply(proto)
    assert count == 1
    assert "GatherND" not in _ops(out)
    if ops is not None:
        assert _ops(out) == ops
    x = _x()
    ref, got = _run(proto, x), _run(out, x)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    assert got.tobytes() == ref.tobytes()  # bit for bit


def test_linear_indices_match_numpy() -> None:
    idx = np.array([[0, 3, 4], [2, -1, -5], [1, 0, 2]])
    expect = [np.ravel_multi_index(tuple(i % np.array(DATA[:3])), DATA[:3]) for i in idx]
    np.testing.assert_array_equal(linear_indices(idx, DATA), expect)
    with pytest.raises(ValueError):
        linear_indices(np.array([[3, 0]]), DATA)


def _reason(proto: onnx.ModelProto) -> str:
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto))
    node = next(n for n in model.graph if n.op_type == "GatherND")
    context = type("Ctx", (), {"model": model})()
    result = GatherNDToGather().check(context, node.inputs[0], node.inputs[1], node.outputs[0])  # type: ignore[arg-type]
    assert not result
    return str(result.reason)


@pytest.mark.parametrize(
    ("proto", "reason"),
    [
        (_model(None), "not a constant"),
        (_model(np.array([[0], [3], [1]], np.int64), batch_dims=1), "batch_dims"),
        (_model(np.array([[0, 1]], np.int64), data_dims=["N", 4, 5, 2]), "not static"),
        (_model(np.array([[3, 0]], np.int64)), "out of range"),
    ],
    ids=["dynamic indices", "batch_dims", "dynamic shape", "out of range"],
)
def test_refuses(proto: onnx.ModelProto, reason: str) -> None:
    assert reason in _reason(proto)
    count, out = _apply(proto)
    assert count == 0 and "GatherND" in _ops(out)


def test_k1_with_dynamic_batch_dim_is_fine() -> None:
    """k = 1 needs no static shape: Gather does the indexing itself."""
    proto = _model(np.array([[1], [0]], np.int64), data_dims=[3, "H", 5, 2])
    count, out = _apply(proto)
    assert count == 1 and _ops(out) == ["Relu", "Gather"]
    x = _x()
    assert _run(out, x).tobytes() == _run(proto, x).tobytes()
