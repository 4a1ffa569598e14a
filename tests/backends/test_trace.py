"""Traces: every intermediate tensor on ONNX Runtime, OpenVINO and LiteRT, and a runtime without a tracer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

import models
from modelport.backends.litert import dequantize
from modelport.backends.trace import Trace, TracedOp, TraceUnavailable, trace
from modelport.errors import InvalidInputError


def _three_convs() -> onnx.ModelProto:
    """image[N,3,8,8] → Conv → Relu → depthwise Conv (no bias) → BatchNorm → Relu → Conv → ·Constant →
    GlobalAveragePool; nameless nodes."""
    return models.build(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        three (float[N,3,8,8] image) => (float[N,4,1,1] out) {
            c1 = Conv <pads = [1, 1, 1, 1]> (image, w1, b1)
            r1 = Relu(c1)
            c2 = Conv <pads = [1, 1, 1, 1], group = 8> (r1, w2)
            n2 = BatchNormalization(c2, scale, bias, mean, var)
            r2 = Relu(n2)
            c3 = Conv(r2, w3, b3)
            half = Constant <value_float = 0.5> ()
            h3 = Mul(c3, half)
            out = GlobalAveragePool(h3)
        }
        """,
        w1=(8, 3, 3, 3),
        b1=(8,),
        w2=(8, 1, 3, 3),
        w3=(4, 8, 3, 3),
        b3=(4,),
        **models.bn_params(8),
    )


@pytest.fixture(scope="module")
def onnx_net(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    proto = _three_convs()
    path = models.save(proto, tmp_path_factory.mktemp("trace") / "three.onnx")
    feeds = models.feeds_for(proto, batch=2)
    return {"proto": proto, "path": path, "feeds": feeds, "ort": trace("onnxruntime", path, feeds)}


def _sub_model_value(proto: onnx.ModelProto, tensor: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """``tensor`` computed by the model cut to end there (ONNX's extractor), in ONNX Runtime."""
    inputs = [i.name for i in proto.graph.input]
    sub = onnx.utils.Extractor(onnx.shape_inference.infer_shapes(proto)).extract_model(inputs, [tensor])
    return models.ort_outputs(sub, feeds)[0]


def test_ort_trace_has_every_node_output(onnx_net: dict[str, Any]) -> None:
    t: Trace = onnx_net["ort"]
    proto = onnx_net["proto"]
    node_outputs = [o for n in proto.graph.node if n.op_type != "Constant" for o in n.output]
    assert list(t.tensors) == node_outputs  # all of them but the Constant's weight, in topological order
    assert [op.op_type for op in t.ops] == models.op_types(proto)
    assert t.ops[0].name == "Conv#0" and t.ops[0].inputs == ("image", "w1", "b1") and t.ops[0].outputs == ("c1",)
    assert t.outputs == ("out",) and t.producer("n2") is t.ops[3] and t.producer("image") is None
    assert t.ops[6] == TracedOp("Constant#6", "Constant", (), ("half",)) and "half" not in t.tensors
    assert set(t.inputs) == {"image"} and t.tensors["c2"].shape == (2, 8, 8, 8)
    for name in node_outputs:
        np.testing.assert_allclose(
            t.tensors[name], _sub_model_value(proto, name, onnx_net["feeds"]), rtol=1e-6, atol=1e-6, err_msg=name
        )


def test_ort_trace_reads_external_data_beside_the_model(tmp_path: Path) -> None:
    proto = models.conv_bn()
    feeds = models.feeds_for(proto)
    want = models.ort_outputs(proto, feeds)[0]
    path = tmp_path / "ext.onnx"
    onnx.save(proto, str(path), save_as_external_data=True, location="ext.data", size_threshold=0)
    assert (tmp_path / "ext.data").stat().st_size > 0
    t = trace("ort", path, feeds)
    assert list(t.tensors) == ["c", "n", "out"]
    np.testing.assert_allclose(t.tensors["out"], want, rtol=1e-6, atol=1e-6)


def _matched(reference: Trace, candidate: Trace) -> dict[str, str]:
    """Reference tensor → the candidate's tensor of the same name, directly or through the candidate's aliases."""
    by_alias = {alias: name for name, names in candidate.aliases.items() for alias in names}
    found = {}
    for name in reference.tensors:
        if name in candidate.tensors:
            found[name] = name
        elif by_alias.get(name) in candidate.tensors:
            found[name] = by_alias[name]
    return found


@pytest.mark.parametrize("kind", ["onnx", "ir"])
def test_openvino_trace_matches_onnxruntime(onnx_net: dict[str, Any], kind: str, tmp_path: Path) -> None:
    path = onnx_net["path"]
    if kind == "ir":  # converted to IR: the ONNX names are kept, but the BatchNorm's scale is folded into the
        # depthwise conv (still called c2 by OpenVINO: a value that is no longer c2's) and the Mul into the last conv
        import openvino as ov

        path = tmp_path / "three.xml"
        ov.save_model(ov.convert_model(str(onnx_net["path"])), str(path), compress_to_fp16=False)
    ref: Trace = onnx_net["ort"]
    got = trace("ov", path, onnx_net["feeds"])
    assert got.runtime == "openvino" and got.outputs == ("out",)
    matched = _matched(ref, got)
    missing = set(ref.tensors) - set(matched)
    if kind == "onnx":
        assert len(matched) >= 0.9 * len(ref.tensors), sorted(missing)
    else:
        assert "c2" in missing and missing <= {"c2", "c3"}, sorted(missing)
    for name, theirs in matched.items():
        np.testing.assert_allclose(got.tensors[theirs], ref.tensors[name], rtol=1e-4, atol=1e-4, err_msg=name)
    assert all(op.op_type not in {"Parameter", "Constant", "Result"} for op in got.ops)
    captured = {o for op in got.ops for o in op.outputs}
    assert set(got.tensors) <= captured and "out" in got.tensors


def _tf_net() -> tuple[Any, Any]:
    """A small NHWC conv net (conv → relu → conv → mean → dense) as a tf.function with fixed random weights."""
    from modelport.backends.tensorflow import import_tensorflow

    tf = import_tensorflow()
    rng = np.random.default_rng(0)
    w1 = tf.constant(rng.standard_normal((3, 3, 3, 8)).astype(np.float32) * 0.3)
    w2 = tf.constant(rng.standard_normal((3, 3, 8, 8)).astype(np.float32) * 0.3)
    d = tf.constant(rng.standard_normal((8, 5)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 12, 12, 3], tf.float32, name="x")])
    def net(x: Any) -> Any:
        h = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))
        h = tf.nn.relu(tf.nn.conv2d(h, w2, 1, "SAME"))
        return {"y": tf.matmul(tf.reduce_mean(h, axis=[1, 2]), d)}

    return tf, net


@pytest.fixture(scope="module")
def tflite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tf, net = _tf_net()
    d = tmp_path_factory.mktemp("trace_tflite")
    rng = np.random.default_rng(1)
    files = {}
    module = tf.Module()
    module.net = net
    tf.saved_model.save(module, str(d / "saved"), signatures={"serving_default": net})
    for kind in ("fp32", "int8"):
        conv = tf.lite.TFLiteConverter.from_saved_model(str(d / "saved"))  # keeps the signature's names
        if kind == "int8":
            samples = [rng.random((1, 12, 12, 3), dtype=np.float32) for _ in range(8)]
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda samples=samples: ([s] for s in samples)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        files[kind] = d / f"net_{kind}.tflite"
        files[kind].write_bytes(conv.convert())
    x = rng.random((1, 12, 12, 3), dtype=np.float32)
    return {"files": files, "x": x, "want": net(tf.constant(x))["y"].numpy()}


def test_litert_trace_keeps_every_op_output(tflite: dict[str, Any]) -> None:
    t = trace("tflite", tflite["files"]["fp32"], {"x": tflite["x"]})
    assert t.runtime == "litert"
    op_outputs = [o for op in t.ops for o in op.outputs]
    assert list(t.tensors) == list(dict.fromkeys(op_outputs))  # every op output, in execution order
    assert {"CONV_2D", "MEAN"} <= {op.op_type for op in t.ops} and len(t.ops) >= 4
    (out,) = t.outputs
    np.testing.assert_allclose(t.tensors[out], tflite["want"], rtol=1e-4, atol=1e-4)
    assert "y" in t.aliases[out]  # the signature key names the output too
    assert {a for names in t.aliases.values() for a in names} >= {"x", "y"}
    first_conv = next(op for op in t.ops if op.op_type == "CONV_2D")
    assert first_conv.inputs[0] in t.inputs and t.tensors[first_conv.outputs[0]].shape == (1, 12, 12, 8)


def test_litert_int8_trace_is_dequantized(tflite: dict[str, Any]) -> None:
    fp32 = trace("litert", tflite["files"]["fp32"], {"x": tflite["x"]})
    int8 = trace("litert", tflite["files"]["int8"], {"x": tflite["x"]})
    assert "CONV_2D" in {op.op_type for op in int8.ops}
    assert all(v.dtype == np.float32 for v in int8.tensors.values())  # int8 activations come back as floats
    (out,) = int8.outputs
    want = fp32.tensors[fp32.outputs[0]]
    assert np.abs(int8.tensors[out] - want).max() < 0.1 * np.abs(want).max()
    conv_out = [int8.tensors[op.outputs[0]] for op in int8.ops if op.op_type == "CONV_2D"]
    ref_out = [fp32.tensors[op.outputs[0]] for op in fp32.ops if op.op_type == "CONV_2D"]
    assert len(conv_out) == len(ref_out) == 2
    for got, ref in zip(conv_out, ref_out, strict=True):  # the int8 layer's dequantized values track the float ones
        cosine = float(np.sum(got * ref) / (np.linalg.norm(got) * np.linalg.norm(ref)))
        assert got.shape == ref.shape and cosine > 0.98


def test_dequantize_per_tensor_and_per_channel() -> None:
    q = np.array([[-128, 0, 127], [10, 20, 30]], dtype=np.int8)
    per_tensor = {"quantization_parameters": {"scales": [0.5], "zero_points": [-10], "quantized_dimension": 0}}
    np.testing.assert_array_equal(dequantize(q, per_tensor), (q.astype(np.float32) + 10) * 0.5)
    per_row = {"quantization_parameters": {"scales": [0.5, 2.0], "zero_points": [0, 1], "quantized_dimension": 0}}
    np.testing.assert_array_equal(dequantize(q, per_row), [[-64.0, 0.0, 63.5], [18.0, 38.0, 58.0]])
    floats = np.ones((2, 2), np.float32)
    assert dequantize(floats, per_tensor) is not floats and dequantize(floats, per_tensor).tolist() == [[1, 1], [1, 1]]
    ints = np.arange(3, dtype=np.int32)  # an integer tensor without quantization stays as it is
    assert dequantize(ints, {"quantization_parameters": {"scales": []}}).dtype == np.int32


def test_runtime_without_tracer_says_bisect(onnx_net: dict[str, Any]) -> None:
    with pytest.raises(TraceUnavailable) as err:
        trace("tensorflow", onnx_net["path"], onnx_net["feeds"])
    assert "tensorflow" in str(err.value) and "--bisect" in (err.value.hint or "")
    with pytest.raises(InvalidInputError):
        trace("no-such-runtime", onnx_net["path"], onnx_net["feeds"])


def test_litert_trace_needs_every_input(tflite: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match="no feed"):
        trace("litert", tflite["files"]["fp32"], {"other": tflite["x"]})
