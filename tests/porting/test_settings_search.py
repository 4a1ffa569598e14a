"""The engine-settings search on the shipped MNIST ConvNet (ONNX Runtime, an OpenVINO IR converted here) and a
tiny LiteRT model: trials recorded, the chosen one the fastest verified (within the 3 % tie rule), a rejecting
check keeps a setting from being chosen, the budget stops the search. No timing or ISA-specific choice is asserted."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from modelport.assets import default_model_path
from modelport.backends import open_runner
from modelport.backends.runner import RunnerOptions
from modelport.backends.runtime_config import save_runtime_config
from modelport.benchmark.timing import BenchConfig
from modelport.formats import Precision
from modelport.inputs import random_feeds
from modelport.porting.results import SettingTrial
from modelport.porting.settings import TIE, search_settings, settings_text

BENCH = BenchConfig(warmup=2, iterations=12)


def _feeds(runtime: str, model: Path) -> dict[str, np.ndarray]:
    with open_runner(runtime, model, runtime_config=False) as runner:
        return random_feeds(runner.input_specs, None, seed=0, batch=1)


def _assert_consistent(chosen: RunnerOptions, trials: tuple[SettingTrial, ...], base: RunnerOptions) -> None:
    """One trial chosen, the base first, the chosen the fastest verified within the tie rule, errors not timed."""
    assert trials[0].settings == settings_text(base) and trials[0].p50_ms is not None
    picked = [t for t in trials if t.chosen]
    assert len(picked) == 1 and picked[0].settings == settings_text(chosen) and not picked[0].error
    verified = [t.p50_ms for t in trials if not t.error and t.p50_ms is not None]
    assert picked[0].p50_ms is not None and TIE * picked[0].p50_ms <= min(verified)
    assert all(t.p50_ms is None for t in trials if t.error)
    assert len({t.settings for t in trials}) == len(trials)  # nothing timed twice


@pytest.fixture(scope="module")
def mnist() -> Path:
    return default_model_path()


@pytest.fixture(scope="module")
def mnist_ir(tmp_path_factory: pytest.TempPathFactory, mnist: Path) -> Path:
    import openvino as ov

    xml = tmp_path_factory.mktemp("ir") / "mnist.xml"
    ov.save_model(ov.convert_model(str(mnist)), str(xml), compress_to_fp16=False)
    return xml


def test_onnxruntime_search_records_trials_and_chooses_the_fastest(mnist: Path, tmp_path: Path) -> None:
    model = tmp_path / "mnist.onnx"
    model.write_bytes(mnist.read_bytes())
    # a runtime config beside the artifact is not what the search measures: it times exactly the options it names
    save_runtime_config(model, "onnxruntime", RunnerOptions(engine=(("execution_mode", "parallel"),)))
    base = RunnerOptions()
    chosen, trials = search_settings(
        "ort", model, Precision.FP32, _feeds("onnxruntime", model), base=base, budget_s=60, bench=BENCH
    )
    _assert_consistent(chosen, trials, base)
    tried = [dict(t.settings) for t in trials]
    assert {"threads", "execution_mode"} <= {k for t in tried for k in t}
    assert all(not t.error for t in trials)  # ORT's settings do not change outputs: no check needed


def test_user_threads_are_kept(mnist: Path) -> None:
    base = RunnerOptions(threads=1)
    chosen, trials = search_settings(
        "onnxruntime", mnist, Precision.FP32, _feeds("onnxruntime", mnist), base=base, budget_s=60, bench=BENCH
    )
    assert chosen.threads == 1 and all(dict(t.settings)["threads"] == "1" for t in trials)


@pytest.mark.parametrize("precision", [Precision.FP32, Precision.INT8])
def test_openvino_search_with_a_rejecting_check(mnist_ir: Path, precision: Precision) -> None:
    checked: list[RunnerOptions] = []

    def reject(options: RunnerOptions) -> str | None:
        checked.append(options)
        return "outputs differ by 1.0"

    base = RunnerOptions(threads=1, precision=precision)
    chosen, trials = search_settings(
        "openvino", mnist_ir, precision, _feeds("openvino", mnist_ir), base=base, budget_s=60, bench=BENCH, check=reject
    )
    _assert_consistent(chosen, trials, base)
    assert dict(trials[1].settings).get("INFERENCE_PRECISION_HINT") == ("none" if precision is Precision.INT8 else None)
    rejected = [t for t in trials if t.error]
    assert len(rejected) == len(checked) and all(t.error == "check failed: outputs differ by 1.0" for t in rejected)
    assert not any(t.chosen for t in rejected)
    assert all(dict(o.engine).get("INFERENCE_PRECISION_HINT") for o in checked)  # only precision changes are checked


def test_openvino_search_accepting_check(mnist_ir: Path) -> None:
    base = RunnerOptions(threads=1)
    chosen, trials = search_settings(
        "ov", mnist_ir, Precision.FP32, _feeds("openvino", mnist_ir), base=base, budget_s=60, bench=BENCH,
        check=lambda options: None,
    )  # fmt: skip
    _assert_consistent(chosen, trials, base)
    assert not any(t.error for t in trials)
    with open_runner("openvino", mnist_ir, chosen) as runner:  # the chosen options run
        assert runner.info().threads == 1


def test_budget_stops_the_search(mnist: Path) -> None:
    base = RunnerOptions()
    chosen, trials = search_settings(
        "onnxruntime", mnist, Precision.FP32, _feeds("onnxruntime", mnist), base=base, budget_s=0, bench=BENCH
    )
    assert chosen == base and len(trials) == 1 and trials[0].chosen


@pytest.fixture(scope="module")
def tflite_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import importlib.util

    path = Path(__file__).parents[1] / "backends" / "test_engine_settings.py"
    spec = importlib.util.spec_from_file_location("_engine_settings_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.tiny_tflite(tmp_path_factory.mktemp("tfl") / "fc.tflite")  # type: ignore[no-any-return]


@pytest.mark.parametrize("check", ["none", "reject"])
def test_litert_xnnpack_off_needs_a_check(tflite_model: Path, check: str) -> None:
    calls: list[RunnerOptions] = []

    def reject(options: RunnerOptions) -> str | None:
        calls.append(options)
        return "too far"

    base = RunnerOptions(threads=1)
    chosen, trials = search_settings(
        "litert", tflite_model, Precision.FP32, {"x": np.ones((1, 8), np.float32)}, base=base, budget_s=60,
        bench=BENCH, check=reject if check == "reject" else None,
    )  # fmt: skip
    _assert_consistent(chosen, trials, base)
    (off,) = [t for t in trials if dict(t.settings).get("xnnpack") == "off"]
    assert off.error == (
        "check failed: too far" if check == "reject" else "its outputs may differ and no check was given"
    )
    assert dict(chosen.engine).get("xnnpack") != "off"
    assert [dict(o.engine)["xnnpack"] for o in calls] == (["off"] if check == "reject" else [])


def test_search_trial_settings_are_what_runs(mnist: Path) -> None:
    base = dataclasses.replace(RunnerOptions(), engine=(("execution_mode", "sequential"),))
    _, trials = search_settings(
        "onnxruntime", mnist, Precision.FP32, _feeds("onnxruntime", mnist), base=base, budget_s=60, bench=BENCH
    )
    assert trials[0].settings == (("threads", "default"), ("execution_mode", "sequential"))
    assert not any(dict(t.settings).get("execution_mode") == "sequential" and t is not trials[0] and
                   dict(t.settings)["threads"] == "default" for t in trials)  # fmt: skip
