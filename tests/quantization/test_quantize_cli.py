"""``modelport quantize``: its table, JSON and exit codes, and one clear error line for each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import models
from modelport.assets import default_model_path
from modelport.cli.main import main

MODEL = str(default_model_path())
QUICK = ("--samples", "64", "--eval-samples", "1000", "--seconds", "0.05", "--types", "u8s8")


def run(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error(code: int, err: str, *fragments: str, exit_code: int = 2) -> None:
    assert code == exit_code, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("modelport: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def test_quantize_prints_the_side_by_side_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "quantize", MODEL, "--calib", "mnist", "--eval", "mnist:test", "-o", tmp_path, *QUICK)
    assert code == 0, err
    assert "onnxruntime: onnxruntime.quantization" in out and "U8S8 as asked (--types)" in out
    table = out[out.index("fp32 vs int8 on onnxruntime") :]
    for header in ("variant", "size KiB", "p50 ms", "speed-up", "top-1", "top-5", "agreement"):
        assert header in table
    assert "│ fp32" in table and "│ int8" in table
    assert "verified: INT8 top-1" in out and "points (allowed 1)" in out
    assert "compute layers left in float" in out
    assert (tmp_path / "mnist_convnet.int8.onnx").exists() and (tmp_path / "quantize.md").exists()


def test_quantize_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(
        capsys, "quantize", MODEL, "-r", "ov", "--calib", "mnist", "-o", tmp_path, "--json", *QUICK[:2], *QUICK[4:6]
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["runtime"] == "openvino" and report["status"] == "verified"
    assert [v["name"] for v in report["variants"]] == ["fp32", "int8"]
    (warning,) = report["evaluation"]["warnings"]  # no --eval: a fifth of the calibration samples judges the result
    assert "held out of calibration" in warning
    assert report["calibration"]["samples"] == 52 and report["evaluation"]["samples"] == 64  # 12 held out
    assert report["environment"]["cpu_flags"]  # the CPU flags are recorded with every report


def test_missed_drop_exits_1_with_the_measured_drop(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(
        capsys,
        "quantize",
        MODEL,
        "--calib",
        "random",
        "--eval",
        "mnist:test",
        "--max-drop",
        "1",
        "-o",
        tmp_path,
        *QUICK,
        "--no-recover",  # the recovery ladder gets MNIST back (dynamic INT8, test_quantize_ort): not this test
    )
    one_error(code, err, "drop", "points (allowed 1)", exit_code=1)
    assert "warning: calibrating on random data" in out and "drop-exceeded" in out


def test_more_samples_than_data_warns(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = tmp_path / "few.npy"
    np.save(data, np.random.default_rng(0).random((5, 8), dtype=np.float32))
    src = models.save(models.wide_mlp(inputs=8), tmp_path / "mlp.onnx")
    code, out, err = run(
        capsys, "quantize", src, "--calib", data, "-o", tmp_path / "q", "--samples", "300", "--seconds", "0.05"
    )
    assert code == 0, err
    assert "warning: calibration asked for 300 samples but feeds:few.npy holds only 5: using 5" in out


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--calib", "{empty}"), ("no images in the folder",)),
        (("--calib", "{nhwc}"), ("looks NHWC and the model takes NCHW",)),
        (("--calib", "{f64}"), ("holds float64, the model expects float32",)),
        (("--calib", "mnist", "--max-drop", "1"), ("--max-drop needs labelled evaluation data",)),
        (("--calib", "mnist", "--eval", "random"), ("random data cannot measure accuracy",)),
        (("--calib", "nowhere/at/all"), ("calibration source not found",)),
        (("--calib", "mnist", "--runtime", "bogus"), ("unknown runtime 'bogus'",)),
        (("--calib", "mnist", "--runtime", "tensorflow"), ("INT8 for onnxruntime, openvino, litert, not tensorflow",)),
        (
            ("--calib", "mnist", "--runtime", "openvino", "--mode", "dynamic"),
            ("dynamic quantization is not a mode of openvino", "--runtime onnxruntime"),
        ),
        (("--calib", "mnist", "--method", "median"), ("unknown CalibrationMethod 'median'",)),
        (("--calib", "mnist", "--types", "s4s4"), ("unknown QuantTypes 's4s4'",)),
        (("--calib", "mnist", "--samples", "0"), ("--samples must be ≥ 1",)),
        (("--calib", "mnist", "--image-size", "28"), ("--image-size takes H,W",)),
        (("--calib", "mnist", "--mean", "a,b"), ("--mean takes comma-separated numbers",)),
    ],
)
def test_bad_input_is_one_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...], fragments: tuple[str, ...]
) -> None:
    (tmp_path / "empty").mkdir()
    np.save(tmp_path / "nhwc.npy", np.zeros((4, 28, 28, 1), np.float32))
    np.save(tmp_path / "f64.npy", np.zeros((4, 1, 28, 28), np.float64))
    paths = {"empty": tmp_path / "empty", "nhwc": tmp_path / "nhwc.npy", "f64": tmp_path / "f64.npy"}
    filled = [a.format(**paths) for a in args]
    code, _, err = run(capsys, "quantize", MODEL, "-o", tmp_path / "out", *filled)
    one_error(code, err, *fragments)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_unsupported_runtime_model_combination(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    xml = tmp_path / "model.xml"
    xml.write_text('<?xml version="1.0"?>\n<net name="x" version="11"></net>\n')
    code, _, err = run(capsys, "quantize", xml, "--calib", "random", "-o", tmp_path / "o")
    one_error(code, err, "onnxruntime quantization takes onnx models, this is openvino")


def _dynamic_hw_convnet(path: Path) -> Path:
    """A conv net whose input is [N, 3, H, W] with every dim but the channels dynamic (a fully convolutional export)."""
    proto = models.build(
        """
        <ir_version: 8, opset_import: ["" : 17]>
        fcn (float[N, 3, H, W] x) => (float[N, 4, H, W] y) {
            c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
            y = Relu (c)
        }
        """,
        w=(4, 3, 3, 3),
        b=(4,),
    )
    return models.save(proto, path)


def test_a_dynamic_model_quantizes_with_no_flag(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Free H, W get the sizes verification uses (spatial: 64); the artifact keeps them dynamic."""
    fcn = _dynamic_hw_convnet(tmp_path / "fcn.onnx")
    common = ("--calib", "random", "--samples", "8", "--seconds", "0.05", "--types", "u8s8")
    code, out, err = run(capsys, "quantize", fcn, "-o", tmp_path / "a", *common, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["variants"][1]["error"]["outputs"][0]["shape"] == [8, 4, 64, 64]  # all 8 judge, 2 held out
    assert any("x [N, 3, H, W] → [3, 64, 64]" in w for w in report["calibration"]["warnings"])
    artifact = onnx.load(str(tmp_path / "a" / "fcn.int8.onnx"))
    dims = artifact.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["N", "", "H", "W"]  # still dynamic: any size runs
    session = ort.InferenceSession(str(tmp_path / "a" / "fcn.int8.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": np.zeros((2, 3, 10, 14), np.float32)})[0].shape == (2, 4, 10, 14)


def test_input_shape_sets_the_calibration_size(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    fcn = _dynamic_hw_convnet(tmp_path / "fcn.onnx")
    common = ("--calib", "random", "--samples", "16", "--seconds", "0.05", "--types", "u8s8")
    code, out, err = run(
        capsys, "quantize", fcn, "-o", tmp_path / "b", *common, "--input-shape", "x:1,3,12,20", "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["calibration"]["samples"] == 13  # 3 of the 16 are held out to judge the result
    error = report["variants"][1]["error"]
    assert error["outputs"][0]["shape"] == [16, 4, 12, 20]  # the given H, W; the batch is the data's
    assert error["tolerance"]["precision"] == "int8" and error["outputs"][0]["passed"]
    assert (tmp_path / "b" / "fcn.int8.onnx").exists()
    # the explicit element-wise bound replaces the int8 policy in the INT8-vs-FP32 comparison
    code, out, err = run(
        capsys,
        "quantize",
        fcn,
        "-o",
        tmp_path / "c",
        *common,
        "--input-shape",
        "x:1,3,12,20",
        "--atol",
        "1e-9",
        "--rtol",
        "0",
        "--json",
    )
    # INT8 is not within 1e-9 of FP32: the explicit bound is the whole test, so the run fails with exit code 1
    # (after the recovery ladder, which cannot reach 1e-9 either) and says by how much
    assert code == 1 and "beyond rtol=0, atol=1e-09" in err
    error = json.loads(out)["variants"][1]["error"]
    assert error["tolerance"]["atol"] == 1e-9 and error["tolerance"]["rtol"] == 0
    assert not error["outputs"][0]["passed"]
