"""Keras / SavedModel / GraphDef routes: a HITNet-like [1,?,?,6] Keras model through SavedModel → TFLite
(fixed 480×640) → ONNX (NCHW) → OpenVINO; Keras → ONNX; fp16 TFLite; GraphDef cuts and bad tensor names."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from modelport.backends import open_runner
from modelport.backends.tensorflow import import_tensorflow
from modelport.conversion import ChainOptions, ConvertOptions, convert, convert_chain
from modelport.errors import InvalidInputError
from modelport.formats import Format, Precision, sniff_format
from modelport.inspection import inspect
from modelport.verify.tolerance import Tolerance


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    stereo = keras.Input((None, None, 6), name="stereo")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(stereo)
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c2")(h)
    h = keras.layers.UpSampling2D(2, name="up")(h)
    disparity = keras.layers.Conv2D(1, 3, padding="same", name="disparity")(h)
    path = tmp_path_factory.mktemp("keras") / "stereo.keras"
    keras.Model(stereo, disparity).save(path)
    return path


@pytest.mark.slow
def test_hitnet_like_chain(keras_model: Path, tmp_path: Path) -> None:
    artifact = ConvertOptions(input_shapes=(("stereo", (1, 480, 640, 6)),), inputs_as_nchw=("stereo",))
    options = ChainOptions(artifact, via=("saved_model", "tflite"))
    chain = convert_chain(keras_model, "onnx,openvino", tmp_path, options=options)
    assert [h.label for h in chain.hops] == [
        "keras → saved_model",
        "saved_model → tflite",
        "tflite → onnx",
        "onnx → openvino",
    ]
    assert chain.passed and chain.feeds == (("stereo", (1, 480, 640, 6), "float32"),)
    for hop in chain.hops:
        assert hop.against_source is not None and hop.against_source.max_abs < 1e-4, hop.label
    tflite = Path(chain.hops[1].conversion.artifact)
    assert "input shapes stereo:1x480x640x6" in chain.hops[1].conversion.notes
    with open_runner("litert", tflite) as lite:
        assert lite.input_specs[0].shape == (1, 480, 640, 6)  # fixed by the TFLite hop
    proto = onnx.load(dict(chain.targets)[Format.ONNX])
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert proto.graph.input[0].name == "stereo" and dims == [1, 6, 480, 640]  # NCHW for ONNX and OpenVINO
    assert sniff_format(dict(chain.targets)[Format.OPENVINO_IR]) is Format.OPENVINO_IR
    sm = inspect(chain.hops[0].conversion.artifact)
    assert sm.format is Format.SAVED_MODEL and sm.signatures[0].inputs[0].shape == (None, None, None, 6)


def test_keras_to_onnx_and_fp16_tflite(keras_model: Path, tmp_path: Path) -> None:
    shapes = ConvertOptions(input_shapes=(("stereo", (1, 32, 40, 6)),))
    onnx_report = convert(keras_model, "onnx", tmp_path / "onnx", options=ChainOptions(shapes))
    assert onnx_report.source_format is Format.KERAS and onnx_report.engine.startswith("tf2onnx 1.17")
    assert onnx_report.verification is not None and onnx_report.verification.max_abs < 1e-4
    sm = convert(keras_model, "saved_model", tmp_path / "sm", options=ChainOptions(shapes))
    fp16 = ChainOptions(dataclasses.replace(shapes, precision=Precision.FP16))
    lite = convert(sm.artifact, "tflite", tmp_path / "fp16", options=fp16)
    v = lite.verification
    assert v is not None and v.passed and v.max_abs > 0  # rounded fp16 weights, judged at fp16
    assert v.tolerance == Tolerance.for_precision("fp16")
    summary = inspect(lite.artifact)
    assert summary.format is Format.TFLITE and summary.inputs[0].shape == (1, 32, 40, 6)
    assert any(op == "CONV_2D" for op, _ in summary.op_histogram)


@pytest.fixture(scope="module")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tf = import_tensorflow()
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    w = tf.constant(np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def fn(x: Any) -> Any:
        inner = tf.identity(tf.matmul(x, w), name="inner")
        return tf.nn.relu(inner * 2.0, name="out")

    graph = convert_variables_to_constants_v2(fn.get_concrete_function()).graph
    path = tmp_path_factory.mktemp("frozen") / "net.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    return {"path": path, "w": w.numpy()}


def _tensors(
    inputs: tuple[str, ...], outputs: tuple[str, ...], shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
) -> ChainOptions:
    """Chain options naming GraphDef tensors (and shapes)."""
    return ChainOptions(ConvertOptions(inputs=inputs, outputs=outputs, input_shapes=shapes))


def test_graph_def_cut_and_bad_names(frozen: dict[str, Any], tmp_path: Path) -> None:
    pb = frozen["path"]
    report = convert(pb, "onnx", tmp_path / "full", options=_tensors(("x:0",), ("out:0",)))
    assert report.verification is not None and report.verification.max_abs < 1e-5
    # naming an inner tensor as the output cuts the graph there
    cut = convert(pb, "saved_model", tmp_path / "cut", options=_tensors(("x",), ("inner",), (("x:0", (3, 4)),)))
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    with open_runner("tensorflow", cut.artifact) as runner:
        assert runner.output_names == ["inner"]
        np.testing.assert_allclose(runner.infer({"x": x})["inner"], x @ frozen["w"], rtol=1e-5, atol=1e-5)
    with pytest.raises(InvalidInputError, match="--outputs names a tensor 'nope:0'") as info:
        convert(pb, "onnx", tmp_path / "bad", options=_tensors(("x:0",), ("nope:0",)))
    assert "placeholders are x:0" in str(info.value)
    with pytest.raises(InvalidInputError, match="--inputs names a tensor 'y:0'"):
        convert(pb, "saved_model", tmp_path / "bad", options=_tensors(("y:0",), ("out:0",)))
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


def test_legacy_h5_to_onnx(tmp_path: Path) -> None:
    import_tensorflow()
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [tf_keras.layers.Input((5,), name="feat"), tf_keras.layers.Dense(3, activation="tanh", name="dense")]
    )
    h5 = tmp_path / "legacy.h5"
    model.save(h5)
    report = convert(h5, "onnx", tmp_path / "out")
    assert report.source_format is Format.KERAS and sniff_format(h5) is Format.KERAS
    v = report.verification
    assert v is not None and v.passed and v.max_abs < 1e-6
    x = np.random.default_rng(0).random((4, 5), dtype=np.float32)
    with open_runner("onnxruntime", report.artifact) as ort:
        (spec,) = ort.input_specs
        got = next(iter(ort.infer({spec.name: x}).values()))
    np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-5, atol=1e-6)
