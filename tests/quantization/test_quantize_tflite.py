"""LiteRT (TFLite) full-integer INT8: the MNIST ConvNet from ONNX through onnx2tf (every op an int8 kernel, top-1
within 0.5 points on the 10,000 test images), int8 inputs/outputs, and a SavedModel source."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

import models
from modelport.backends import open_runner
from modelport.benchmark.timing import BenchConfig
from modelport.datasets import default_model_path
from modelport.errors import InvalidInputError
from modelport.quantization import QuantizeOptions, QuantizeReport, quantize
from modelport.quantization.tflite import zero_padded_maxpools

FAST = BenchConfig(warmup=1, iterations=6)
#: the issue's goal: INT8 top-1 within 0.5 points of FP32 on MNIST, on every runtime.
MAX_MNIST_DROP = 0.5


@pytest.fixture(scope="module")
def mnist_tflite(tmp_path_factory: pytest.TempPathFactory) -> QuantizeReport:
    out = tmp_path_factory.mktemp("tflite")
    opts = QuantizeOptions(samples=200, bench=FAST, fp16=True)
    return quantize(default_model_path(), out, runtime="tflite", calib="mnist", eval="mnist:test", options=opts)


def test_mnist_full_integer_keeps_its_accuracy(mnist_tflite: QuantizeReport) -> None:
    assert mnist_tflite.runtime == "litert"
    fp32, int8 = mnist_tflite.fp32.metric, mnist_tflite.int8.metric
    assert fp32 is not None and int8 is not None and int8.samples == 10_000
    assert fp32.top1 == pytest.approx(0.9935, abs=2e-4)  # the float TFLite model computes what the ONNX model does
    assert mnist_tflite.drop is not None and mnist_tflite.drop <= MAX_MNIST_DROP
    assert mnist_tflite.status == "verified"


def test_every_op_is_an_int8_kernel(mnist_tflite: QuantizeReport) -> None:
    layers = mnist_tflite.int8.layers
    assert layers is not None and layers.float_layers == ()
    counts = dict(layers.op_counts)
    assert counts["CONV_2D/int8"] == 3 and counts["FULLY_CONNECTED/int8"] == 2
    assert not any(k.endswith("/float") and k.split("/")[0] not in ("QUANTIZE",) for k in counts)
    assert layers.quant_nodes == 2  # float input quantized, int8 output dequantized
    names = [Path(v.artifact).name for v in mnist_tflite.variants]
    assert names == ["mnist_convnet.fp32.tflite", "mnist_convnet.int8.tflite", "mnist_convnet.fp16.tflite"]
    fp32, int8, fp16 = mnist_tflite.variants
    assert int8.size_bytes < 0.4 * fp32.size_bytes and fp16.size_bytes < 0.6 * fp32.size_bytes
    assert int8.runner is not None and int8.runner.executed_precision == "int8"
    with open_runner("litert", int8.artifact) as r:  # same feeds as the ONNX source: NCHW input, named output
        assert [(s.name, s.shape[1:]) for s in r.input_specs] == [("image", (1, 28, 28))]  # type: ignore[index]
        assert r.output_names == ["logits"]


def test_int8_inputs_and_outputs(tmp_path: Path) -> None:
    opts = QuantizeOptions(samples=100, eval_samples=1000, int8_io=True, bench=FAST)
    report = quantize(default_model_path(), tmp_path, runtime="litert", calib="mnist", eval="mnist:test", options=opts)
    with open_runner("litert", report.artifact) as r:
        assert r.input_specs[0].dtype == "int8"
        scale, zero = r.quantization()["image"]  # type: ignore[attr-defined]
        assert scale > 0 and -128 <= zero <= 127
    assert report.int8.layers is not None and report.int8.layers.quant_nodes == 0
    assert ("inputs/outputs", "int8") in report.settings
    assert report.drop is not None and report.drop <= MAX_MNIST_DROP  # measured through modelport's (de)quantization
    info = dict(report.int8.runner.details)  # type: ignore[union-attr]
    assert info["io"] == "int8, quantized/dequantized by modelport"


_SAVED_MODEL = textwrap.dedent(
    """
    import sys, numpy as np, tensorflow as tf
    class M(tf.Module):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.w1 = tf.constant(rng.standard_normal((16, 32)).astype(np.float32) / 4)
            self.w2 = tf.constant(rng.standard_normal((32, 4)).astype(np.float32) / 6)
        @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.matmul(tf.nn.relu(tf.matmul(x, self.w1)), self.w2)}
    m = M()
    tf.saved_model.save(m, sys.argv[1], signatures={"serving_default": m.__call__})
    """
)


def test_saved_model_source(tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    subprocess.run([sys.executable, "-c", _SAVED_MODEL, str(saved)], check=True, capture_output=True, timeout=300)
    np.save(tmp_path / "x.npy", np.random.default_rng(1).standard_normal((64, 16)).astype(np.float32))
    report = quantize(
        saved, tmp_path / "q", runtime="litert", calib=tmp_path / "x.npy", options=QuantizeOptions(bench=FAST)
    )
    layers = report.int8.layers
    assert layers is not None and dict(layers.op_counts).get("FULLY_CONNECTED/int8") == 2
    error = report.int8.metric.error  # type: ignore[union-attr]
    assert error is not None and min(o.cosine for o in error.outputs) > 0.99 and report.status == "verified"
    assert report.settings[0] == ("route", "saved_model → TFLiteConverter")
    with pytest.raises(InvalidInputError, match="--exclude is for onnxruntime and openvino"):
        quantize(saved, tmp_path / "x", runtime="litert", calib="random", options=QuantizeOptions(exclude=("Conv",)))


def test_maxpool_after_relu_pads_with_zero_exactly() -> None:
    """onnx2tf pads MaxPool with −3.4e38, which wrecks int8 calibration; after a ReLU, zeros give the same result."""
    text = """
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N,3,9,9] x) => (float[N,3,5,5] y, float[N,3,5,5] z) {
            r = Relu(x)
            y = MaxPool<kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]>(r)
            z = MaxPool<kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]>(x)
        }
    """
    model = models.parse(text)
    x = {"x": np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)}
    before = models.ort_outputs(model, x)
    assert zero_padded_maxpools(model) == 1  # the MaxPool on raw x (negative values) keeps its −∞ padding
    assert [n.op_type for n in model.graph.node] == ["Relu", "Pad", "MaxPool", "MaxPool"]
    pool = model.graph.node[2]
    assert not any(a.name == "pads" for a in pool.attribute)
    onnx.checker.check_model(model, full_check=True)
    after = models.ort_outputs(model, x)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
