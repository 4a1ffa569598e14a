"""``modelport example mnist``: the ConvNet → OpenVINO IR → INT8 flow prints one table and meets its goal."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport.cli.main import main
from modelport.quantization.example import MAX_DROP, ExampleReport


def test_example_mnist_prints_the_table_and_meets_the_goal(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = ["example", "mnist", "-o", str(tmp_path), "--runtimes", "openvino"]  # the others: test_quantize_*
    code = main([*args, "--samples", "100", "--seconds", "0.05", "--batch", "8"])
    out = capsys.readouterr().out
    assert code == 0, out
    for mode in ("openvino fp32", "openvino int8"):
        assert mode in out
    for col in ("top-1", "p50 ms", "size KiB", "speed-up"):
        assert col in out
    assert "goal (INT8 top-1 within 0.5 points of FP32 on every runtime): met" in out
    report = ExampleReport.from_json((tmp_path / "example.json").read_text())
    assert report.goals_met and report.max_drop == MAX_DROP and report.batch == 8
    int8 = [r for r in report.rows if r.precision == "int8"]
    assert len(int8) == 1 and all(r.drop is not None and r.drop <= MAX_DROP for r in int8)
    assert all(r.top1 is not None and r.top1 > 0.99 for r in report.rows)
    # OpenVINO quantized the IR that convert wrote, as the seed did
    assert (tmp_path / "openvino-ir" / "mnist_convnet.xml").exists()
    assert Path(next(r.artifact for r in int8 if r.runtime == "openvino")).suffix == ".xml"
    assert (tmp_path / "openvino" / "quantize.md").exists()


def test_example_reports_a_failed_runtime(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["example", "mnist", "-o", str(tmp_path), "--runtimes", "bogus"])
    out = capsys.readouterr().out
    assert code == 1
    assert "failed: bogus: unknown runtime 'bogus'" in out and "NOT met" in out


def test_unknown_example(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["example", "cifar", "-o", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "modelport: error: unknown example 'cifar' (examples: mnist)" in err
