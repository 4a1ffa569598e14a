"""Engine settings (``RunnerOptions.engine``): each runner applies each one (read back from the engine), bad keys
and values are refused, and the runtime config beside an artifact round-trips and is picked up by open_runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import models
from modelport.backends import open_runner
from modelport.backends.runner import RunnerOptions
from modelport.backends.runtime_config import CONFIG_NAME, load_runtime_config, save_runtime_config
from modelport.errors import InvalidInputError
from modelport.formats import Precision


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.save(models.mlp(), tmp_path_factory.mktemp("engine") / "mlp.onnx")


def _feeds() -> dict[str, np.ndarray]:
    return models.feeds_for(models.mlp())


def tiny_tflite(path: Path) -> Path:
    """A one-op TFLite file (FULLY_CONNECTED, x[1, 8] → y[1, 4]) written with the flatbuffer schema's object API."""
    from modelport.conversion.tflite_prep import flatbuffer_tools, tflite_schema

    schema = tflite_schema()
    rng = np.random.default_rng(0)
    model = schema.ModelT()
    model.version, model.buffers = 3, [schema.BufferT()]
    sg = schema.SubGraphT()
    sg.tensors = []
    weights = {"w": rng.standard_normal((4, 8)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}
    for name, shape in (("x", (1, 8)), ("w", (4, 8)), ("b", (4,)), ("y", (1, 4))):
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = name.encode(), np.array(shape, dtype=np.int32), 0, 0
        if name in weights:
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(weights[name].tobytes(), dtype=np.uint8)
            model.buffers.append(buffer)
            tensor.buffer = len(model.buffers) - 1
        sg.tensors.append(tensor)
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    model.operatorCodes = [code]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, np.array([0, 1, 2], dtype=np.int32), np.array([3], dtype=np.int32)
    op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = schema.FullyConnectedOptionsT()
    sg.operators = [op]
    sg.inputs, sg.outputs = np.array([0], dtype=np.int32), np.array([3], dtype=np.int32)
    model.subgraphs = [sg]
    path.write_bytes(flatbuffer_tools().convert_object_to_bytearray(model))
    return path


# ------------------------------------------------------------------------------------------------ ONNX Runtime


def test_onnxruntime_applies_execution_mode_and_inter_op_threads(onnx_model: Path) -> None:
    import onnxruntime as ort

    engine = (("execution_mode", "PARALLEL"), ("inter_op_num_threads", "2"))
    with open_runner("onnxruntime", onnx_model, RunnerOptions(threads=1, engine=engine)) as runner:
        applied = runner._session.get_session_options()
        details = dict(runner.info().details)
        out = runner.infer(_feeds())
    assert applied.execution_mode == ort.ExecutionMode.ORT_PARALLEL and applied.inter_op_num_threads == 2
    assert details["execution_mode"] == "parallel" and details["inter_op_num_threads"] == "2"
    assert runner.engine == {"execution_mode": "parallel", "inter_op_num_threads": "2"}  # canonical spelling
    np.testing.assert_allclose(next(iter(out.values())), models.ort_outputs(models.mlp(), _feeds())[0], rtol=1e-5)


def test_onnxruntime_default_is_sequential(onnx_model: Path) -> None:
    import onnxruntime as ort

    with open_runner("onnxruntime", onnx_model, RunnerOptions(threads=1)) as runner:
        assert runner._session.get_session_options().execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
        assert dict(runner.info().details)["execution_mode"] == "sequential"


@pytest.mark.parametrize(
    ("runtime", "engine", "names"),
    [
        ("onnxruntime", (("intra_op", "2"),), "execution_mode, inter_op_num_threads"),
        ("onnxruntime", (("execution_mode", "fast"),), "sequential | parallel"),
        ("onnxruntime", (("inter_op_num_threads", "0"),), "a positive integer"),
        ("openvino", (("PERFORMANCE_HINT", "FASTEST"),), "LATENCY | THROUGHPUT"),
        ("openvino", (("NUM_STREAMS", "many"),), "AUTO | a positive integer"),
        ("openvino", (("INFERENCE_PRECISION_HINT", "int8"),), "f32 | bf16 | f16 | none"),
        ("openvino", (("CACHE_DIR", "/tmp"),), "PERFORMANCE_HINT, NUM_STREAMS, INFERENCE_PRECISION_HINT"),
        ("litert", (("xnnpack", "maybe"),), "on | off"),
        ("litert", (("NUM_STREAMS", "1"),), "xnnpack"),
    ],
)
def test_bad_key_or_value_names_the_valid_ones(onnx_model: Path, runtime: str, engine: tuple, names: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        open_runner(runtime, onnx_model, RunnerOptions(engine=engine))
    assert names in str(err.value)


def test_a_setting_given_twice_is_refused(onnx_model: Path) -> None:
    with pytest.raises(InvalidInputError, match="given twice"):
        open_runner(
            "ort", onnx_model, RunnerOptions(engine=(("execution_mode", "parallel"), ("EXECUTION_MODE", "sequential")))
        )


# ------------------------------------------------------------------------------------------------ OpenVINO


def test_openvino_default_is_latency_with_the_precision_hint(onnx_model: Path) -> None:
    with open_runner("openvino", onnx_model, RunnerOptions(threads=1)) as runner:
        compiled = runner._compiled
        details = dict(runner.info().details)
        assert str(compiled.get_property("PERFORMANCE_HINT")).endswith("LATENCY")
    assert details["precision_hint_set"] == "f32" and runner.info().executed_precision == "fp32"


def test_openvino_applies_hint_and_streams(onnx_model: Path) -> None:
    engine = (("PERFORMANCE_HINT", "throughput"), ("NUM_STREAMS", "2"), ("INFERENCE_PRECISION_HINT", "f32"))
    with open_runner("openvino", onnx_model, RunnerOptions(threads=2, engine=engine)) as runner:
        compiled = runner._compiled
        assert str(compiled.get_property("PERFORMANCE_HINT")).endswith("THROUGHPUT")
        assert int(compiled.get_property("NUM_STREAMS")) == 2
        details = dict(runner.info().details)
        out = runner.infer(_feeds())
    assert details["performance_hint"] == "THROUGHPUT" and details["num_streams"] == "2"
    assert runner.info().executed_precision == "fp32"
    np.testing.assert_allclose(next(iter(out.values())), models.ort_outputs(models.mlp(), _feeds())[0], rtol=1e-4)


def test_openvino_streams_auto_is_accepted(onnx_model: Path) -> None:
    with open_runner("openvino", onnx_model, RunnerOptions(threads=1, engine=(("NUM_STREAMS", "auto"),))) as runner:
        assert runner.engine["NUM_STREAMS"] == "AUTO"
        assert int(runner._compiled.get_property("NUM_STREAMS")) >= 1


@pytest.mark.parametrize("precision", [Precision.FP32, Precision.INT8])
def test_openvino_precision_hint_none_sets_no_hint_and_reports_the_plugins_choice(
    onnx_model: Path, precision: Precision
) -> None:
    options = RunnerOptions(threads=1, precision=precision, engine=(("INFERENCE_PRECISION_HINT", "none"),))
    with open_runner("openvino", onnx_model, options) as runner:
        plugin = runner._compiled.get_property("INFERENCE_PRECISION_HINT")
        info = runner.info()
    chosen = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}[str(plugin.get_type_name()).lower()]
    assert dict(info.details)["precision_hint_set"] == "none"
    # the executed precision is what the plugin chose (bf16 on AMX/AVX512-BF16 CPUs, else f32), never the request
    assert info.executed_precision == (f"int8+{chosen}" if precision is Precision.INT8 else chosen)


# ------------------------------------------------------------------------------------------------ LiteRT


@pytest.fixture(scope="module")
def tflite_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_tflite(tmp_path_factory.mktemp("tfl") / "fc.tflite")


@pytest.mark.parametrize(
    ("runtime", "engine", "state"),
    [
        ("litert", (), "on"),
        ("litert", (("xnnpack", "off"),), "off"),
        ("litert", (("xnnpack", "ON"),), "on"),
        ("litert-noxnnpack", (), "off"),
        ("litert-noxnnpack", (("xnnpack", "on"),), "on"),  # the engine setting wins over the runner's own choice
    ],
)
def test_litert_xnnpack_setting(tflite_model: Path, runtime: str, engine: tuple, state: str) -> None:
    x = np.random.default_rng(2).standard_normal((1, 8)).astype(np.float32)
    with open_runner(runtime, tflite_model, RunnerOptions(threads=1, engine=engine)) as runner:
        assert runner.xnnpack is (state == "on")
        assert dict(runner.info().details)["xnnpack"] == state
        y = runner.infer({"x": x})["y"]
    assert y.shape == (1, 4)


# ------------------------------------------------------------------------------------------------ runtime.json


def test_runtime_config_round_trip(tmp_path: Path) -> None:
    artifact = tmp_path / "model.xml"
    options = RunnerOptions(threads=3, precision=Precision.INT8, engine=(("INFERENCE_PRECISION_HINT", "none"),))
    path = save_runtime_config(artifact, "openvino", options)
    assert path == tmp_path / CONFIG_NAME
    data = json.loads(path.read_text())
    assert data["artifact"] == "model.xml" and data["runtime"] == "openvino" and data["threads"] == 3
    assert load_runtime_config(artifact) == ("openvino", options)
    assert load_runtime_config(tmp_path / "other.xml") is None  # another file's config
    assert load_runtime_config(tmp_path / "sub" / "model.xml") is None  # no config there


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "not readable JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"runtime": "openvino"}', "no 'artifact'"),
        ('{"artifact": "m.onnx", "runtime": "ort", "threads": "four"}', "'threads'"),
        ('{"artifact": "m.onnx", "runtime": "ort", "engine": ["a"]}', "'engine'"),
        ('{"artifact": "m.onnx", "runtime": "ort", "precision": "int3"}', "unknown precision"),
        ('{"artifact": "m.onnx"}', "no 'runtime'"),
    ],
)
def test_malformed_runtime_config_names_the_file(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / CONFIG_NAME).write_text(text)
    with pytest.raises(InvalidInputError, match=why) as err:
        load_runtime_config(tmp_path / "m.onnx")
    assert str(tmp_path / CONFIG_NAME) in str(err.value)


@pytest.fixture
def configured(tmp_path: Path) -> Path:
    model = models.save(models.mlp(), tmp_path / "m.onnx")
    engine = (("execution_mode", "parallel"), ("inter_op_num_threads", "2"))
    save_runtime_config(model, "onnxruntime", RunnerOptions(threads=1, engine=engine))
    return model


def test_open_runner_applies_the_config_beside_the_model(configured: Path) -> None:
    with open_runner("ort", configured) as runner:
        assert runner.options.threads == 1 and dict(runner.options.engine)["execution_mode"] == "parallel"
        assert runner._session.get_session_options().inter_op_num_threads == 2
        assert dict(runner.info().details)["runtime_config"] == CONFIG_NAME
    # options without engine settings: the config's settings, the caller's threads and precision
    with open_runner("onnxruntime", configured, RunnerOptions(threads=2)) as runner:
        assert runner.options.threads == 2 and runner.engine["execution_mode"] == "parallel"
        assert dict(runner.info().details)["runtime_config"] == CONFIG_NAME


@pytest.mark.parametrize(
    ("runtime", "options", "config"),
    [
        ("onnxruntime", RunnerOptions(engine=(("execution_mode", "sequential"),)), True),  # the caller's settings
        ("onnxruntime", None, False),  # runtime_config=False
        ("openvino", None, True),  # the config is for another runtime
        ("onnxruntime", RunnerOptions(device="cuda"), True),  # … or another device
    ],
)
def test_open_runner_leaves_the_config_alone(
    configured: Path, runtime: str, options: RunnerOptions | None, config: bool
) -> None:
    runner = open_runner(runtime, configured, options, runtime_config=config)
    assert runner.runtime_config == ""
    assert runner.options == (options or RunnerOptions())


def test_malformed_config_beside_the_model_is_an_error(tmp_path: Path) -> None:
    model = models.save(models.mlp(), tmp_path / "m.onnx")
    (tmp_path / CONFIG_NAME).write_text('{"artifact": "m.onnx", "runtime": 3}')
    with pytest.raises(InvalidInputError, match=CONFIG_NAME):
        open_runner("ort", model)


def test_bench_runs_with_the_config(configured: Path) -> None:
    from modelport.benchmark.timing import BenchConfig, BenchOptions, bench

    report = bench(configured, "onnxruntime", options=BenchOptions(timing=BenchConfig(warmup=1, iterations=2)))
    details = dict(report.results[0].runner.details)
    assert details["runtime_config"] == CONFIG_NAME and details["execution_mode"] == "parallel"
