"""LiteRT (TFLite) full-integer INT8: the MNIST ConvNet from ONNX through onnx2tf (every op an int8 kernel, top-1
within 0.5 points on the 10,000 test images), int8 inputs/outputs, a SavedModel source, MaxPool padding made exact
for calibration, and onnx2tf's diagnosed errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import models
from modelport.assets import default_model_path
from modelport.backends import open_runner
from modelport.benchmark.timing import BenchConfig
from modelport.conversion import convert
from modelport.errors import ConversionError, InvalidInputError
from modelport.quantization import QuantizeOptions, QuantizeReport, quantize, tflite

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


def test_int8_inputs_and_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Also: relative paths (the converter runs in a worker process with its own working directory)."""
    monkeypatch.chdir(tmp_path)
    Path("model.onnx").write_bytes(default_model_path().read_bytes())
    opts = QuantizeOptions(samples=100, eval_samples=1000, int8_io=True, bench=FAST)
    report = quantize("model.onnx", "out", runtime="litert", calib="mnist", eval="mnist:test", options=opts)
    assert report.status == "verified", report.reason
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
    error = report.int8.error
    assert error is not None and min(o.cosine for o in error.outputs) > 0.99 and report.status == "verified"
    assert report.settings[0] == ("route", "saved_model → TFLiteConverter")
    with pytest.raises(InvalidInputError, match="--exclude is for onnxruntime and openvino"):
        quantize(saved, tmp_path / "x", runtime="litert", calib="random", options=QuantizeOptions(exclude=("Conv",)))


_POOL_NET = """
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N,3,16,16] image) => (float[N,10] logits) {
        c = Conv<pads=[1,1,1,1]>(image, w, b)
        r = Relu(c)
        p = MaxPool<kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]>(r)
        f = Flatten(p)
        logits = Gemm(f, w2, b2)
    }
"""


def test_maxpool_padding_is_zero_padded_before_onnx2tf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """onnx2tf pads MaxPool with −3.4e38, which wrecks int8 calibration; the zero-pad-maxpool pass (exact after a
    ReLU) runs on onnx2tf's copy and the INT8 model gets sane ranges. Without it, calibration degenerates."""
    src = models.save(models.build(_POOL_NET, w=(8, 3, 3, 3), b=(8,), w2=(512, 10), b2=(10,)), tmp_path / "pool.onnx")
    before = src.read_bytes()
    opts = QuantizeOptions(samples=32, bench=FAST)
    report = quantize(src, tmp_path / "q", runtime="litert", calib="random", options=opts)
    assert ("onnx rewrites", "zero-pad-maxpool (+1 nodes)") in report.settings
    layers = report.int8.layers
    assert layers is not None and layers.float_layers == () and dict(layers.op_counts)["MAX_POOL_2D/int8"] == 1
    assert src.read_bytes() == before  # the pass ran on onnx2tf's private copy
    monkeypatch.setattr(tflite, "ONNX2TF_PASSES", ())
    with pytest.raises(ConversionError, match="degenerate range"):
        quantize(src, tmp_path / "raw", runtime="litert", calib="random", options=opts)


def test_onnx2tf_failure_is_diagnosed_the_same_by_convert_and_quantize(tmp_path: Path) -> None:
    """Both call onnx2tf through one entry point: the error names the ONNX op and node either way."""
    text = """
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,8] x) => (float[1,4] y) {
            h = MatMul(x, w)
            c = CastLike(h, h)
            y = Relu(c)
        }
    """
    model = models.build(text, w=(8, 4))
    model.graph.node[1].name = "castlike0"  # onnxruntime runs CastLike; onnx2tf 1.28 has no converter for it
    src = models.save(model, tmp_path / "castlike.onnx")
    with pytest.raises(ConversionError) as converted:
        convert(src, "tflite", tmp_path / "c")
    with pytest.raises(ConversionError) as quantized:
        quantize(src, tmp_path / "q", runtime="litert", calib="random", options=QuantizeOptions(bench=FAST))
    assert "onnx2tf cannot convert op CastLike (node castlike0)" in converted.value.message
    assert str(quantized.value) == str(converted.value)
