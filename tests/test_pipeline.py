"""The port pipeline: every target converted, verified, benchmarked and reported; the shipped MNIST model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import models
from modelport.backends.onnxruntime import OnnxRuntimeRunner
from modelport.benchmark.timing import BenchConfig, LatencyStats
from modelport.errors import ModelportError
from modelport.formats import Precision
from modelport.porting.pipeline import TIE_RATIO, PortOptions, PortReport, TargetResult, port
from modelport.porting.progress import parse_message
from modelport.reports.environment import capture_environment
from modelport.verify.compare import Tolerance

FAST = BenchConfig(warmup=1, iterations=5)
ALL = (Precision.FP32, Precision.FP16, Precision.BF16)
#: the runtimes and precisions these tests pin (port's own defaults depend on the machine: tests/test_port_any.py),
#: no engine-settings search and no child process (tested on their own)
PINNED = {
    "targets": ("onnxruntime", "openvino"),
    "precisions": (Precision.FP32, Precision.FP16),
    "budget": 0.0,
    "timeout": None,
}


def _options(**kwargs: object) -> PortOptions:
    return PortOptions(**{**PINNED, **kwargs})  # type: ignore[arg-type]


def _bf16_expected() -> str:
    env = capture_environment()
    return "bf16" if env.has_flag("avx512_bf16") or env.has_flag("amx_bf16") else "fp32"


@pytest.fixture(scope="module")
def ported(tmp_path_factory: pytest.TempPathFactory) -> tuple[PortReport, Path, list[str]]:
    d = tmp_path_factory.mktemp("port")
    src = models.save(models.conv_bn(), d / "convbn.onnx")
    out = d / "out"
    messages: list[str] = []
    report = port(
        src,
        out,
        options=_options(precisions=ALL, optimize=False, bench=FAST, batch=2),
        progress=messages.append,
    )
    return report, out, messages


def test_port_targets(ported: tuple[PortReport, Path, list[str]]) -> None:
    report, _, _ = ported
    assert [(t.label, t.status) for t in report.targets] == [
        ("onnxruntime/fp32", "verified"),
        ("onnxruntime/fp16", "verified"),
        ("onnxruntime/bf16", "skipped"),
        ("openvino/fp32", "verified"),
        ("openvino/fp16", "verified"),
        ("openvino/bf16", "verified"),
    ]
    skipped = report.targets[2]
    assert skipped.reason == "onnxruntime does not run bf16 on CPU"
    assert skipped.latency is None and skipped.artifact == ""
    assert report and report.passed


def test_port_verified_targets(ported: tuple[PortReport, Path, list[str]]) -> None:
    report, out, _ = ported
    executed = {
        "onnxruntime/fp32": "fp32",
        "onnxruntime/fp16": "fp16",
        "openvino/fp32": "fp32",
        "openvino/fp16": "fp32",  # fp16 weights, f32 execution
        "openvino/bf16": _bf16_expected(),
    }
    for t in report.targets:
        if not t.verified:
            continue
        suffix = "onnx" if t.runtime == "onnxruntime" else "xml"
        assert t.artifact == str(out / "targets" / f"{t.runtime}-{t.precision.value}" / f"model.{suffix}")
        assert Path(t.artifact).is_file()
        assert t.size_bytes > 0
        assert t.runner is not None and t.runner.executed_precision == executed[t.label]
        v = t.verification
        assert v is not None and v.passed
        assert v.tolerance == Tolerance.for_precision(t.precision)
        if t.precision is Precision.FP32:
            assert v.max_abs <= 1e-5
        assert t.latency is not None and t.latency.n == 5
        assert t.throughput == pytest.approx(2 / (t.latency.p50_ms / 1e3))  # samples/s from the median
        assert t.accuracy is None


def test_port_report_fields(ported: tuple[PortReport, Path, list[str]]) -> None:
    report, out, messages = ported
    assert report.source.endswith("convbn.onnx")
    assert report.source_nodes == 3
    assert report.optimization is None
    assert report.batch == 2
    assert report.feeds == "random, seed 0"
    assert report.source_accuracy is None
    assert (out / "model.onnx").is_file()
    assert messages[0] == "preparing the source model (onnx)"
    assert "openvino/bf16: verifying against the source" in messages  # the target's own steps


def test_port_progress_messages(ported: tuple[PortReport, Path, list[str]]) -> None:
    """Each target: a start message announcing its steps, that many step messages when it verifies, its status."""
    report, _, messages = ported
    events = [e for e in map(parse_message, messages) if e is not None]
    assert parse_message(messages[0]) is None  # the source's preparation is about no target
    for t in report.targets:
        mine = [e for e in events if e.target == t.label]
        assert mine[0].steps is not None and mine[-1].status == t.status, t.label
        steps = [e for e in mine[1:-1] if e.steps is None and e.status is None]
        if t.verified:
            assert len(steps) == mine[0].steps, (t.label, [e.text for e in steps])
        else:
            assert len(steps) < mine[0].steps
    assert [e.target for e in events if e.status is not None] == [t.label for t in report.targets]


def test_port_fastest(ported: tuple[PortReport, Path, list[str]]) -> None:
    report, _, _ = ported
    verified = [t for t in report.targets if t.verified and t.latency is not None]
    best = min(t.latency.p50_ms for t in verified if t.latency)
    chosen = next(t for t in verified if t.label == report.fastest)
    assert chosen.latency is not None and chosen.latency.p50_ms <= best * TIE_RATIO
    # within the tie band nothing more precise exists
    rank = ["fp32", "fp16", "bf16", "int8"]
    ties = [t for t in verified if t.latency and t.latency.p50_ms <= best * TIE_RATIO]
    assert rank.index(chosen.precision.value) == min(rank.index(t.precision.value) for t in ties)


def _target(runtime: str, precision: Precision, p50: float, status: str = "verified") -> TargetResult:
    stats = LatencyStats(n=1, mean_ms=p50, stdev_ms=0.0, min_ms=p50, p50_ms=p50, p90_ms=p50, p99_ms=p50, max_ms=p50)
    return TargetResult(runtime, precision, status, latency=stats)


def test_fastest_prefers_precision_within_noise_and_ignores_unverified() -> None:
    from modelport.porting.pipeline import _fastest

    targets = [
        _target("onnxruntime", Precision.FP32, 1.00),
        _target("openvino", Precision.BF16, 0.97),  # 3 % faster: a tie, fp32 wins
        _target("openvino", Precision.FP16, 0.50, status="mismatch"),  # fastest but not verified
    ]
    assert _fastest(targets) == "onnxruntime/fp32"
    targets.append(_target("openvino", Precision.FP16, 0.80))  # 20 % faster: a real win
    assert _fastest(targets) == "openvino/fp16"
    assert _fastest([_target("openvino", Precision.FP32, 1.0, status="failed")]) is None


def test_port_writes_reports(ported: tuple[PortReport, Path, list[str]]) -> None:
    report, out, _ = ported
    text = (out / "report.json").read_text()
    assert PortReport.from_json(text) == report
    assert json.loads(text)["targets"][0]["precision"] == "fp32"
    md = (out / "report.md").read_text()
    assert "| target | executes | status |" in md
    for t in report.targets:
        assert f"| {t.label}" in md
    assert f"**{report.fastest}**" in md
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>")
    assert html.count("<svg") == 1  # latency plot; no accuracy plot without a dataset
    assert "openvino/bf16" in html
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "report.html", "report.json", "report.md", "targets"]


def test_port_mismatch_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = Tolerance.for_precision

    def strict_fp16(precision: Precision | str) -> Tolerance:
        # fp16 weights cannot be exact: a zero fp16 tolerance makes those targets fail verification
        return Tolerance(0, 0) if Precision(precision) is Precision.FP16 else original(precision)

    monkeypatch.setattr(Tolerance, "for_precision", staticmethod(strict_fp16))
    src = models.save(models.wide_mlp(), tmp_path / "wide.onnx")
    report = port(src, tmp_path / "out", options=_options(optimize=False, bench=FAST))
    status = {t.label: t.status for t in report.targets}
    assert status == {
        "onnxruntime/fp32": "verified",
        "onnxruntime/fp16": "mismatch",
        "openvino/fp32": "verified",
        "openvino/fp16": "mismatch",
    }
    for t in report.targets:
        if t.status == "mismatch":
            assert "output 'y'" in t.reason and "rtol=0, atol=0" in t.reason
            assert t.latency is not None  # still measured, never chosen
    assert report.fastest in ("onnxruntime/fp32", "openvino/fp32")
    assert not report and not report.passed
    assert "mismatch: output 'y'" in (tmp_path / "out" / "report.md").read_text()


def test_port_failed_conversion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelport.conversion import openvino as ov_convert
    from modelport.errors import ConversionError

    def broken(*args: object, **kwargs: object) -> object:
        raise ConversionError("engine exploded")

    monkeypatch.setattr(ov_convert.import_openvino(), "convert_model", broken)
    src = models.save(models.mlp(), tmp_path / "mlp.onnx")
    report = port(src, tmp_path / "out", options=_options(precisions=(Precision.FP32,), optimize=False, bench=FAST))
    status = {t.label: (t.status, t.reason) for t in report.targets}
    assert status["onnxruntime/fp32"] == ("verified", "")
    assert status["openvino/fp32"][0] == "failed"
    assert "OpenVINO cannot convert the model" in status["openvino/fp32"][1]
    assert report.fastest == "onnxruntime/fp32"
    assert not report


def test_port_runtime_failure_fails_only_that_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelport.backends.openvino import OpenVINORunner
    from modelport.errors import ModelLoadError

    def broken(self: OpenVINORunner) -> None:
        raise ModelLoadError("OpenVINO cannot load the model: unsupported op", path=self.model_path)

    monkeypatch.setattr(OpenVINORunner, "load", broken)
    src = models.save(models.mlp(), tmp_path / "mlp.onnx")
    report = port(src, tmp_path / "out", options=_options(precisions=(Precision.FP32,), optimize=False, bench=FAST))
    ov = report.targets[1]
    assert (ov.label, ov.status) == ("openvino/fp32", "failed")
    assert "unsupported op" in ov.reason
    assert ov.artifact.endswith("model.xml") and ov.latency is None
    assert report.targets[0].verified and report.fastest == "onnxruntime/fp32"
    assert not report
    assert (tmp_path / "out" / "report.html").is_file()


def test_port_input_shapes_and_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shapes: set[tuple[int, ...]] = set()
    original = OnnxRuntimeRunner._run

    def spy(self: OnnxRuntimeRunner, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        shapes.add(feeds["x"].shape)
        return original(self, feeds)

    monkeypatch.setattr(OnnxRuntimeRunner, "_run", spy)
    src = models.save(models.mlp(), tmp_path / "mlp.onnx")
    options = _options(
        targets=("onnxruntime",), precisions=(Precision.FP32,), input_shapes=(("x", (1, 8)),), batch=3, bench=FAST
    )
    report = port(src, tmp_path / "out", options=options)
    assert report.passed
    assert shapes == {(3, 8)}  # the requested batch, everywhere


def test_port_fixed_batch_model(tmp_path: Path) -> None:
    src = models.save(models.fixed_batch_mlp(2), tmp_path / "fixed.onnx")
    options = _options(precisions=(Precision.FP32,), optimize=False, bench=FAST)
    report = port(src, tmp_path / "out", options=options)
    assert report.batch == 2  # the model's own batch when none is asked for
    assert [t.status for t in report.targets] == ["verified", "verified"]
    assert all(t.verification and t.verification.outputs[0].shape == (2, 4) for t in report.targets)
    with pytest.raises(ModelportError, match="fixed batch of 2"):
        port(src, tmp_path / "out3", options=dataclasses.replace(options, batch=3))


def test_port_bad_source_is_one_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "model.xml"
    p.write_text('<?xml version="1.0"?>\n<net name="m" version="11"></net>\n')
    with pytest.raises(ModelportError) as info:
        port(p, tmp_path / "out", options=_options())
    assert "no route from openvino" in info.value.message and "model.xml" in str(info.value)


def test_port_default_mnist_model(tmp_path: Path) -> None:
    # the whole 10,000-image test split: about 1.5 s per target on two cores
    options = _options(optimize=False, bench=FAST, eval_limit=None)
    report = port(None, tmp_path, options=options)
    assert report.source.endswith("mnist_convnet.onnx")
    assert report.feeds == "64 real samples from mnist-test"
    assert report.source_accuracy is not None
    assert report.source_accuracy.samples == 10_000
    assert report.source_accuracy.top1 >= 0.98
    assert [t.label for t in report.targets] == [
        "onnxruntime/fp32",
        "onnxruntime/fp16",
        "openvino/fp32",
        "openvino/fp16",
    ]
    for t in report.targets:
        assert t.verified, t.reason
        assert t.accuracy is not None and t.accuracy.samples == 10_000
        assert t.accuracy.top1 >= 0.98
        # fp32 and fp16 agree with the source on nearly every image
        assert abs(t.accuracy.top1 - report.source_accuracy.top1) <= 0.002
        assert t.accuracy.top5 is not None and t.accuracy.top5 >= t.accuracy.top1
    assert report
    html = (tmp_path / "report.html").read_text()
    assert html.count("<svg") == 1  # the accuracy-vs-latency scatter
    assert "source accuracy: top-1" in (tmp_path / "report.md").read_text()


def test_port_tunes_engine_settings_without_changing_the_precision(tmp_path: Path) -> None:
    """The settings search runs within the budget, keeps a configuration that still executes the target's precision
    (an OpenVINO fp32 target without a precision hint would run bf16 on AVX512-BF16/AMX CPUs), saves it as
    runtime.json, and the target's latency is measured with it."""
    src = models.save(models.conv_bn(), tmp_path / "convbn.onnx")
    options = _options(targets=("openvino",), precisions=(Precision.FP32,), optimize=False, bench=FAST, budget=3.0)
    report = port(src, tmp_path / "out", options=options)
    (t,) = report.targets
    assert t.verified and t.trials and sum(trial.chosen for trial in t.trials) == 1
    assert t.runner is not None and t.runner.executed_precision == "fp32"
    for trial in t.trials:
        if dict(trial.settings).get("INFERENCE_PRECISION_HINT") in ("none", "bf16") and _bf16_expected() == "bf16":
            assert not trial.chosen and "executes bf16" in trial.error
    config = json.loads((tmp_path / "out" / "targets" / "openvino-fp32" / "runtime.json").read_text())
    assert config["runtime"] == "openvino" and dict(t.settings)


def test_the_onnxruntime_fp32_target_is_the_optimized_model(tmp_path: Path) -> None:
    src = models.save(models.conv_bn(), tmp_path / "convbn.onnx")  # Conv + BatchNormalization + Relu
    options = _options(targets=("onnxruntime",), precisions=(Precision.FP32,), bench=FAST)
    report = port(src, tmp_path / "out", options=options)
    (t,) = report.targets
    ops = [n.op_type for n in onnx.load(t.artifact).graph.node]
    assert t.verified and "BatchNormalization" not in ops  # folded by the optimizer, not the source copied
    assert report.optimization is not None and "fold-batchnorm" in report.optimization.passes


def test_port_throughput_batches_in_both_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each larger batch is timed one request at a time and with requests in flight; the better mode is kept."""
    import modelport.porting.target as target_mod

    monkeypatch.setattr(target_mod, "parallel_requests", lambda: ((2, 1),))
    src = models.save(models.conv_bn(), tmp_path / "convbn.onnx")
    report = port(
        src,
        tmp_path / "out",
        options=_options(targets=("onnxruntime",), precisions=(Precision.FP32,), bench=FAST, throughput_batches=(4,)),
    )
    (t,) = report.targets
    assert t.verified
    (tp,) = t.throughputs
    assert tp.batch == 4 and tp.samples_per_s > 0
    assert (tp.requests, tp.threads) in ((1, None), (2, 1))
    assert tp.mode == ("batch 4" if tp.requests == 1 else "batch 4, 2 requests × 1 thread")
    if tp.requests == 1:  # the single request won: its rate is the median's
        assert tp.samples_per_s == pytest.approx(4 / (tp.p50_ms / 1e3))
    assert report.fastest_throughput == "onnxruntime/fp32"
