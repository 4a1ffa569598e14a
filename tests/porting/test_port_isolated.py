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


# --- bad input: one clear line, nothing built ---------------------------------------------------------------------


def _port_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    from modelport.cli.main import main

    code = main(["port", *args, "--budget", "0", "--timeout", "0", "--seconds", "0.05"])
    return code, capsys.readouterr().err


def test_calibration_data_that_does_not_fit(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import numpy as np

    src = models.save(models.mlp(), tmp_path / "mlp.onnx")  # x [batch, 8]
    np.save(tmp_path / "calib.npy", np.zeros((16, 5), np.float32))
    out = tmp_path / "out"
    code, err = _port_cli(
        capsys, str(src), "--to", "ort", "--precision", "int8", "--calib", str(tmp_path / "calib.npy"), "-o", str(out)
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "calib.npy" in lines[0] and "Traceback" not in err, err
    assert not (out / "targets").exists()


def test_a_labelled_folder_with_one_class(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from modelport.assets import default_model_path

    folder = tmp_path / "eval" / "seven"
    folder.mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((28, 28), 40 * i, np.uint8))
    code, err = _port_cli(
        capsys,
        str(default_model_path()),
        "--to",
        "ort",
        "--precision",
        "fp32",
        "--eval",
        str(tmp_path / "eval"),
        "-o",
        str(tmp_path / "out"),
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "one class only (seven)" in lines[0], err
