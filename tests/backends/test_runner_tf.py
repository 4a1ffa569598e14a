"""TensorFlow runner: SavedModel, frozen GraphDef (found and named I/O), Keras; specs, threads, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelport.backends import open_runner
from modelport.backends.base import LoaderOptions
from modelport.backends.runner import RunnerOptions
from modelport.backends.tensorflow import import_tensorflow
from modelport.errors import InvalidInputError, ModelLoadError


@pytest.fixture(scope="module")
def tf_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tf = import_tensorflow()
    d = tmp_path_factory.mktemp("tfrunner")
    rng = np.random.default_rng(0)
    w = tf.Variable(rng.standard_normal((4, 3)).astype(np.float32))

    @tf.function(
        input_signature=[tf.TensorSpec([None, 4], tf.float32, name="a"), tf.TensorSpec([None, 4], tf.float32, name="b")]
    )
    def fn(a: Any, b: Any) -> Any:
        return {"prod": tf.matmul(a * b, w), "total": tf.reduce_sum(a + b, axis=1)}

    module = tf.Module()
    module.w, module.fn = w, fn
    tf.saved_model.save(module, str(d / "sm"), signatures={"serving_default": fn})

    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(fn.get_concrete_function())
    (d / "frozen.pb").write_bytes(frozen.graph.as_graph_def().SerializeToString())

    import keras

    inp = keras.Input((None, None, 6), name="stereo")
    out = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
    kmodel = keras.Model(inp, out)
    kmodel.save(d / "net.keras")
    a = rng.random((3, 4), dtype=np.float32)
    b = rng.random((3, 4), dtype=np.float32)
    img = rng.random((1, 8, 10, 6), dtype=np.float32)
    return {
        "dir": d,
        "a": a,
        "b": b,
        "want": {k: v.numpy() for k, v in fn(tf.constant(a), tf.constant(b)).items()},
        "img": img,
        "keras_want": np.asarray(kmodel(img)),
        "frozen_io": ([t.name for t in frozen.inputs], [t.name for t in frozen.outputs]),
    }


def test_saved_model(tf_models: dict[str, Any]) -> None:
    with open_runner("tf", tf_models["dir"] / "sm", RunnerOptions(threads=1)) as runner:
        assert [s.name for s in runner.input_specs] == ["a", "b"]
        assert runner.input_specs[0].shape == (None, 4) and runner.input_specs[0].dtype == "float32"
        assert runner.output_names == ["prod", "total"]
        out = runner.infer({"a": tf_models["a"], "b": tf_models["b"]})
        assert dict(runner.info().details)["format"] == "saved_model"
    for k, want in tf_models["want"].items():
        np.testing.assert_allclose(out[k], want, rtol=1e-6, atol=1e-6)


def test_graph_def_found_and_named_io(tf_models: dict[str, Any]) -> None:
    pb = tf_models["dir"] / "frozen.pb"
    ins, outs = tf_models["frozen_io"]
    with open_runner("tensorflow", pb, RunnerOptions(threads=1)) as runner:
        assert sorted(s.name for s in runner.input_specs) == sorted(ins)  # the Placeholders
        assert sorted(runner.output_names) == sorted(outs)  # the ops nothing consumes
        feeds = {s.name: tf_models["a"] if s.name.startswith("a") else tf_models["b"] for s in runner.input_specs}
        out = runner.infer(feeds)
        assert runner.info().threads == 1
    got = sorted((v for v in out.values()), key=lambda v: v.ndim)
    np.testing.assert_allclose(got[0], tf_models["want"]["total"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[1], tf_models["want"]["prod"], rtol=1e-6, atol=1e-6)

    from modelport.backends.tensorflow import TensorFlowRunner

    with TensorFlowRunner(pb, loader=LoaderOptions.build(inputs=ins, outputs=[outs[0]])) as runner:
        assert runner.output_names == [outs[0]]
    runner = TensorFlowRunner(pb, loader=LoaderOptions.build(outputs=["nope:0"]))
    with pytest.raises(InvalidInputError, match="--outputs names a tensor 'nope:0' the graph does not have") as info:
        runner.load()
    assert "placeholders are a:0, b:0" in str(info.value)


def test_keras(tf_models: dict[str, Any]) -> None:
    with open_runner("tensorflow", tf_models["dir"] / "net.keras") as runner:
        (spec,) = runner.input_specs
        assert spec.shape == (None, None, None, 6)
        out = runner.infer({spec.name: tf_models["img"]})
    (y,) = out.values()
    np.testing.assert_allclose(y, tf_models["keras_want"], rtol=1e-6, atol=1e-6)


def test_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\x0a\xff\xff\xff garbage")
    with pytest.raises(ModelLoadError, match="not a TensorFlow GraphDef"), open_runner("tensorflow", bad):
        pass
    empty_dir = tmp_path / "sm"
    empty_dir.mkdir()
    with pytest.raises(ModelLoadError, match="not a SavedModel"), open_runner("tensorflow", empty_dir):
        pass
