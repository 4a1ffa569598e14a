"""``edit.constants.shrink_constants``: merged initializers and Constant nodes, bytes, external data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx.parser
import pytest

import models
from modelport.edit import shrink_constants
from modelport.errors import InvalidInputError


def _duplicated() -> onnx.ModelProto:
    """Two equal 32×32 weights, one different, two equal Constant nodes and one Constant that is an output."""
    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N,32] x) => (float[N,32] y, float[1] c3) {
            a = MatMul(x, w1)
            b = MatMul(a, w2)
            d = MatMul(b, w3)
            c1 = Constant<value = float[1] {2.0}>()
            c2 = Constant<value = float[1] {2.0}>()
            c3 = Constant<value = float[1] {2.0}>()
            e = Mul(d, c1)
            y = Mul(e, c2)
        }
    """)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((32, 32)).astype(np.float32)
    return models.with_initializers(model, w1=w, w2=w.copy(), w3=rng.standard_normal((32, 32)).astype(np.float32))


def test_equal_constants_are_merged_and_outputs_stay_bitwise_equal() -> None:
    model = _duplicated()
    saved = model.SerializeToString()
    result = shrink_constants(model)
    out = result.model
    assert [i.name for i in out.graph.initializer] == ["w1", "w3"]
    assert [list(n.input) for n in out.graph.node if n.op_type == "MatMul"] == [["x", "w1"], ["a", "w1"], ["b", "w3"]]
    assert [n.output[0] for n in out.graph.node if n.op_type == "Constant"] == ["c1", "c3"]  # c3 is a graph output
    assert (result.before.initializers, result.after.initializers) == (3, 2)
    assert (result.before.initializer_bytes, result.after.initializer_bytes) == (3 * 4096, 2 * 4096)
    assert (result.before.constants, result.after.constants) == (3, 2)
    assert result.report.changes[0] == "initializers: 3 → 2 (1 merged), 12.0 KiB → 8.0 KiB"
    assert result.report.changes[2] == "constant bytes: 12300 → 8200 (4100 saved)"
    assert (result.report.nodes_before, result.report.nodes_after) == (8, 7)
    assert result.report.verification is not None and result.report.verification.max_abs == 0.0
    feeds = models.feeds_for(model, batch=2)
    for want, got in zip(models.ort_outputs(model, feeds), models.ort_outputs(out, feeds), strict=True):
        np.testing.assert_array_equal(want, got)
    assert model.SerializeToString() == saved


def test_nothing_to_merge_changes_nothing() -> None:
    result = shrink_constants(models.mlp())
    original = models.mlp().graph
    shape = [(n.op_type, list(n.input), list(n.output)) for n in original.node]
    assert [(n.op_type, list(n.input), list(n.output)) for n in result.model.graph.node] == shape
    assert list(result.model.graph.initializer) == list(original.initializer)
    assert result.report.changes[0] == "initializers: 3 → 3 (0 merged), 832 B → 832 B"


def test_external_threshold_moves_big_initializers_out(tmp_path: Path) -> None:
    model = models.with_initializers(
        onnx.parser.parse_model("""
            <ir_version: 8, opset_import: ["" : 17]>
            g (float[N,32] x) => (float[N,32] y) {
                a = MatMul(x, big)
                y = Add(a, small)
            }
        """),
        big=np.ones((32, 32), np.float32),
        small=np.ones((32,), np.float32),
    )
    result = shrink_constants(model, external_threshold=1024)
    report = result.write(tmp_path / "out.onnx")
    assert report.output == str(tmp_path / "out.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.onnx", "out.onnx.data"]
    assert (tmp_path / "out.onnx.data").stat().st_size == 4096
    stored = onnx.load(str(tmp_path / "out.onnx"), load_external_data=False)
    where = {t.name: t.data_location for t in stored.graph.initializer}
    assert where == {"big": onnx.TensorProto.EXTERNAL, "small": onnx.TensorProto.DEFAULT}
    loaded = onnx.load(str(tmp_path / "out.onnx"))
    feeds = models.feeds_for(model)
    np.testing.assert_array_equal(models.ort_outputs(model, feeds)[0], models.ort_outputs(loaded, feeds)[0])
    assert result.model.graph.initializer[0].raw_data  # writing left the result's own tensors in place


def test_refusals(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="threshold must be ≥ 0"):
        shrink_constants(models.mlp(), external_threshold=-1)
    src = models.save(_duplicated(), tmp_path / "m.onnx")
    before = src.read_bytes()
    for threshold in (None, 16):
        with pytest.raises(InvalidInputError, match="refusing to overwrite"):
            shrink_constants(src, external_threshold=threshold).write(src)
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_a_scalar_and_a_one_element_vector_are_not_merged() -> None:
    """Same bytes, different shapes: Gather with a scalar index drops the axis, with a [1] index keeps it."""
    model = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N,4] x) => (float[N] y, float[N,1] z) {
            i0 = Constant<value = int64 {0}>()
            i1 = Constant<value = int64[1] {0}>()
            i2 = Constant<value = int64[1] {0}>()
            y = Gather<axis = 1>(x, i0)
            g = Gather<axis = 1>(x, i1)
            z = Gather<axis = 1>(g, i2)
        }
    """)
    result = shrink_constants(model)
    assert [n.output[0] for n in result.model.graph.node if n.op_type == "Constant"] == ["i0", "i1"]
    assert [list(n.input) for n in result.model.graph.node if n.op_type == "Gather"][1:] == [["x", "i1"], ["g", "i1"]]
    assert result.report.verification is not None and result.report.verification.max_abs == 0.0
