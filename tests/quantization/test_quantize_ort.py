"""ONNX Runtime INT8: the shipped MNIST ConvNet quantized (QDQ present, integer kernels after ORT's fusion),
its accuracy measured on the 10,000 test images; the type choice per CPU and by measurement; dynamic mode;
exclusions; the accuracy gate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

import models
from modelport.assets import default_model_path
from modelport.benchmark.timing import BenchConfig, LatencyStats
from modelport.errors import InvalidInputError, ModelLoadError, VerificationError
from modelport.quantization import (
    AccuracyDropError,
    CalibrationMethod,
    Mode,
    QuantizeOptions,
    QuantizeReport,
    QuantTypes,
    quantize,
)
from modelport.quantization import api as quantize_api
from modelport.quantization import ort as quantize_ort
from modelport.quantization.ort import plan
from modelport.reports.environment import capture_environment

FAST = BenchConfig(warmup=1, iterations=6)
#: the issue's goal: INT8 top-1 within 0.5 points of FP32 on MNIST, on every runtime.
MAX_MNIST_DROP = 0.5


def _ops(path: str | Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


@pytest.fixture(scope="module")
def mnist_ort(tmp_path_factory: pytest.TempPathFactory) -> QuantizeReport:
    out = tmp_path_factory.mktemp("ort")
    opts = QuantizeOptions(samples=200, types=QuantTypes.U8S8, bench=FAST, fp16=True)
    return quantize(default_model_path(), out, runtime="ort", calib="mnist", eval="mnist:test", options=opts)


def test_mnist_int8_keeps_its_accuracy(mnist_ort: QuantizeReport) -> None:
    fp32, int8 = mnist_ort.fp32.metric, mnist_ort.int8.metric
    assert fp32 is not None and int8 is not None
    assert fp32.samples == int8.samples == 10_000
    assert fp32.top1 == pytest.approx(0.9935, abs=1e-4)  # the shipped model's card
    assert mnist_ort.drop is not None and mnist_ort.drop <= MAX_MNIST_DROP
    assert mnist_ort.drop == pytest.approx(100 * (fp32.top1 - int8.top1))
    assert int8.agreement is not None and int8.agreement > 0.99
    assert mnist_ort.status == "verified" and mnist_ort and mnist_ort.require() is mnist_ort
    assert "drop" in mnist_ort.reason and "allowed 1" in mnist_ort.reason


def test_mnist_int8_is_quantized_and_fused(mnist_ort: QuantizeReport) -> None:
    ops = _ops(mnist_ort.artifact)
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    layers = mnist_ort.int8.layers
    assert layers is not None and layers.quantized
    assert layers.quant_nodes == ops.count("QuantizeLinear") + ops.count("DequantizeLinear")
    counts = dict(layers.op_counts)
    assert counts.get("QLinearConv", 0) >= 2 and counts.get("QGemm", 0) + counts.get("QLinearMatMul", 0) >= 1
    assert layers.float_layers == ()  # U8S8 on x86: ORT fused every Conv and Gemm
    assert ("activations", "u8") in mnist_ort.settings and ("weights", "s8") in mnist_ort.settings
    assert mnist_ort.choice.startswith("U8S8 as asked (--types)")  # + "no setting beat FP32" when slower


def test_report_has_sizes_latency_side_by_side_and_files(mnist_ort: QuantizeReport) -> None:
    names = [v.name for v in mnist_ort.variants]
    assert names == ["fp32", "int8", "fp16"]
    fp32, int8, fp16 = mnist_ort.variants
    assert int8.size_bytes < 0.4 * fp32.size_bytes  # int8 weights: a quarter, plus scales and the graph
    assert fp16.size_bytes < 0.6 * fp32.size_bytes
    for v in mnist_ort.variants:
        assert v.latency is not None and v.latency.n >= FAST.iterations and v.runner is not None
        assert v.speedup == pytest.approx(fp32.latency.p50_ms / v.latency.p50_ms)  # type: ignore[union-attr]
    assert int8.runner.executed_precision == "int8"  # type: ignore[union-attr]
    assert fp16.error is not None and fp16.error.max_abs < 0.05
    out = Path(mnist_ort.artifact).parent
    assert {p.name for p in out.iterdir()} == {
        "mnist_convnet.int8.onnx",
        "mnist_convnet.fp16.onnx",
        "quantize.json",
        "quantize.md",
    }
    again = QuantizeReport.from_json((out / "quantize.json").read_text())
    assert again == mnist_ort
    md = (out / "quantize.md").read_text()
    assert "| int8 | int8 |" in md and "compute layers left in float" in md
    assert mnist_ort.calibration.samples == 200 and mnist_ort.calibration.source == "mnist:train"
    assert mnist_ort.evaluation.labelled and mnist_ort.evaluation.source == "mnist:test"


def _env(machine: str, *flags: str):  # type: ignore[no-untyped-def]
    return dataclasses.replace(capture_environment(), machine=machine, cpu_flags=flags)


def test_type_plan_per_cpu() -> None:
    vnni, why = plan(QuantizeOptions(), _env("x86_64", "avx2", "avx512_vnni"))
    assert [(s.activation, s.weight, s.reduce_range) for s in vnni] == [
        ("u8", "s8", False),
        ("s8", "s8", False),
        ("u8", "u8", False),
    ]
    assert "avx512_vnni" in why and "U8S8" in why
    old, why = plan(QuantizeOptions(), _env("x86_64", "avx2"))
    assert old[0].reduce_range and "reduce_range" in why
    arm, why = plan(QuantizeOptions(per_channel=True), _env("aarch64", "asimd", "asimddp"))
    assert (arm[0].activation, arm[0].weight, arm[0].per_channel) == ("s8", "s8", True) and "ARM" in why
    explicit, why = plan(QuantizeOptions(types=QuantTypes.S8S8), _env("x86_64", "avx512_vnni"))
    assert len(explicit) == 1 and explicit[0].label == "static QDQ S8S8 minmax per-tensor"


def _stats(ms: float) -> LatencyStats:
    return LatencyStats(10, ms, 0.0, ms, ms, ms, ms, ms)


def test_auto_types_measure_and_fall_back_when_int8_is_slower(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU's first choice is kept only when it beats FP32; else the next settings are built and timed."""
    # (fp32, int8) p50 per call: trial U8S8 slower, trial S8S8 faster, then the final measurement
    responses = iter([(1.0, 1.5), (1.0, 0.8), (1.0, 0.8)])

    def fake_latency(runners, feeds, config):  # type: ignore[no-untyped-def]
        f32, q = next(responses)
        return [_stats(f32), _stats(q)]

    monkeypatch.setattr(quantize_api, "interleaved_latency", fake_latency)  # the final measurement
    monkeypatch.setattr(quantize_ort, "interleaved_latency", fake_latency)  # the trials of each setting
    monkeypatch.setattr(quantize_api, "capture_environment", lambda: _env("x86_64", "avx512_vnni"))
    report = quantize(
        default_model_path(),
        tmp_path,
        calib="mnist",
        eval="mnist:test",
        options=QuantizeOptions(samples=50, eval_samples=200, bench=FAST),
    )
    assert [(t.setting, t.chosen) for t in report.trials] == [
        ("static QDQ U8S8 minmax per-tensor", False),
        ("static QDQ S8S8 minmax per-tensor", True),
    ]
    assert report.trials[0].speedup == pytest.approx(1 / 1.5) and report.trials[1].speedup == pytest.approx(1.25)
    assert "measured here static QDQ U8S8 minmax per-tensor was not faster than FP32, static QDQ S8S8" in report.choice
    assert ("activations", "s8") in report.settings


def test_dynamic_quantization_of_a_matmul_model(tmp_path: Path) -> None:
    src = models.save(models.wide_mlp(), tmp_path / "wide.onnx")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.standard_normal((64, 64)).astype(np.float32))
    report = quantize(
        src,
        tmp_path / "out",
        calib=tmp_path / "x.npy",
        options=QuantizeOptions(mode=Mode.DYNAMIC, bench=FAST),
    )
    ops = _ops(report.artifact)
    assert "DynamicQuantizeLinear" in ops and ops.count("MatMulInteger") == 2 and "MatMul" not in ops
    assert report.int8.layers is not None and report.int8.layers.int8_ops >= 2
    assert ("mode", "dynamic") in report.settings
    # no labels: judged by the output agreement with FP32 on the same samples
    error = report.int8.error
    assert error is not None and error.outputs[0].cosine > 0.999 and report.status == "verified"
    assert report.drop is None and "cosine similarity" in report.reason
    (warning,) = report.evaluation.warnings  # judged on calibration samples held out of calibration
    assert "held out of calibration" in warning


def test_per_channel_percentile_and_exclusions(tmp_path: Path) -> None:
    src = default_model_path()
    gemm = next(n.name for n in onnx.load(str(src)).graph.node if n.op_type == "Gemm")
    opts = QuantizeOptions(
        samples=64,
        eval_samples=1000,
        per_channel=True,
        method=CalibrationMethod.PERCENTILE,
        types=QuantTypes.U8S8,
        exclude=(gemm,),
        bench=FAST,
    )
    report = quantize(src, tmp_path, calib="mnist", eval="mnist:test", options=opts)
    assert ("per_channel", "True") in report.settings and ("calibration", "percentile") in report.settings
    layers = report.int8.layers
    assert layers is not None and any(f.startswith("Gemm:") for f in layers.float_layers)  # kept in float
    assert "QLinearConv" in dict(layers.op_counts) and report.drop is not None and report.drop <= MAX_MNIST_DROP
    with pytest.raises(InvalidInputError, match="neither a node name nor an op type"):
        quantize(src, tmp_path / "x", calib="mnist", options=dataclasses.replace(opts, exclude=("NoSuchOp",)))


def test_random_calibration_misses_the_drop_limit(tmp_path: Path) -> None:
    """Calibrating the MNIST model on noise loses ~30 points. Without recovery the report says so and require()
    raises exit 1. The recovery ladder keeps error-adding layers in float (never most of the compute layers: that
    is not INT8 any more), then tries dynamic quantization, which needs no calibrated ranges and is within the limit:
    integer kernels, every attempt in the report."""
    opts = QuantizeOptions(
        samples=50, eval_samples=2000, max_drop=1.0, types=QuantTypes.U8S8, bench=FAST, recover=False
    )
    tried = quantize(
        default_model_path(),
        tmp_path / "r",
        calib="random",
        eval="mnist:test",
        options=dataclasses.replace(opts, recover=True),
    )
    labels = [s.label for s in tried.recovery]
    assert labels[0] == "per-channel weight scales" and labels[-1].startswith("dynamic quantization")
    assert [s.status for s in tried.recovery[:-1]] == ["drop-exceeded"] * (len(labels) - 1)
    assert tried.status == "verified" and tried.drop is not None and tried.drop <= 1.0
    assert ("mode", "dynamic") in tried.settings and "ConvInteger" in _ops(tried.artifact)
    compute = {n.name for n in onnx.load(str(default_model_path())).graph.node if n.op_type in ("Conv", "Gemm")}
    assert all(len(compute & set(s.kept_float)) <= len(compute) / 2 for s in tried.recovery)
    report = quantize(default_model_path(), tmp_path, calib="random", eval="mnist:test", options=opts)
    assert report.status == "drop-exceeded" and not report and report.recovery == ()
    assert report.drop is not None and report.drop > 10
    assert report.calibration.synthetic and "random data" in report.calibration.warnings[0]
    with pytest.raises(AccuracyDropError, match=r"drop \d+\.\d\d points \(allowed 1\)") as exc:
        report.require()
    assert exc.value.exit_code == 1 and isinstance(exc.value, VerificationError)
    assert (tmp_path / "quantize.json").exists()  # the artifact and the report stay for inspection


def test_bad_combinations_are_one_clear_error(tmp_path: Path) -> None:
    src = default_model_path()
    with pytest.raises(InvalidInputError, match="--max-drop needs labelled evaluation data"):
        quantize(src, tmp_path, calib="mnist", options=QuantizeOptions(max_drop=1.0))
    with pytest.raises(InvalidInputError, match="dynamic quantization is not a mode of openvino"):
        quantize(src, tmp_path, runtime="openvino", calib="mnist", options=QuantizeOptions(mode=Mode.DYNAMIC))
    (tmp_path / "model.xml").write_text('<?xml version="1.0"?>\n<net name="x" version="11"></net>\n')
    with pytest.raises(InvalidInputError, match="onnxruntime quantization takes onnx models, this is openvino"):
        quantize(tmp_path / "model.xml", tmp_path / "o", calib="random")
    with pytest.raises(InvalidInputError, match="unknown runtime 'bogus'"):
        quantize(src, tmp_path, runtime="bogus", calib="mnist")
    with pytest.raises(InvalidInputError, match=r"INT8 for onnxruntime, openvino, litert, not tensorflow"):
        quantize(src, tmp_path, runtime="tf", calib="mnist")
    with pytest.raises(ModelLoadError, match="file not found"):
        quantize(tmp_path / "missing.onnx", tmp_path, calib="mnist")
    assert not list(tmp_path.glob("*.onnx"))  # nothing half-written
