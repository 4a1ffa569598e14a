"""``lower-quantized-contrib``: ONNX Runtime's DynamicQuantizeLSTM rewritten as DequantizeLinear + standard LSTM.

Tiny float LSTMs are built here, quantized by ONNX Runtime's own ``quantize_dynamic`` (which writes the contrib op,
per-tensor or per-channel), lowered, and run by ONNX Runtime on both sides: the lowered graph holds no contrib op
and agrees with the contrib op at int8 tolerance (and with the float LSTM it came from); the real DynamicQuantizeLSTM
of the corpus (ddddocr_ocr_old, a bidirectional 512-unit LSTM) is lowered the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import helper

import models
from modelport.passes.base import pass_spec
from modelport.passes.quantized import LowerQuantizedContrib, contrib_quantized_nodes
from modelport.verify.compare import Tolerance, compare_outputs

INT8 = Tolerance.for_precision("int8")


def float_lstm(direction: str = "forward", hidden: int = 16, inputs: int = 8, seed: int = 0) -> onnx.ModelProto:
    """x[seq, batch, inputs] → LSTM (with bias and all three outputs) → y, y_h, y_c."""
    d = 2 if direction == "bidirectional" else 1
    rng = np.random.default_rng(seed)
    weights = {
        "W": (0.4 * rng.standard_normal((d, 4 * hidden, inputs))).astype(np.float32),
        "R": (0.4 * rng.standard_normal((d, 4 * hidden, hidden))).astype(np.float32),
        "B": (0.1 * rng.standard_normal((d, 8 * hidden))).astype(np.float32),
    }
    node = helper.make_node(
        "LSTM", ["x", "W", "R", "B"], ["y", "y_h", "y_c"], name="lstm", hidden_size=hidden, direction=direction
    )
    f = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "lstm",
        [helper.make_tensor_value_info("x", f, ["seq", "batch", inputs])],
        [
            helper.make_tensor_value_info("y", f, ["seq", d, "batch", hidden]),
            helper.make_tensor_value_info("y_h", f, [d, "batch", hidden]),
            helper.make_tensor_value_info("y_c", f, [d, "batch", hidden]),
        ],
        [onnx.numpy_helper.from_array(a, k) for k, a in weights.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def contrib_lstm(tmp_path: Path, direction: str, per_channel: bool) -> tuple[Path, Path]:
    """(float model, its ONNX Runtime dynamic quantization holding a DynamicQuantizeLSTM)."""
    from onnxruntime.quantization import quantize_dynamic

    src = models.save(float_lstm(direction), tmp_path / "lstm.onnx")
    dst = tmp_path / "lstm.dq.onnx"
    quantize_dynamic(str(src), str(dst), per_channel=per_channel)
    assert any(n.op_type == "DynamicQuantizeLSTM" for n in onnx.load(str(dst)).graph.node)
    return src, dst


def lower(src: Path, dst: Path) -> bool:
    model = ir.load(str(src))
    modified = LowerQuantizedContrib()(model).modified
    ir.save(model, str(dst))
    return modified


def run(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return dict(zip([o.name for o in model.graph.output], models.ort_outputs(model, feeds), strict=True))


@pytest.mark.parametrize(("direction", "per_channel"), [("forward", False), ("bidirectional", True)])
def test_lowered_lstm_matches_the_contrib_op(tmp_path: Path, direction: str, per_channel: bool) -> None:
    src, quantized = contrib_lstm(tmp_path, direction, per_channel)
    lowered = tmp_path / "lowered.onnx"
    assert lower(quantized, lowered)
    proto = onnx.load(str(lowered))
    onnx.checker.check_model(proto, full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    assert "DynamicQuantizeLSTM" not in ops and ops.count("LSTM") == 1
    assert all(n.domain in ("", "ai.onnx") for n in proto.graph.node)
    # the weights stay int8 in the file: per-direction scales use DequantizeLinear, per-channel Cast/Sub/Mul
    assert ("Cast" in ops) if per_channel else ("DequantizeLinear" in ops)
    int8 = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 3]
    directions = 2 if direction == "bidirectional" else 1
    assert sum(int(np.prod(i.dims)) for i in int8) == directions * 4 * 16 * (8 + 16)  # W and R, int8
    assert not [i for i in proto.graph.initializer if len(i.dims) == 3 and i.dims[1] in (8, 16)]  # old layout gone
    feeds = {"x": np.random.default_rng(1).standard_normal((5, 3, 8)).astype(np.float32)}
    contrib, ours, reference = run(quantized, feeds), run(lowered, feeds), run(src, feeds)
    assert set(ours) == {"y", "y_h", "y_c"}
    against_contrib = compare_outputs(contrib, ours, INT8)
    assert against_contrib.passed, against_contrib.reason()
    assert 0 < against_contrib.max_abs < 0.05  # the contrib op's activation rounding, nothing structural
    against_float = compare_outputs(reference, ours, INT8)
    assert against_float.passed, against_float.reason()


def test_a_wrong_layout_would_be_caught(tmp_path: Path) -> None:
    """The comparison above can fail: the contrib weights fed to LSTM without the transpose differ by far more."""
    _, quantized = contrib_lstm(tmp_path, "forward", False)
    proto = onnx.load(str(quantized))
    lowered = tmp_path / "lowered.onnx"
    lower(quantized, lowered)
    broken = onnx.load(str(lowered))
    for init in broken.graph.initializer:
        if init.data_type == onnx.TensorProto.INT8 and len(init.dims) == 3 and init.dims[2] == 16:  # R: [1, 64, 16]
            arr = onnx.numpy_helper.to_array(init)
            flipped = np.ascontiguousarray(arr.reshape(1, 16, 64).transpose(0, 2, 1))
            init.CopyFrom(onnx.numpy_helper.from_array(flipped, init.name))
    models.save(broken, tmp_path / "broken.onnx")
    feeds = {"x": np.random.default_rng(1).standard_normal((5, 3, 8)).astype(np.float32)}
    assert not compare_outputs(run(quantized, feeds), run(tmp_path / "broken.onnx", feeds), INT8).passed
    assert proto.graph.node  # the contrib model itself was untouched


def test_pass_is_registered_opt_in_and_leaves_models_without_the_op(tmp_path: Path) -> None:
    spec = pass_spec("lower-quantized-contrib")
    assert spec.cls is LowerQuantizedContrib and not spec.default
    model = ir.from_proto(float_lstm())
    assert not LowerQuantizedContrib()(model).modified
    assert contrib_quantized_nodes(model) == []


def test_non_constant_weights_are_left_alone() -> None:
    """A DynamicQuantizeLSTM whose weights arrive as graph inputs cannot be dequantized ahead of time."""
    i8, f = onnx.TensorProto.INT8, onnx.TensorProto.FLOAT
    node = helper.make_node(
        "DynamicQuantizeLSTM",
        ["x", "W", "R", "", "", "", "", "", "ws", "wz", "rs", "rz"],
        ["y"],
        domain="com.microsoft",
        hidden_size=4,
    )
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("x", f, [2, 1, 3]),
            helper.make_tensor_value_info("W", i8, [1, 3, 16]),
            helper.make_tensor_value_info("R", i8, [1, 4, 16]),
        ],
        [helper.make_tensor_value_info("y", f, [2, 1, 1, 4])],
        [
            onnx.numpy_helper.from_array(np.ones(1, np.float32), "ws"),
            onnx.numpy_helper.from_array(np.zeros(1, np.int8), "wz"),
            onnx.numpy_helper.from_array(np.ones(1, np.float32), "rs"),
            onnx.numpy_helper.from_array(np.zeros(1, np.int8), "rz"),
        ],
    )
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    model = ir.from_proto(proto)
    assert not LowerQuantizedContrib()(model).modified
    assert contrib_quantized_nodes(model) == [node.name or "DynamicQuantizeLSTM"]


def test_real_dynamic_quantize_lstm_is_lowered(tmp_path: Path) -> None:
    """ddddocr_ocr_old (corpus test subset): its bidirectional DynamicQuantizeLSTM, lowered, reads the same text."""
    from corpus.conftest import corpus_path

    src = corpus_path("ddddocr_ocr_old")
    lowered = tmp_path / "lowered.onnx"
    assert lower(src, lowered)
    proto = onnx.load(str(lowered))
    assert not [n for n in proto.graph.node if n.domain == "com.microsoft"]
    feeds = {"input1": np.random.default_rng(0).random((1, 1, 64, 96), dtype=np.float32)}
    contrib, ours = models.ort_outputs(onnx.load(str(src)), feeds), models.ort_outputs(proto, feeds)
    comparison = compare_outputs({"out": contrib[0]}, {"out": ours[0]}, INT8)
    assert comparison.passed, comparison.reason()
    assert np.array_equal(contrib[0].argmax(-1), ours[0].argmax(-1))  # the same characters are read
