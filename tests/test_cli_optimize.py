"""``modelport optimize``: output, exit codes and every error path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import models
from modelport.cli.main import main
from modelport.passes import OptimizeReport


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    return models.save(models.conv_bn(), tmp_path / "convbn.onnx")


def test_optimize_prints_passes_counts_and_verification(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "opt.onnx"
    rc = main(["optimize", str(model_path), "-o", str(out), "--batch", "2"])
    text = capsys.readouterr().out
    assert rc == 0 and out.exists()
    assert "fold-batchnorm" in text and "nodes: 3 → 2" in text
    assert "verification: pass" in text and "max abs error" in text and "atol_eff=" in text
    # the printed tolerance is the report's effective bound, verbatim (nothing eaten as markup)
    rc = main(["optimize", str(model_path), "-o", str(out), "--batch", "2", "--json"])
    report = OptimizeReport.from_json(capsys.readouterr().out)
    assert rc == 0 and report.verification is not None
    assert f"tolerance {report.verification.tolerance}" in text.replace("\n", " ")


def test_json_report(model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["optimize", str(model_path), "-o", str(tmp_path / "o.onnx"), "--batch", "1", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["nodes_before"] == 3 and data["nodes_after"] == 2
    tolerance = data["verification"]["tolerance"]
    assert (tolerance["rtol"], tolerance["atol"], tolerance["precision"]) == (1e-4, 1e-5, "fp32")
    rc = main(["optimize", str(model_path), "-o", str(tmp_path / "o.onnx"), "--batch", "1", "--json", "--atol", "1e-3"])
    tolerance = json.loads(capsys.readouterr().out)["verification"]["tolerance"]
    assert rc == 0 and (tolerance["rtol"], tolerance["atol"], tolerance["precision"]) == (1e-4, 1e-3, None)
    rc = main(["optimize", str(model_path), "-o", str(tmp_path / "o.onnx"), "--batch", "1", "--json", "--threads", "1"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["verification"]["runner"]["threads"] == 1


def test_passes_skip_and_no_verify(model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o.onnx"
    rc = main(["optimize", str(model_path), "-o", str(out), "--batch", "1", "--skip", "fold-batchnorm", "--no-verify"])
    text = capsys.readouterr().out
    assert rc == 0 and "nodes: 3 → 3" in text and "verification: skipped" in text
    rc = main(["optimize", str(model_path), "-o", str(out), "--batch", "1", "--passes", "fold-batchnorm,remove-unused"])
    assert rc == 0 and "nodes: 3 → 2" in capsys.readouterr().out


def test_input_shape_and_feeds(model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feeds = tmp_path / "f.npy"
    np.save(feeds, np.ones((3, 3, 8, 8), np.float32))
    rc = main(
        ["optimize", str(model_path), "-o", str(tmp_path / "o.onnx"), "--input-shape", "image:3,3,8,8",
         "--feeds", str(feeds)]
    )  # fmt: skip
    assert rc == 0 and "verification: pass" in capsys.readouterr().out


def test_list_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optimize", "--list-passes"]) == 0
    text = capsys.readouterr().out
    for name in ("fold-batchnorm", "eliminate-transposes", "fuse-hardswish", "opt-in"):
        assert name in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--passes", "fold-everything"], "unknown pass 'fold-everything' (valid passes: convert-opset"),
        (["--skip", "nope"], "unknown pass 'nope'"),
        (["--input-shape", "nope:1,3,8,8"], "unknown input(s) nope"),
        (["--input-shape", "image:1,3,8"], "has rank 3, the model's input has rank 4"),
        (["--input-shape", "image:1x3"], "has rank 2"),
        (["--opset", "99"], "cannot convert opset 17 → 99"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "o.onnx"
    rc = main(["optimize", str(model_path), "-o", str(out), *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("modelport: error: ") and message in err, err
    assert not out.exists()


def test_bad_model_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07 not a model")
    rc = main(["optimize", str(bad), "-o", str(tmp_path / "o.onnx")])
    assert rc == 2 and "modelport: error:" in capsys.readouterr().err
    rc = main(["optimize", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "o.onnx")])
    assert rc == 2 and not (tmp_path / "o.onnx").exists()


def test_missing_output_is_an_error(model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optimize", str(model_path)]) == 2
    assert "--output" in capsys.readouterr().err


def test_verification_mismatch_exits_1(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelport.errors import VerificationError
    from modelport.passes import api

    def failing(*args: object, **kwargs: object) -> object:
        raise VerificationError("optimized differs from original: output 'out' max abs error 0.5")

    monkeypatch.setattr(api, "verify_models", failing)
    out = tmp_path / "o.onnx"
    rc = main(["optimize", str(model_path), "-o", str(out), "--batch", "1"])
    assert rc == 1 and "max abs error" in capsys.readouterr().err and not out.exists()
