"""port runs each target in its own process: an engine that crashes fails its target only, the report says how,
and the other targets are verified as usual."""

from __future__ import annotations

from pathlib import Path

import _isolate_targets as targets
import pytest

import models
from modelport.benchmark.timing import BenchConfig
from modelport.formats import Precision
from modelport.porting import PortOptions, pipeline, port


def test_a_crashing_target_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "build_target", targets.crash_on_openvino)  # runs in the child, by name
    src = models.save(models.mlp(), tmp_path / "mlp.onnx")
    options = PortOptions(
        targets=("onnxruntime", "openvino"),
        precisions=(Precision.FP32,),
        optimize=False,
        bench=BenchConfig(warmup=1, iterations=5),
        budget=0.0,
        timeout=120.0,
    )
    report = port(src, tmp_path / "out", options=options)
    ort, ov = report.targets
    assert (ort.label, ort.status) == ("onnxruntime/fp32", "verified") and ort.latency is not None
    assert (ov.label, ov.status) == ("openvino/fp32", "failed")
    assert "SIGSEGV" in ov.reason and "\n" not in ov.reason
    assert report.fastest == "onnxruntime/fp32" and not report
    assert "SIGSEGV" in (tmp_path / "out" / "report.md").read_text()
