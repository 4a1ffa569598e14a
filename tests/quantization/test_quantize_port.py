"""``port --precision …,int8``: INT8 targets built by quantize, judged by accuracy, flagged and never chosen as the
fastest when slower than their FP32 sibling."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from modelport.benchmark.timing import BenchConfig, LatencyStats
from modelport.cli.main import main
from modelport.formats import Precision
from modelport.porting.int8 import FLAG, flag_slower_int8, slower_than_fp32
from modelport.porting.pipeline import PortOptions, PortReport, TargetResult, _fastest, port
from modelport.verify.compare import Tolerance

FAST = BenchConfig(warmup=1, iterations=5)


def _target(runtime: str, precision: Precision, p50: float, *flags: str) -> TargetResult:
    stats = LatencyStats(5, p50, 0.0, p50, p50, p50, p50, p50)
    return TargetResult(runtime, precision, "verified", latency=stats, flags=flags)


def test_int8_slower_than_its_fp32_sibling_is_flagged_and_never_chosen() -> None:
    targets = [
        _target("onnxruntime", Precision.FP32, 1.0),
        _target("onnxruntime", Precision.INT8, 0.5),  # fastest: chosen
        _target("openvino", Precision.FP32, 2.0),
        _target("openvino", Precision.INT8, 2.2),  # slower than openvino/fp32
    ]
    assert [slower_than_fp32(t, targets) for t in targets] == [False, False, False, True]
    flagged = flag_slower_int8(targets)
    assert flagged[3].flags == (FLAG,) and flagged[3].reason.startswith(
        "flagged: INT8 not faster than openvino/fp32 (p50 2.200 ms vs 2.000 ms), never chosen"
    )
    assert flagged[:3] == targets[:3]
    assert _fastest(flagged) == "onnxruntime/int8"
    # quantize itself measured it as not faster: flagged even though port's own timing was lower, never chosen
    measured = [*targets[:1], _target("onnxruntime", Precision.INT8, 0.5, FLAG)]
    assert _fastest(flag_slower_int8(measured)) == "onnxruntime/fp32"


@pytest.fixture(scope="module")
def ported(tmp_path_factory: pytest.TempPathFactory) -> tuple[PortReport, Path]:
    out = tmp_path_factory.mktemp("port-int8")
    opts = PortOptions(
        targets=("onnxruntime",),
        precisions=(Precision.FP32, Precision.FP16, Precision.INT8),
        bench=FAST,
        eval_limit=2000,
        budget=0.0,  # the engine-settings search is tested on its own (tests/porting)
    )
    return port(None, out, options=opts), out


def test_port_adds_a_verified_int8_target(ported: tuple[PortReport, Path]) -> None:
    report, out = ported
    assert [(t.label, t.status) for t in report.targets] == [
        ("onnxruntime/fp32", "verified"),
        ("onnxruntime/fp16", "verified"),
        ("onnxruntime/int8", "verified"),
    ]
    int8 = report.targets[2]
    assert report.source_accuracy is not None and int8.accuracy is not None
    assert int8.accuracy.samples == 2000
    assert abs(report.source_accuracy.top1 - int8.accuracy.top1) * 100 <= 0.5
    assert "points (allowed 1)" in int8.details and "points" not in int8.reason  # quantize's verdict: details
    assert int8.artifact == str(out / "targets" / "onnxruntime-int8" / "model.int8.onnx")
    assert (out / "targets" / "onnxruntime-int8" / "quantize.json").exists()
    assert int8.size_bytes < 0.4 * report.targets[0].size_bytes
    assert int8.runner is not None and int8.runner.executed_precision == "int8"
    # the element-wise comparison with the source is recorded with the int8 tolerance, as for every target
    assert int8.verification is not None and int8.verification.tolerance == Tolerance.for_precision("int8")
    assert int8.latency is not None and int8.latency.n == FAST.iterations
    if report.fastest == "onnxruntime/int8":
        assert FLAG not in int8.flags
    assert PortReport.from_json((out / "report.json").read_text()) == report


def test_port_cli_accepts_int8(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(
        [
            "port",
            "--to",
            "openvino",
            "--precision",
            "fp32,int8",
            "--eval-limit",
            "500",
            "--seconds",
            "0.05",
            "--budget",
            "0",
            "-o",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "openvino/int8" in out and "int8+fp32" in out
    target = next(
        t for t in PortReport.from_json((tmp_path / "report.json").read_text()).targets if t.precision.value == "int8"
    )
    assert target.status == "verified" and dataclasses.asdict(target)["flags"] in ((), (FLAG,))
