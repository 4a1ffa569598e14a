"""Runners: ONNX Runtime and OpenVINO on tiny models, precision reporting, options and errors."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

import models
from modelport.backends import get_backend, open_runner, parse_backends
from modelport.backends.onnxruntime import OnnxRuntimeRunner
from modelport.backends.openvino import OpenVINORunner
from modelport.backends.runner import RunnerOptions
from modelport.errors import InvalidInputError, ModelLoadError, RuntimeUnavailable
from modelport.formats import Precision
from modelport.inputs import TensorSpec
from modelport.reports.environment import capture_environment
from modelport.verify.compare import Tolerance, compare_arrays

RUNTIMES = ["onnxruntime", "openvino"]


@pytest.fixture(scope="module")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.save(models.mlp(), tmp_path_factory.mktemp("runners") / "mlp.onnx")


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)


def _bf16_expected() -> str:
    """OpenVINO's CPU plugin executes bf16 only on CPUs with native bf16 (AVX512-BF16 or AMX), else f32."""
    env = capture_environment()
    return "bf16" if env.has_flag("avx512_bf16") or env.has_flag("amx_bf16") else "fp32"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_runner_matches_numpy_reference(runtime: str, mlp_path: Path, x: np.ndarray) -> None:
    ref = models.mlp_reference(x, models.mlp())
    with open_runner(runtime, mlp_path) as runner:
        out = runner.infer({"x": x})
        assert list(out) == ["y"]
        assert out["y"].shape == (5, 4) and out["y"].dtype == np.float32
        # fp32 on both runtimes: only summation order differs from the float64 reference
        np.testing.assert_allclose(out["y"], ref, rtol=0, atol=1e-5)
        # a second batch size on the same session (dynamic batch)
        one = runner.infer({"x": x[:1]})["y"]
        np.testing.assert_allclose(one, ref[:1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_runner_specs(runtime: str, mlp_path: Path) -> None:
    with open_runner(runtime, mlp_path) as runner:
        (spec,) = runner.input_specs
        assert spec.name == "x" and spec.dtype == "float32"
        assert spec.shape is not None and len(spec.shape) == 2 and spec.shape[1] == 8
        assert not spec.is_static  # dynamic batch: ORT names it, OpenVINO leaves it unnamed
        assert runner.output_names == ["y"]


def test_runner_specs_multi_input(tmp_path: Path) -> None:
    path = models.save(models.two_inputs(), tmp_path / "two.onnx")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 2.0, np.float32)
    for runtime in RUNTIMES:
        with open_runner(runtime, path) as runner:
            assert [s.name for s in runner.input_specs] == ["a", "b"]
            assert all(s.shape == (2, 3) for s in runner.input_specs)
            assert runner.output_names == ["s", "p"]
            out = runner.infer({"a": a, "b": b})
            np.testing.assert_array_equal(out["s"], a + b)
            np.testing.assert_array_equal(out["p"], a * b)


def test_onnxruntime_info(mlp_path: Path) -> None:
    with open_runner("onnxruntime", mlp_path, RunnerOptions(threads=1)) as runner:
        info = runner.info()
        assert runner._session.get_session_options().intra_op_num_threads == 1  # type: ignore[attr-defined]
    assert info.runtime == "onnxruntime"
    assert info.requested_precision == "fp32" and info.executed_precision == "fp32"
    assert info.threads == 1
    assert dict(info.details)["providers"] == "CPUExecutionProvider"
    assert info.to_dict()["details"]["graph_optimization"] == "all"


def test_onnxruntime_graph_optimization_off(mlp_path: Path) -> None:
    with open_runner("onnxruntime", mlp_path, RunnerOptions(graph_optimization=False)) as runner:
        assert dict(runner.info().details)["graph_optimization"] == "disabled"
        level = runner._session.get_session_options().graph_optimization_level  # type: ignore[attr-defined]
    import onnxruntime

    assert level == onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL


def test_openvino_fp32_hint(mlp_path: Path) -> None:
    with open_runner("openvino", mlp_path, RunnerOptions(precision=Precision.FP32, threads=1)) as runner:
        info = runner.info()
    assert info.runtime == "openvino"
    assert info.requested_precision == "fp32"
    assert info.executed_precision == "fp32"
    assert info.threads == 1
    assert dict(info.details)["device_name"]


def test_openvino_bf16(mlp_path: Path, x: np.ndarray) -> None:
    with open_runner("openvino", mlp_path, RunnerOptions(precision=Precision.FP32)) as runner:
        fp32 = runner.infer({"x": x})["y"]
    with open_runner("openvino", mlp_path, RunnerOptions(precision=Precision.BF16)) as runner:
        info = runner.info()
        bf16 = runner.infer({"x": x})["y"]
    assert info.requested_precision == "bf16"
    expected = _bf16_expected()
    assert info.executed_precision == expected
    if expected == "bf16":
        assert not np.array_equal(bf16, fp32)  # bf16 really ran: its 8-bit mantissa rounds the results
    # within the bf16 tolerance (5e-2: 8-bit mantissa, ~3.9e-3 relative rounding per op)
    assert compare_arrays("y", fp32, bf16, Tolerance.for_precision("bf16")).passed


def test_openvino_fp16(mlp_path: Path, x: np.ndarray) -> None:
    env = capture_environment()
    # f16 where the ISA has it; elsewhere f32, never the coarser bf16 the CPU plugin would pick on its own
    expected = "fp16" if env.has_flag("avx512_fp16") or env.has_flag("amx_fp16") else "fp32"
    with open_runner("openvino", mlp_path, RunnerOptions(precision=Precision.FP16)) as runner:
        info = runner.info()
        out = runner.infer({"x": x})["y"]
    assert info.requested_precision == "fp16"
    assert info.executed_precision == expected
    ref = models.mlp_reference(x, models.mlp())
    # fp16 tolerance (1e-2): 11-bit mantissa rounding per op
    assert compare_arrays("y", ref, out, Tolerance.for_precision("fp16")).passed


def test_openvino_default_threads_reported(mlp_path: Path) -> None:
    with open_runner("openvino", mlp_path) as runner:
        threads = runner.info().threads
    assert threads is not None and threads >= 1


def test_runner_registry_and_aliases() -> None:
    assert get_backend("ort").runner_class() is OnnxRuntimeRunner
    assert get_backend(" OV ").runner_class() is OpenVINORunner
    assert parse_backends("ov,onnxruntime,openvino") == ["openvino", "onnxruntime"]
    assert parse_backends(["onnx", "openvino,ort"]) == ["onnxruntime", "openvino"]
    with pytest.raises(InvalidInputError, match="no runtime given"):
        parse_backends(" , ")


def test_unknown_runtime_lists_valid(mlp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="unknown runtime 'tvm'") as info:
        open_runner("tvm", mlp_path)
    assert "valid runtimes: litert, litert-noxnnpack, onnxruntime, openvino, tensorflow, tensorrt, torch" in str(
        info.value
    )


def test_missing_openvino(monkeypatch: pytest.MonkeyPatch, mlp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    with (
        pytest.raises(RuntimeUnavailable, match="OpenVINO is not installed") as info,
        open_runner("openvino", mlp_path),
    ):
        pass
    assert "modelport[openvino]" in str(info.value)


@pytest.mark.parametrize(("runtime", "device"), [("onnxruntime", "npu"), ("openvino", "npu")])
def test_unknown_device(runtime: str, device: str, mlp_path: Path) -> None:
    with (
        pytest.raises(RuntimeUnavailable, match="no device"),
        open_runner(runtime, mlp_path, RunnerOptions(device=device)),
    ):
        pass


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_missing_model_file(runtime: str, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not found"), open_runner(runtime, tmp_path / "missing.onnx"):
        pass


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_non_model_file(runtime: str, tmp_path: Path) -> None:
    p = tmp_path / "notes.onnx"
    p.write_text("hello, not a model\n")
    with pytest.raises(ModelLoadError) as info, open_runner(runtime, p):
        pass
    message = str(info.value)
    assert "notes.onnx" in message
    assert "\n" not in message
    assert "Exception from src" not in message


@pytest.mark.parametrize(
    ("runtime", "message"),
    [("onnxruntime", "onnxruntime cannot load the model"), ("openvino", "not a valid ONNX protobuf")],
)
def test_truncated_model_file(runtime: str, message: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    data = models.wide_mlp().SerializeToString()
    p = tmp_path / "cut.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=message) as info, open_runner(runtime, p):
        pass
    assert "cut.onnx" in str(info.value)
    assert capfd.readouterr().err == ""  # OpenVINO's frontends are not tried on a broken file (they log to fd 2)


class _Spy:
    """Counts calls of a runner's ``_run`` (the runtime call)."""

    def __init__(self, run: object) -> None:
        self.run = run
        self.calls = 0

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        return self.run(feeds)  # type: ignore[operator, no-any-return]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize(
    ("feed", "message"),
    [
        (np.zeros((2, 7), np.float32), r"'x' has shape \[2, 7\]"),
        (np.zeros((2, 8, 1), np.float32), r"'x' has shape \[2, 8, 1\]"),
        (np.zeros((2, 8), np.float64), "'x' has dtype float64, the model expects float32"),
        (np.zeros((2, 8), np.int32), "'x' has dtype int32"),
    ],
)
def test_bad_feeds_rejected_before_running(
    runtime: str, feed: np.ndarray, message: str, mlp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_runner(runtime, mlp_path) as runner:
        spy = _Spy(runner._run)
        monkeypatch.setattr(runner, "_run", spy)
        with pytest.raises(InvalidInputError, match=message):
            runner.infer({"x": feed})
        with pytest.raises(InvalidInputError, match="missing input"):
            runner.infer({"y": feed})
        assert spy.calls == 0
        runner.infer({"x": np.zeros((2, 8), np.float32)})
        assert spy.calls == 1


def test_openvino_infer_returns_owned_arrays(mlp_path: Path, x: np.ndarray) -> None:
    with open_runner("openvino", mlp_path) as runner:
        first = runner.infer({"x": x})["y"]
        kept = first.copy()
        runner.infer({"x": x * 3})
    np.testing.assert_array_equal(first, kept)


def test_tensor_spec_text() -> None:
    assert TensorSpec("x", "float32", ("batch", 3, None, -1)).shape_text() == "[batch, 3, ?, ?]"
    assert TensorSpec("x", "float32", None).shape_text() == "unknown rank"
    assert TensorSpec("x", "float32", (1, 3)).is_static


@pytest.mark.gpu
def test_gpu_runners_match_cpu(mlp_path: Path, x: np.ndarray) -> None:
    with open_runner("onnxruntime", mlp_path) as runner:
        cpu = runner.infer({"x": x})["y"]
    with open_runner("onnxruntime", mlp_path, RunnerOptions(device="cuda")) as runner:
        info = runner.info()
        cuda = runner.infer({"x": x})["y"]
    assert dict(info.details)["providers"].startswith("CUDAExecutionProvider")
    # fp32 on the GPU: cuBLAS may use TF32 tensor cores for MatMul (10-bit mantissa), hence 1e-3
    np.testing.assert_allclose(cuda, cpu, rtol=1e-3, atol=1e-3)
    import openvino

    if "GPU" in openvino.Core().available_devices:
        with open_runner("openvino", mlp_path, RunnerOptions(device="GPU")) as runner:
            gpu = runner.infer({"x": x})["y"]
            executed = runner.info().executed_precision
        # OpenVINO's GPU plugin runs f16 unless told otherwise; the runner asks for f32
        assert executed == "fp32"
        np.testing.assert_allclose(gpu, cpu, rtol=1e-3, atol=1e-3)
