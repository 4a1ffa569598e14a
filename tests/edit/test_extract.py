"""``modelport.edit.extraction``: sub-graphs between inner tensors, typed by shape inference, verified; bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest

import models
from modelport.edit import CheckOptions, extract
from modelport.edit.extraction import missing_inputs
from modelport.errors import InvalidInputError


def branchy() -> onnx.ModelProto:
    """x → Relu → r; r, z → Add → s → Mul(·, w) → y (an initializer travels with the cut)."""
    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N,4] x, float[N,4] z) => (float[N,4] y) {
            r = Relu(x)
            s = Add(r, z)
            t = Sigmoid(s)
            y = Mul(t, w)
        }
    """)
    return models.with_initializers(model, w=np.arange(4, dtype=np.float32))


def test_inner_cut_is_its_own_model_and_is_verified(tmp_path: Path) -> None:
    source = models.save(branchy(), tmp_path / "g.onnx")
    before = source.read_bytes()
    result = extract(source, ["s"], ["y"])
    graph = result.model.graph
    assert [i.name for i in graph.input] == ["s"] and [o.name for o in graph.output] == ["y"]
    # the new input's type and shape come from shape inference
    dims = graph.input[0].type.tensor_type.shape.dim
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT and dims[1].dim_value == 4
    assert [n.op_type for n in graph.node] == ["Sigmoid", "Mul"] and [t.name for t in graph.initializer] == ["w"]
    onnx.checker.check_model(result.model, full_check=True)
    s = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    got = models.ort_outputs(result.model, {"s": s})[0]
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-s)) * np.arange(4), rtol=1e-6)
    report = result.report
    assert (report.nodes_before, report.nodes_after) == (4, 2)
    assert report.verification is not None and report.verification.passed and report.verification.max_abs == 0
    assert source.read_bytes() == before


def test_graph_input_plus_inner_tensor_and_several_outputs() -> None:
    result = extract(branchy(), ["r", "z"], ["s", "t"])
    assert [i.name for i in result.model.graph.input] == ["r", "z"]
    assert [o.name for o in result.model.graph.output] == ["s", "t"]
    assert result.report.verification is not None and result.report.verification.max_abs == 0


def test_unreachable_outputs_name_the_missing_graph_input() -> None:
    with pytest.raises(InvalidInputError, match="'s' needs graph input 'z'"):
        extract(branchy(), ["r"], ["s"])
    assert missing_inputs(branchy().graph, ["x"], ["y"]) == {"z": "y"}
    assert missing_inputs(branchy().graph, ["x", "z"], ["y"]) == {}


def test_unknown_names_and_empty_lists() -> None:
    with pytest.raises(InvalidInputError, match="no tensor named 'ss'") as exc:
        extract(branchy(), ["ss"], ["y"])
    assert exc.value.hint is not None and "did you mean" in exc.value.hint and "s" in exc.value.hint
    with pytest.raises(InvalidInputError, match="at least one input and one output"):
        extract(branchy(), [], ["y"])
    with pytest.raises(InvalidInputError, match="at least one input and one output"):
        extract(branchy(), ["x"], [])


def test_a_boundary_tensor_without_a_type_is_refused() -> None:
    # a custom-domain op: shape inference cannot type its output
    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17, "custom" : 1]>
        g (float[N,4] x) => (float[N,4] y) {
            c = custom.Mystery(x)
            y = Relu(c)
        }
    """)
    with pytest.raises(InvalidInputError, match="no type for 'c'"):
        extract(model, ["c"], ["y"], check=CheckOptions(verify=False))
