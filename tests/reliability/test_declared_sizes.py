"""Declared tensor sizes are checked before anything is allocated.

A model declaring a 10^12-element tensor (inline without its bytes, sparse, in a Constant node, in a sub-graph, or
in an external file long enough to hold it) fails with one clear ``ModelLoadError`` instead of a ``MemoryError``, an
OOM kill or an engine's ``bad_alloc``; so does a tensor whose data disagrees with its dims. The limit is the
machine's memory, or ``MODELPORT_MAX_MEMORY``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

import models
from modelport.backends import open_runner
from modelport.cli.main import main
from modelport.errors import InvalidInputError, ModelLoadError
from modelport.model_guard import MAX_MEMORY_ENV, check_tensor_sizes, memory_limit, parse_size
from modelport.model_io import load_model, load_proto

HUGE = [10**6, 10**6]  # 10^12 elements: 3.6 TiB of float32
ASSETS = Path(__file__).parents[2] / "src" / "modelport" / "assets"


def _sum_model(
    initializers: list[onnx.TensorProto] = (),  # type: ignore[assignment]
    sparse: list[onnx.SparseTensorProto] = (),  # type: ignore[assignment]
    nodes: list[onnx.NodeProto] = (),  # type: ignore[assignment]
) -> onnx.ModelProto:
    """``y = x + ReduceSum(w)``: ``w`` comes from an initializer, a sparse initializer or a node."""
    graph = oh.make_graph(
        [*nodes, oh.make_node("ReduceSum", ["w"], ["s"], keepdims=0), oh.make_node("Add", ["x", "s"], ["y"])],
        "g",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        list(initializers),
        sparse_initializer=list(sparse),
    )
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8)


def _tensor(dims: list[int], raw: bytes | None = None, name: str = "w") -> onnx.TensorProto:
    tensor = onnx.TensorProto(name=name, data_type=onnx.TensorProto.FLOAT, dims=dims)
    if raw is not None:
        tensor.raw_data = raw
    return tensor


def _huge_sparse() -> onnx.SparseTensorProto:
    values = oh.make_tensor("w", onnx.TensorProto.FLOAT, [1], [1.0])
    indices = oh.make_tensor("i", onnx.TensorProto.INT64, [1], [5])
    return oh.make_sparse_tensor(values, indices, HUGE)


def _huge_in_subgraph() -> onnx.ModelProto:
    branch = oh.make_graph(
        [oh.make_node("Constant", [], ["w"], value=_tensor(HUGE, b"\0" * 4, "c"))],
        "then",
        [],
        [oh.make_tensor_value_info("w", onnx.TensorProto.FLOAT, None)],
    )
    cond = oh.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(True)))
    node = oh.make_node("If", ["cond"], ["w"], then_branch=branch, else_branch=branch)
    return _sum_model(nodes=[cond, node])


HUGE_MODELS = {
    "inline_without_bytes": lambda: _sum_model([_tensor(HUGE)]),
    "inline_four_bytes": lambda: _sum_model([_tensor(HUGE, b"\0" * 4)]),
    "sparse_initializer": lambda: _sum_model(sparse=[_huge_sparse()]),
    "constant_node": lambda: _sum_model(nodes=[oh.make_node("Constant", [], ["w"], value=_tensor(HUGE, b"\0" * 4))]),
    "if_branch": _huge_in_subgraph,
}


@pytest.mark.parametrize("case", list(HUGE_MODELS))
def test_huge_declared_tensor_fails_before_allocation(tmp_path: Path, case: str) -> None:
    path = models.save(HUGE_MODELS[case](), tmp_path / "huge.onnx")
    for load in (load_proto, load_model):
        with pytest.raises(ModelLoadError, match=r"declares 1,000,000,000,000 elements \(3\.6 TiB\), more than"):
            load(path)
    with pytest.raises(ModelLoadError, match="declares 1,000,000,000,000 elements"):
        load_proto(path, check=False, load_external_data=False)


def test_huge_external_tensor_fails_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The data file is long enough (sparse on disk), so only the size guard stands between it and the memory."""
    monkeypatch.setenv(MAX_MEMORY_ENV, "1M")
    w = _tensor([2**20])  # 4 MiB of float32, over a 1 MiB limit
    w.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "w.bin"), ("offset", "0"), ("length", str(4 * 2**20))):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    path = models.save(_sum_model([w]), tmp_path / "ext.onnx")
    with open(tmp_path / "w.bin", "wb") as data:
        data.truncate(4 * 2**20)
    with pytest.raises(
        ModelLoadError, match=r"tensor 'w' declares 1,048,576 elements \(4\.0 MiB\), more than the 1\.0"
    ):
        load_proto(path)
    with pytest.raises(ModelLoadError, match=MAX_MEMORY_ENV), open_runner("onnxruntime", path):
        pass
    monkeypatch.setenv(MAX_MEMORY_ENV, "8M")
    assert load_proto(path).graph.initializer[0].raw_data == b"\0" * 4 * 2**20


def test_total_over_the_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    half = np.zeros(2**17, np.float32)  # 512 KiB each
    model = _sum_model([numpy_helper.from_array(half, "w"), numpy_helper.from_array(half, "unused")])
    assert check_tensor_sizes(model, max_bytes=2**20) == 2**20
    with pytest.raises(ModelLoadError, match=r"the model's tensors declare 1\.0 MiB in all, more than the 1023\.0 KiB"):
        check_tensor_sizes(model, max_bytes=2**20 - 1024)


@pytest.mark.parametrize(
    ("tensor", "expected"),
    [
        (_tensor([16], b"\0" * 60), r"raw_data holds 60 bytes, its dims \[16\] need 64"),
        (_tensor([16], b"\0" * 68), r"raw_data holds 68 bytes, its dims \[16\] need 64"),
        (oh.make_tensor("w", onnx.TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0]), None),
        (
            onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[4], float_data=[1.0] * 3),
            "holds 3 values",
        ),
        (onnx.TensorProto(name="w", data_type=onnx.TensorProto.INT8, dims=[4], int32_data=[1] * 5), "holds 5 values"),
        (_tensor([4]), r"holds 0 values, its dims \[4\] need 4"),
        (_tensor([-4], b""), r"negative dim \[-4\]"),
    ],
)
def test_data_must_agree_with_dims(tmp_path: Path, tensor: onnx.TensorProto, expected: str | None) -> None:
    path = models.save(_sum_model([tensor]), tmp_path / "m.onnx")
    if expected is None:
        assert check_tensor_sizes(load_proto(path)) == 16
        return
    with pytest.raises(ModelLoadError, match=expected) as info:
        load_proto(path, check=False)
    assert "tensor 'w'" in str(info.value) and info.value.path == path


def test_real_models_pass_the_guard() -> None:
    for name in ("mnist_convnet.onnx", "census_stereo.onnx"):
        proto = onnx.load(ASSETS / name)
        weights = sum(numpy_helper.to_array(t).nbytes for t in proto.graph.initializer)
        assert check_tensor_sizes(proto) >= weights > 0


def test_the_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [parse_size(t) for t in ("123", "512K", "8G", "1.5GiB", "2 tb")] == [123, 2**19, 8 * 2**30, 3 * 2**29, 2**41]
    with pytest.raises(InvalidInputError, match="not a size"):
        parse_size("lots")
    monkeypatch.delenv(MAX_MEMORY_ENV, raising=False)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < memory_limit() <= physical
    monkeypatch.setenv(MAX_MEMORY_ENV, "3G")
    assert memory_limit() == 3 * 2**30


@pytest.mark.parametrize("verb", ["inspect", "optimize", "compare"])
def test_cli_huge_tensor_is_one_line(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, tmp_path: Path, verb: str
) -> None:
    path = models.save(HUGE_MODELS["inline_four_bytes"](), tmp_path / "huge.onnx")
    extra = {"optimize": ["-o", str(tmp_path / "out.onnx")], "compare": ["--runtimes", "onnxruntime,openvino"]}
    with caplog.at_level(logging.ERROR):
        code = main([verb, str(path), *extra.get(verb, [])])
    err = capfd.readouterr().err
    assert code == 2 and "Traceback" not in err and "MemoryError" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("modelport: error: ") and "declares 1,000,000,000,000 elements" in last, err
