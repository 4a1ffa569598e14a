"""``modelport rewrite``: the table, the op check, the verification line, --list, and each bad-input path (exit 2,
one line, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import models
from detectors import nms_model
from modelport.cli.main import main

ABS_ERF = """
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 16] x) => (float[N, 16] y) {
        a = Abs(x)
        y = Erf(a)
    }
"""


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return models.save(models.parse(ABS_ERF), tmp_path / "m.onnx")


def test_rewrite_target_prints_rules_check_and_verification(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.onnx"
    rc = main(["rewrite", str(source), "--target", "myriad", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and out.is_file()
    assert "abs-to-sqrt-square" in text and "Abs 1 → 0" in text
    assert "ops myriad cannot run: before Abs×1; after none" in text
    assert "verification: pass" in text and "tolerance fp32" in text
    assert f"wrote {out}" in text


def test_check_without_output_writes_nothing(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["rewrite", str(source), "--target", "tflite", "--check"])
    text = capsys.readouterr().out
    assert rc == 0 and "ops tflite cannot run: before Erf×1; after none" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_json_report(source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.onnx"
    assert main(["rewrite", str(source), "--rules", "abs-to-sqrt-square,erf-decompose", "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["matches"]) for r in report["rules"]] == [("abs-to-sqrt-square", 1), ("erf-decompose", 1)]
    assert report["outputs"] == [str(out)] and report["verification"]["outputs"][0]["passed"]


def test_split_nms_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = nms_model(tmp_path / "nms.onnx", guarded=True)
    out = tmp_path / "det.onnx"
    assert main(["rewrite", str(source), "--target", "tensorrt", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "NonMaxSuppression 1 → 0" in text and "after none" in text
    assert (tmp_path / "det.tail.onnx").is_file() and (tmp_path / "det.nms.json").is_file()


def test_list_shows_rules_and_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rewrite", "--list"]) == 0
    text = capsys.readouterr().out
    for name in ("abs-to-sqrt-square", "erf-decompose", "split-nms", "edgetpu", "myriad", "openvino-cpu"):
        assert name in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rules", "nope", "-o", "OUT"], "unknown rule 'nope'"),
        (["--target", "coral", "-o", "OUT"], "unknown target 'coral'"),
        (["-o", "OUT"], "rewrite needs --rules or --target"),
        (["--rules", "abs-to-sqrt-square"], "needs --output/-o OUT"),
        (["--rules", "abs-to-sqrt-square", "--check"], "--check needs --target"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out.onnx"
    rc = main(["rewrite", str(source), *[str(out) if a == "OUT" else a for a in args]])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not out.exists()


def test_missing_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["rewrite", str(tmp_path / "none.onnx"), "--target", "tflite", "-o", str(tmp_path / "o.onnx")])
    err = capsys.readouterr().err
    assert rc != 0 and "none.onnx" in err and "Traceback" not in err
