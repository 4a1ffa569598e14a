"""LiteRT runner: outputs against TensorFlow, threads, XNNPACK on/off, dynamic batch, names, precision, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import models
from modelport.backends import open_runner, parse_backends
from modelport.backends.litert import LiteRTRunner
from modelport.backends.runner import RunnerOptions
from modelport.errors import ModelLoadError, RuntimeUnavailable


def _tf_model() -> tuple[Any, Any]:
    """A small NHWC conv net (conv → relu → mean → dense) as a tf.function with fixed random weights."""
    from modelport.backends.tensorflow import import_tensorflow

    tf = import_tensorflow()
    rng = np.random.default_rng(0)
    w = tf.constant(rng.standard_normal((3, 3, 3, 64)).astype(np.float32) * 0.3)
    d = tf.constant(rng.standard_normal((64, 200)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32, name="x")])
    def net(x: Any) -> Any:
        h = tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))
        return {"y": tf.matmul(tf.reduce_mean(h, axis=[1, 2]), d)}

    return tf, net


@pytest.fixture(scope="module")
def tflite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tf, net = _tf_model()
    d = tmp_path_factory.mktemp("litert")
    module = tf.Module()
    module.net = net
    tf.saved_model.save(module, str(d / "saved"), signatures={"serving_default": net})
    files = {}
    for name, fp16 in (("fp32", False), ("fp16", True)):
        conv = tf.lite.TFLiteConverter.from_saved_model(str(d / "saved"))  # keeps the signature's names
        if fp16:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        files[name] = d / f"net_{name}.tflite"
        files[name].write_bytes(conv.convert())
    x = np.random.default_rng(1).random((2, 16, 16, 3), dtype=np.float32)
    return {"files": files, "x": x, "want": net(tf.constant(x))["y"].numpy(), "net": net, "tf": tf}


@pytest.mark.parametrize("runtime", ["litert", "litert-noxnnpack"])
@pytest.mark.parametrize("threads", [1, 2])
def test_matches_tensorflow(tflite: dict[str, Any], runtime: str, threads: int) -> None:
    with open_runner(runtime, tflite["files"]["fp32"], RunnerOptions(threads=threads)) as runner:
        out = runner.infer({"x": tflite["x"]})
        info = runner.info()
    assert list(out) == ["y"] and out["y"].shape == (2, 200)
    # fp32 kernels (XNNPACK or the built-in ones) differ from TF only in summation order
    np.testing.assert_allclose(out["y"], tflite["want"], rtol=1e-5, atol=1e-5)
    assert info.threads == threads and info.executed_precision == "fp32"
    assert dict(info.details)["xnnpack"] == ("on" if runtime == "litert" else "off")


def test_signature_names_and_dynamic_batch(tflite: dict[str, Any]) -> None:
    with open_runner("tflite", tflite["files"]["fp32"]) as runner:
        assert isinstance(runner, LiteRTRunner)
        (spec,) = runner.input_specs
        assert spec.name == "x" and spec.dtype == "float32" and spec.shape == (None, 16, 16, 3)
        assert runner.output_names == ["y"]
        assert runner.quantization() == {}
        one = runner.infer({"x": tflite["x"][:1]})["y"]  # resized to batch 1, then back to 2
        two = runner.infer({"x": tflite["x"]})["y"]
    np.testing.assert_allclose(one, tflite["want"][:1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(two, tflite["want"], rtol=1e-5, atol=1e-5)
    assert parse_backends("tflite,litert-noxnnpack") == ["litert", "litert-noxnnpack"]


def test_fp16_weights(tflite: dict[str, Any]) -> None:
    fp16, fp32 = tflite["files"]["fp16"], tflite["files"]["fp32"]
    assert fp16.stat().st_size < 0.7 * fp32.stat().st_size
    with open_runner("litert", fp16) as runner:
        out = runner.infer({"x": tflite["x"]})["y"]
        assert runner.info().executed_precision == "fp16-weights+fp32"
    err = np.abs(out - tflite["want"]).max()
    # weights rounded to fp16 (2^-11 relative), compute in fp32: a small non-zero error
    assert 0 < err < 1e-2


def test_errors(tflite: dict[str, Any], tmp_path: Path) -> None:
    onnx_file = models.save(models.mlp(), tmp_path / "mlp.onnx")
    with (
        pytest.raises(ModelLoadError, match=r"LiteRT runs \.tflite models, this is onnx"),
        open_runner("litert", onnx_file),
    ):
        pass
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(tflite["files"]["fp32"].read_bytes()[:400])
    with pytest.raises(ModelLoadError, match="LiteRT cannot load the model"), open_runner("litert", cut):
        pass
    with (
        pytest.raises(RuntimeUnavailable, match="runs on cpu"),
        open_runner("litert", tflite["files"]["fp32"], RunnerOptions(device="gpu")),
    ):
        pass


_XNNPACK_REFUSAL = "XNNPack delegate failed to reshape runtimeNode number 11 (TfLiteXNNPackDelegate) failed to prepare."


def test_xnnpack_refusal_at_load_runs_without_the_delegate(
    tflite: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real graphs (dynamic reshapes) make XNNPACK refuse to prepare; the interpreter runs them on its own kernels."""
    real_build = LiteRTRunner._build

    def refusing(self: LiteRTRunner, xnnpack: bool) -> Any:
        if xnnpack:
            raise RuntimeError(_XNNPACK_REFUSAL)
        return real_build(self, xnnpack)

    monkeypatch.setattr(LiteRTRunner, "_build", refusing)
    with open_runner("litert", tflite["files"]["fp32"]) as runner:
        out = runner.infer({"x": tflite["x"]})
        details = dict(runner.info().details)
    np.testing.assert_allclose(out["y"], tflite["want"], rtol=1e-4, atol=1e-4)
    assert details["xnnpack"].startswith("off: failed to prepare (XNNPack delegate failed to reshape")


def test_xnnpack_refusal_on_a_new_shape_retries_without_the_delegate(
    tflite: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_runner("litert", tflite["files"]["fp32"]) as runner:
        first = runner.infer({"x": tflite["x"][:1]})["y"]
        real_invoke = LiteRTRunner._invoke
        calls = {"n": 0}

        def refuse_once(self: LiteRTRunner, feeds: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError(_XNNPACK_REFUSAL)
            return real_invoke(self, feeds)

        monkeypatch.setattr(LiteRTRunner, "_invoke", refuse_once)
        out = runner.infer({"x": tflite["x"]})["y"]
        assert dict(runner.info().details)["xnnpack"].startswith("off: failed to prepare")
    np.testing.assert_allclose(out, tflite["want"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(first, tflite["want"][:1], rtol=1e-4, atol=1e-4)


def test_other_load_errors_are_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: LiteRTRunner, xnnpack: bool) -> Any:
        raise RuntimeError("Encountered unresolved custom op: Landmarks2TransformMatrix.")

    monkeypatch.setattr(LiteRTRunner, "_build", broken)
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 32)
    with pytest.raises(ModelLoadError, match="unresolved custom op: Landmarks2TransformMatrix"):
        open_runner("litert", model).load()


def _valid_conv_tflite(path: Path) -> np.ndarray:
    """x[1,-1,-1,1] (stored placeholder 1×1×1×1) → 3×3 VALID CONV_2D, one filter, zero bias → y; returns the kernel.
    A 1×1 image cannot pass a 3×3 VALID convolution: the placeholder shape cannot be allocated."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    kernel = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1) / 10
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.CONV_2D
    code.version = 1
    options = fb.Conv2DOptionsT()
    options.padding, options.strideH, options.strideW = fb.Padding.VALID, 1, 1
    options.dilationHFactor = options.dilationWFactor = 1
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 3], [2]
    op.builtinOptionsType, op.builtinOptions = fb.BuiltinOptions.Conv2DOptions, options
    tensors = []
    for name, shape, signature, buf in (("x", [1, 1, 1, 1], [1, -1, -1, 1], 1), ("w", [1, 3, 3, 1], None, 2),
                                         ("y", [1, 1, 1, 1], [1, -1, -1, 1], 3), ("b", [1], None, 4)):  # fmt: skip
        t = fb.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, fb.TensorType.FLOAT32, buf
        t.shapeSignature = signature
        tensors.append(t)
    graph = fb.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], [2], [op]
    buffers = [fb.BufferT() for _ in range(5)]
    buffers[2].data = np.frombuffer(kernel.tobytes(), np.uint8)
    buffers[4].data = np.zeros(4, np.uint8)
    model = fb.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, [code], [graph], buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return kernel


def test_a_dynamic_model_whose_placeholder_shape_cannot_be_allocated_runs_at_the_feeds_shape(tmp_path: Path) -> None:
    kernel = _valid_conv_tflite(tmp_path / "conv.tflite")
    x = np.random.default_rng(0).random((1, 5, 6, 1), dtype=np.float32)
    with LiteRTRunner(tmp_path / "conv.tflite") as runner:
        assert runner._unallocated  # the placeholder shape did not allocate: deferred to the first feeds
        (y,) = runner.infer({"x": x}).values()
        (small,) = runner.infer({"x": x[:, :4, :3]}).values()  # and it resizes afterwards
    expected = np.array(
        [[(x[0, i : i + 3, j : j + 3, 0] * kernel[0, :, :, 0]).sum() for j in range(4)] for i in range(3)]
    )
    np.testing.assert_allclose(y[0, :, :, 0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small[0, :, :, 0], expected[:2, :1], rtol=1e-5, atol=1e-6)
