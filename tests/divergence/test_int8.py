"""INT8 mode: ORT's QDQ model of a conv net with one layer's scale broken ×20 — the ranking lists that layer first and
the suggested --exclude holds it; the arithmetic of the contribution on hand-built Divergence objects."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from modelport.backends.trace import Trace, TracedOp, trace
from modelport.divergence.analysis import Divergence, TensorError, compare_traces
from modelport.divergence.int8 import LayerContribution, qdq_view, rank_int8, suggest_exclude
from modelport.verify.tolerance import Tolerance

CONVS, CHANNELS, SIDE = 8, 8, 10


def conv_chain(seed: int = 0) -> onnx.ModelProto:
    """x → (Conv 3×3 → Relu) × CONVS → y; nodes conv0, relu0 …, tensors c0, r0 …"""
    rng = np.random.default_rng(seed)
    nodes, inits, prev = [], [], "x"
    for i in range(CONVS):
        w = rng.normal(0, 0.3, (CHANNELS, CHANNELS, 3, 3)).astype(np.float32)
        b = rng.normal(0, 0.1, (CHANNELS,)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = "y" if i == CONVS - 1 else f"r{i}"
        nodes.append(helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}", pads=[1] * 4))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [out], name=f"relu{i}"))
        prev = out
    shape = [1, CHANNELS, SIDE, SIDE]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shape)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def sample(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"x": rng.normal(size=(1, CHANNELS, SIDE, SIDE)).astype(np.float32)}


@pytest.fixture(scope="module")
def float_and_int8(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, onnx.ModelProto]:
    """The float model's file and ORT's QDQ int8 model of it (4 random calibration samples)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    work = tmp_path_factory.mktemp("int8")
    fp32, int8 = work / "fp32.onnx", work / "int8.onnx"
    onnx.save(conv_chain(), str(fp32))
    rng = np.random.default_rng(1)

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.samples = iter([sample(rng) for _ in range(4)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.samples, None)

    quantize_static(
        str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    return fp32, onnx.load(str(int8))


def broken(model: onnx.ModelProto, scale: str, factor: float = 20.0) -> onnx.ModelProto:
    """A copy with the scale initializer ``scale`` multiplied by ``factor``."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    hits = [i for i, t in enumerate(out.graph.initializer) if t.name == scale]
    assert hits, f"no initializer {scale}"
    for i in hits:
        value = numpy_helper.to_array(out.graph.initializer[i]) * np.float32(factor)
        out.graph.initializer[i].CopyFrom(numpy_helper.from_array(value.astype(np.float32), scale))
    return out


def scale_of(model: onnx.ModelProto, conv: int, which: str) -> str:
    """The scale initializer of conv{conv}'s output Q/DQ ("output") or of its weight's DequantizeLinear ("weight")."""
    nodes = {n.name: n for n in model.graph.node}
    producers = {o: n for n in model.graph.node for o in n.output}
    node = nodes[f"conv{conv}"]
    if which == "weight":
        return producers[node.input[1]].input[1]
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == node.output[0])
    return q.input[1]


def divergence_of(fp32: Path, int8: onnx.ModelProto, tmp_path: Path) -> tuple[Divergence, Trace]:
    path = tmp_path / "candidate.onnx"
    onnx.save(int8, str(path))
    feeds = sample(np.random.default_rng(7))
    reference = trace("onnxruntime", fp32, feeds)
    return compare_traces(reference, qdq_view(trace("onnxruntime", path, feeds))), reference


@pytest.mark.parametrize(("conv", "which"), [(4, "output"), (2, "weight"), (5, "weight")])
def test_broken_scale_is_ranked_first(
    float_and_int8: tuple[Path, onnx.ModelProto], tmp_path: Path, conv: int, which: str
) -> None:
    fp32, int8 = float_and_int8
    bad = broken(int8, scale_of(int8, conv, which))
    divergence, reference = divergence_of(fp32, bad, tmp_path)
    assert divergence.matched_counts()["name"] >= CONVS  # the QDQ view keeps the float names
    ranking = rank_int8(divergence, reference.ops)
    assert {c.op_type for c in ranking} == {"Conv"} and len(ranking) == CONVS
    assert ranking[0].op == f"conv{conv}"
    assert ranking[0].contribution > 5 * ranking[1].contribution
    assert ranking[0].ops == (f"relu{conv}", f"conv{conv}")  # the Relu the quantizer folded into the Q's range
    assert f"conv{conv}" in suggest_exclude(ranking, 2)
    assert LayerContribution.from_json(ranking[0].to_json()) == ranking[0]


def test_unbroken_int8_adds_little_error_everywhere(
    float_and_int8: tuple[Path, onnx.ModelProto], tmp_path: Path
) -> None:
    fp32, int8 = float_and_int8
    divergence, reference = divergence_of(fp32, int8, tmp_path)
    ranking = rank_int8(divergence, reference.ops)
    assert len(ranking) == CONVS and all(c.contribution < 0.05 for c in ranking)  # under 3° each
    assert divergence.outputs_passed


def test_qdq_view_folds_the_pairs(float_and_int8: tuple[Path, onnx.ModelProto], tmp_path: Path) -> None:
    _, int8 = float_and_int8
    path = tmp_path / "int8.onnx"
    onnx.save(int8, str(path))
    raw = trace("onnxruntime", path, sample(np.random.default_rng(2)))
    view = qdq_view(raw)
    assert not any(op.op_type in ("QuantizeLinear", "DequantizeLinear") for op in view.ops)
    assert list(view.tensors) == [f"r{i}" for i in range(CONVS - 1)] + ["y"]
    # each tensor holds what its consumer reads: the dequantized value (Relu folded: nothing negative)
    assert all(float(np.min(v)) >= 0.0 for v in view.tensors.values())
    np.testing.assert_array_equal(view.tensors["y"], raw.tensors["y"])
    dq = next(op for op in raw.ops if op.op_type == "DequantizeLinear" and op.inputs[1] == "r3_scale")
    np.testing.assert_array_equal(view.tensors["r3"], raw.tensors[dq.outputs[0]])
    conv7 = next(op for op in view.ops if op.name == "conv7")
    assert conv7.outputs == ("y",) and conv7.inputs[0] == "r6"
    assert qdq_view(view) is view  # nothing left to fold


def error(name: str, op: str, op_type: str, inputs: tuple[str, ...], cosine: float) -> TensorError:
    return TensorError(name, name, op, op_type, inputs, "name", 1.0 - cosine, 0.0, cosine, cosine > 0.99, 0.01)


def test_contribution_is_the_error_added_over_the_inputs() -> None:
    """Hand-built: conv a (angle 0.1) → add b (inputs a and x, angle 0.5) → matmul c (0.55); relu between b and m."""
    cos = math.cos
    tensors = (
        error("a", "conv_a", "Conv", ("x", "w"), cos(0.1)),
        error("b", "add_b", "Add", ("a", "x"), cos(0.5)),
        error("c", "mm_c", "MatMul", ("r", "m"), cos(0.55)),
        error("r", "relu_r", "Relu", ("b",), cos(0.5)),
    )
    divergence = Divergence("ref", "cand", Tolerance(), tensors, 4, tensors[1], False)
    ranking = rank_int8(divergence)
    assert [c.op for c in ranking] == ["add_b", "conv_a", "mm_c"]  # the Relu is no compute op
    assert ranking[0].inherited == pytest.approx(0.1) and ranking[0].contribution == pytest.approx(0.4)
    assert ranking[2].contribution == pytest.approx(0.05)
    assert suggest_exclude(ranking, 1) == ("add_b",)
    assert suggest_exclude(ranking, 5, share=0.0) == ("add_b", "conv_a", "mm_c")
    assert suggest_exclude(ranking, 5) == ("add_b",)  # 0.1 and 0.05 are under a quarter of the worst layer's 0.4


def test_unmatched_output_is_walked_through_with_the_ops() -> None:
    """Only the Relu's output is matched: with the reference ops the Conv before it is credited."""
    tensors = (
        error("r0", "relu0", "Relu", ("c0",), math.cos(0.02)),
        error("r1", "relu1", "Relu", ("c1",), math.cos(0.3)),
    )
    ops = (
        TracedOp("conv0", "Conv", ("x", "w0"), ("c0",)),
        TracedOp("relu0", "Relu", ("c0",), ("r0",)),
        TracedOp("conv1", "Conv", ("r0", "w1"), ("c1",)),
        TracedOp("relu1", "Relu", ("c1",), ("r1",)),
    )
    divergence = Divergence("ref", "cand", Tolerance(), tensors, 4, tensors[1], False)
    assert rank_int8(divergence) == ()  # without the ops, no compute op is in sight
    ranking = rank_int8(divergence, ops)
    assert [(c.op, c.tensor) for c in ranking] == [("conv1", "r1"), ("conv0", "r0")]
    assert ranking[0].contribution == pytest.approx(0.28) and ranking[0].ops == ("relu1", "conv1")
    assert suggest_exclude(ranking, 0) == ()


def test_bisection_of_float_and_int8(float_and_int8: tuple[Path, onnx.ModelProto], tmp_path: Path) -> None:
    """Bisection reads a QDQ candidate after its Q/DQ pairs: it narrows to the broken layer (and its folded Relu,
    whose input the quantized model no longer has), judged at the int8 tolerance; the unbroken model passes."""
    from modelport.divergence.bisection import bisect_models

    fp32, int8 = float_and_int8
    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    onnx.save(int8, str(good))
    onnx.save(broken(int8, scale_of(int8, 4, "weight")), str(bad))
    result = bisect_models(fp32, bad, threads=1)
    assert result.ops == ("conv4", "relu4") and "no cut" in result.note
    assert result.last_passing == ("r3",) and result.first_failing == ("r4",)
    assert result.runs <= math.ceil(math.log2(2 * CONVS)) + 1
    assert bisect_models(fp32, good, threads=1).passed


def test_the_api_and_cli_rank_a_quantized_candidate(
    float_and_int8: tuple[Path, onnx.ModelProto], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``compare FP32 INT8 --per-tensor``: a Q/DQ candidate is read after its pairs, its layers ranked, and the
    layer whose scale is broken comes first and is suggested for ``quantize --exclude``."""
    from modelport.cli.main import main
    from modelport.divergence.api import bisect

    fp32, int8 = float_and_int8
    bad = tmp_path / "bad.onnx"
    onnx.save(broken(int8, scale_of(int8, 4, "output")), str(bad))
    report = bisect([fp32, bad], "onnxruntime")
    assert report.ranking and report.ranking[0].op == "conv4" and "conv4" in report.exclude
    page = report.write_html(tmp_path / "int8.html").read_text()
    assert "Layers by the quantization error they add" in page and "--exclude conv4" in page
    assert main(["compare", str(fp32), str(bad), "-r", "onnxruntime", "--per-tensor"]) == 1
    text = capsys.readouterr().out
    assert "layers by the quantization error they add" in text and "--exclude conv4" in text
