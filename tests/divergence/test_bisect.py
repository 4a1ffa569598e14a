"""Bisection: a planted fault deep in a conv net is narrowed to its Conv in ⌈log2 n⌉ + 1 runs; a correct pair has no
failing step; a candidate without shared tensor names is refused with a pointer to per-tensor comparison."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from modelport.divergence.bisection import BisectResult, bisect_models
from modelport.errors import InvalidInputError
from modelport.verify.tolerance import Tolerance

CONVS = 10


def conv_chain(convs: int = CONVS, channels: int = 4, seed: int = 0) -> onnx.ModelProto:
    """x[1,C,12,12] → (Conv 3×3 → Relu) × ``convs`` → y; nodes conv0, relu0, conv1 …"""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    prev = "x"
    for i in range(convs):
        w = rng.normal(0, 0.4, (channels, channels, 3, 3)).astype(np.float32)
        b = rng.normal(0, 0.1, (channels,)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = "y" if i == convs - 1 else f"r{i}"
        nodes.append(helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}", pads=[1] * 4))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [out], name=f"relu{i}"))
        prev = out
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, channels, 12, 12])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, channels, 12, 12])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def perturbed(model: onnx.ModelProto, conv: int, delta: float = 0.5) -> onnx.ModelProto:
    """A copy with one weight of ``conv{conv}`` moved by ``delta``."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for i, t in enumerate(out.graph.initializer):
        if t.name == f"w{conv}":
            w = numpy_helper.to_array(t).copy()
            w[0, 0, 1, 1] += delta
            out.graph.initializer[i].CopyFrom(numpy_helper.from_array(w, t.name))
    return out


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def max_runs(nodes: int) -> int:
    return math.ceil(math.log2(nodes)) + 1


@pytest.mark.parametrize("fault", [6, 1, CONVS - 1])
def test_planted_fault_is_narrowed_to_its_conv(tmp_path: Path, fault: int) -> None:
    model = conv_chain()
    ref = save(model, tmp_path / "ref.onnx")
    bad = save(perturbed(model, fault), tmp_path / "bad.onnx")
    result = bisect_models(ref, bad, threads=1)
    assert not result.passed
    assert result.ops == (f"conv{fault}",) and result.op == f"conv{fault}" and result.op_types == ("Conv",)
    assert result.runs == len(result.steps) <= max_runs(result.nodes)
    assert result.first_failing == (f"c{fault}",)
    assert result.last_passing == (("x",) if fault == 0 else (f"r{fault - 1}",))
    assert not result.steps[0].passed and result.steps[0].cut == ("y",)  # the whole models first
    failing = [s for s in result.steps if not s.passed]
    assert all(s.max_abs > 1e-3 and s.reason for s in failing)
    assert all(s.max_abs == 0.0 for s in result.steps if s.passed)
    assert BisectResult.from_json(result.to_json()).ops == result.ops
    assert f"diverges at conv{fault} (Conv) after {result.runs} runs" in result.summary()


def test_correct_pair_has_no_failing_step(tmp_path: Path) -> None:
    model = conv_chain()
    ref = save(model, tmp_path / "ref.onnx")
    same = save(perturbed(model, 3, delta=1e-9), tmp_path / "same.onnx")
    result = bisect_models(ref, same, threads=1)
    assert result.passed and result.runs == 1
    assert all(s.passed for s in result.steps)
    assert result.ops == () and result.op is None


def test_candidate_on_openvino(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    model = conv_chain()
    ref = save(model, tmp_path / "ref.onnx")
    bad = save(perturbed(model, 4), tmp_path / "bad.onnx")
    result = bisect_models(ref, bad, runtimes=("onnxruntime", "openvino"), threads=1)
    assert result.ops == ("conv4",) and result.candidate.endswith("@openvino")
    assert result.runs <= max_runs(result.nodes)


def test_given_feeds_and_tolerance(tmp_path: Path) -> None:
    """A loose explicit tolerance lets a small fault pass; the user's feeds are used."""
    model = conv_chain()
    ref = save(model, tmp_path / "ref.onnx")
    bad = save(perturbed(model, 5, delta=0.05), tmp_path / "bad.onnx")
    feeds = {"x": np.random.default_rng(3).normal(size=(1, 4, 12, 12)).astype(np.float32)}
    assert not bisect_models(ref, bad, feeds, threads=1).passed
    assert bisect_models(ref, bad, feeds, Tolerance(rtol=0.0, atol=10.0), threads=1).passed


def renamed(model: onnx.ModelProto, names: set[str]) -> onnx.ModelProto:
    """A copy with the tensors ``names`` renamed (as a converter or a fusing optimizer would)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    for node in out.graph.node:
        node.input[:] = [f"t_{n}" if n in names else n for n in node.input]
        node.output[:] = [f"t_{n}" if n in names else n for n in node.output]
    return out


def test_partly_shared_names_narrow_to_the_range_between_shared_cuts(tmp_path: Path) -> None:
    """The candidate lacks c4, r4 and c5 (say, fused): the fault in conv5 is narrowed to conv4 … relu5, and said."""
    model = conv_chain()
    ref = save(model, tmp_path / "ref.onnx")
    cand = save(renamed(perturbed(model, 5), {"c4", "r4", "c5"}), tmp_path / "cand.onnx")
    result = bisect_models(ref, cand, threads=1)
    assert result.ops == ("conv4", "relu4", "conv5", "relu5") and result.op is None
    assert result.last_passing == ("r3",) and result.first_failing == ("r5",)
    assert "no cut between nodes 8 and 12 uses tensors the candidate also has" in result.note
    assert result.note in result.summary()


def test_missing_shared_names_is_refused(tmp_path: Path) -> None:
    model = conv_chain()
    ref = save(model, tmp_path / "ref.onnx")
    every = {f"{p}{i}" for i in range(CONVS) for p in ("c", "r")}
    cand = save(renamed(model, every), tmp_path / "converted.onnx")
    with pytest.raises(InvalidInputError, match=r"shared tensor names.*--per-tensor"):
        bisect_models(ref, cand)


def test_non_onnx_candidate_is_refused(tmp_path: Path) -> None:
    ref = save(conv_chain(), tmp_path / "ref.onnx")
    other = tmp_path / "model.tflite"
    other.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    with pytest.raises(InvalidInputError, match="--per-tensor"):
        bisect_models(ref, other)
