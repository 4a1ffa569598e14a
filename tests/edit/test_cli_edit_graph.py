"""``modelport edit merge | extract | add-outputs | remove-outputs`` through ``main``: output, files, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import models
from modelport.cli.main import main
from modelport.edit.base import EditReport


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    relu = models.parse("""
        <ir_version: 8, opset_import: ["" : 13]>
        a (float[N,4] x) => (float[N,4] y) { y = Relu(x) }
    """)
    neg = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        b (float[N,4] x) => (float[N,4] y) { y = Neg(x) }
    """)
    layer_norm = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        ln (float[N,4] x, float[4] s, float[4] b) => (float[N,4] y) { y = LayerNormalization(x, s, b) }
    """)
    return {
        "a": models.save(relu, tmp_path / "a.onnx"),
        "b": models.save(neg, tmp_path / "b.onnx"),
        "ln": models.save(layer_norm, tmp_path / "ln.onnx"),
        "mlp": models.save(models.mlp(), tmp_path / "mlp.onnx"),
    }


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("modelport: error: "), lines
    return lines[0]


def test_merge_chain_prints_changes_counts_io_and_verification(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.onnx"
    rc = main(["edit", "merge", str(files["a"]), str(files["b"]), "--connect", "0.y:1.x", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and out.exists()
    assert "merge: a.onnx + b.onnx → " in text and "connected 0.y → 1.x" in text
    assert "converted model 0 (a.onnx) from opset 13 to 17" in text
    assert "nodes: 2 → 2" in text and "inputs: x\n" in text and "outputs: m1/y" in text
    assert "verification: pass — worst max abs error 0 (output 'm1/y'), tolerance fp32" in text
    merged = onnx.load(str(out))
    assert [n.op_type for n in merged.graph.node] == ["Relu", "Neg"]


def test_merge_parallel_json_and_prefixes(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p.onnx"
    argv = ["edit", "merge", str(files["a"]), str(files["b"]), str(files["a"]), "--parallel", "-o", str(out)]
    rc = main(
        [*argv, "--prefix", "r/", "--prefix", "n/", "--prefix", "r2/", "--json", "--atol", "1e-3", "--threads", "1"]
    )
    report = EditReport.from_json(capsys.readouterr().out)
    assert rc == 0 and report.output == str(out)
    assert report.inputs == ("x",) and report.outputs == ("r/y", "n/y", "r2/y")
    assert report.verification is not None and report.verification.tolerance.atol == 1e-3
    assert json.loads(report.to_json())["edit"] == "merge"


def test_merge_errors_write_nothing(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bad.onnx"
    rc = main(["edit", "merge", str(files["a"]), str(files["b"]), "--connect", "0.nope:1.x", "-o", str(out)])
    line = error_line(capsys)
    assert rc == 2 and "no output of any model" in line and "model 0 (a.onnx) outputs: y" in line
    rc = main(["edit", "merge", str(files["a"]), str(files["ln"]), "--connect", "y:x", "--opset", "13", "-o", str(out)])
    line = error_line(capsys)
    assert rc == 2 and "cannot align model 1 (ln.onnx) from opset 17 to 13" in line and "LayerNormalization" in line
    rc = main(["edit", "merge", str(files["a"]), "--parallel", "-o", str(out)])
    assert rc == 2 and "two or more models" in error_line(capsys)
    assert not out.exists()


def test_extract(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "e.onnx"
    rc = main(["edit", "extract", str(files["mlp"]), "--inputs", "hb", "--outputs", "y", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "nodes: 4 → 2" in text and "inputs: hb" in text and "verification: pass" in text
    assert [i.name for i in onnx.load(str(out)).graph.input] == ["hb"]
    rc = main(["edit", "extract", str(files["mlp"]), "--inputs", "r", "--outputs", "hb", "-o", str(out)])
    assert rc == 2 and "'hb' needs graph input 'x'" in error_line(capsys)


def test_add_and_remove_outputs(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    added, removed = tmp_path / "add.onnx", tmp_path / "rm.onnx"
    rc = main(["edit", "add-outputs", str(files["mlp"]), "r,h", "-o", str(added), "--no-verify"])
    text = capsys.readouterr().out
    assert rc == 0 and "added output r" in text and "outputs: y, r, h" in text and "verification: skipped" in text
    rc = main(["edit", "remove-outputs", str(added), "y", "-o", str(removed), "--seed", "3"])
    text = capsys.readouterr().out
    assert rc == 0 and "outputs: r, h" in text and "nodes: 4 → 3" in text and "verification: pass" in text
    rc = main(["edit", "remove-outputs", str(added), "y", "r", "h", "-o", str(tmp_path / "none.onnx")])
    assert rc == 2 and "removing every output" in error_line(capsys)
    rc = main(["edit", "add-outputs", str(files["mlp"]), "r", "-o", str(files["mlp"])])
    assert rc == 2 and "refusing to overwrite an input model" in error_line(capsys)


def test_feeds_file(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feeds = tmp_path / "f.npy"
    np.save(feeds, np.full((2, 8), -1.0, np.float32))
    out = tmp_path / "e.onnx"
    rc = main(["edit", "add-outputs", str(files["mlp"]), "r", "-o", str(out), "--feeds", str(feeds), "--json"])
    report = EditReport.from_json(capsys.readouterr().out)
    assert rc == 0 and report.verification is not None and report.verification.passed
    np.save(feeds, np.zeros((2, 3), np.float32))
    rc = main(["edit", "add-outputs", str(files["mlp"]), "r", "-o", str(tmp_path / "f.onnx"), "--feeds", str(feeds)])
    assert rc == 2 and "feed for 'x' has shape [2, 3]" in error_line(capsys)
