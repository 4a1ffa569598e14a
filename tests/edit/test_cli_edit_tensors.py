"""``modelport edit rename | set-batch | set-input-shape | set-opset | shrink-constants | ir-rename | ir-set-shape``:
output, JSON, and every bad input (one error line, exit code, nothing written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import openvino as ov
import pytest

import models
from modelport.cli.main import main


@pytest.fixture
def mlp(tmp_path: Path) -> Path:
    return models.save(models.mlp(), tmp_path / "mlp.onnx")


def _edit(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["edit", *args])
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def test_rename_prints_changes_nodes_and_verification(
    mlp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.onnx"
    rc, text = _edit(["rename", str(mlp), "-o", str(out), "--map", "x=image", "--replace", "w:weight"], capsys)
    assert rc == 0, text
    assert "renamed 3 tensors: x → image, w1 → weight1, w2 → weight2" in text and "nodes: 4 → 4" in text
    assert "verification: pass — worst max abs error 0" in text and "tolerance fp32: rtol=0.0001" in text
    assert [i.name for i in onnx.load(str(out)).graph.input] == ["image"]
    rc, text = _edit(["rename", str(mlp), "-o", str(out), "--map", "x=image", "--json", "--atol", "1e-3"], capsys)
    data = json.loads(text)
    assert rc == 0 and data["edit"] == "rename" and data["inputs"] == ["image"] and data["output"] == str(out)
    assert data["verification"]["tolerance"]["atol"] == 1e-3


def test_shape_opset_and_constant_edits(mlp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, text = _edit(["set-batch", str(mlp), "--batch", "4", "-o", str(tmp_path / "b.onnx")], capsys)
    assert rc == 0 and "input x: [batch, 8] → [4, 8]" in text and "output y: [4, 4]" in text
    assert "verification: pass" in text
    rc, text = _edit(["set-input-shape", str(mlp), "-o", str(tmp_path / "s.onnx"), "--input-shape", "x:2,8"], capsys)
    assert rc == 0 and "input x: [batch, 8] → [2, 8]" in text
    rc, text = _edit(["set-opset", str(mlp), "--opset", "18", "-o", str(tmp_path / "o.onnx"), "--no-verify"], capsys)
    assert rc == 0 and "opset 17 → 18" in text and "verification: skipped (--no-verify)" in text
    assert onnx.load(str(tmp_path / "o.onnx")).opset_import[0].version == 18
    big = tmp_path / "c.onnx"
    rc, text = _edit(["shrink-constants", str(mlp), "-o", str(big), "--external-threshold", "256"], capsys)
    assert rc == 0 and "initializers: 3 → 3 (0 merged)" in text and "verification: pass" in text
    assert (tmp_path / "c.onnx.data").stat().st_size == 512 + 256  # w1 (8×16) and w2 (16×4) floats; b1 inline
    feeds = models.feeds_for(models.mlp())
    np.testing.assert_array_equal(
        models.ort_outputs(models.mlp(), feeds)[0], models.ort_outputs(onnx.load(str(big)), feeds)[0]
    )


def test_ir_edits(mlp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    xml = tmp_path / "m.xml"
    ov.save_model(ov.convert_model(str(mlp)), str(xml), compress_to_fp16=False)
    rc, text = _edit(["ir-rename", str(xml), "-o", str(tmp_path / "r.xml"), "--map", "y=logits"], capsys)
    assert rc == 0 and "output y → logits" in text and "verification: pass — worst max abs error 0" in text
    assert (tmp_path / "r.bin").exists()
    out = tmp_path / "s.xml"
    rc, text = _edit(["ir-set-shape", str(xml), "-o", str(out), "--input-shape", "x:2,8", "--json"], capsys)
    data = json.loads(text)
    assert rc == 0 and data["changes"][0] == "input x: [?,8] → [2,8]" and data["verification"] is not None
    rc, text = _edit(["ir-set-shape", str(out), "-o", str(tmp_path / "t.xml"), "--input-shape", "x:5,8"], capsys)
    assert rc == 0 and "verification: not possible (see above)" in text and "not verified" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rename", "{m}", "--map", "nope=a"], "no tensor named 'nope'"),
        (["rename", "{m}", "--map", "x=h"], "the same name 'h'"),
        (["rename", "{m}", "--map", "x="], "the new name for 'x' is empty"),
        (["rename", "{m}", "--map", "x"], "--map takes OLD=NEW"),
        (["rename", "{m}", "--replace", "zzz:a"], "matches no tensor name"),
        (["rename", "{m}"], "nothing to rename"),
        (["set-batch", "{m}", "--batch", "0"], "must be positive"),
        (["set-input-shape", "{m}", "--input-shape", "nope:1,8"], "unknown input"),
        (["set-input-shape", "{m}", "--input-shape", "x:1,8,1"], "rank 3"),
        (["set-input-shape", "{m}", "--input-shape", "x:1,9"], "fixes it to 8"),
        (["set-input-shape", "{m}"], "no input shape given"),
        (["set-opset", "{m}", "--opset", "99"], "opset 99 does not exist"),
        (["set-opset", "{m}", "--opset", "12"], "cannot convert opset 17 → 12: op"),
        (["shrink-constants", "{m}", "--external-threshold", "-5"], "threshold must be ≥ 0"),
        (["ir-rename", "{m}", "--map", "x=a"], "not an OpenVINO IR"),
        (["ir-set-shape", "{m}", "--input-shape", "x:1,8"], "not an OpenVINO IR"),
        (["ir-rename", "{xml}", "--map", "nope=a"], "no input or output named 'nope'"),
        (["ir-rename", "{xml}", "--map", "x=y"], "collides"),
        (["ir-set-shape", "{xml}", "--input-shape", "nope:1,8"], "no input named 'nope'"),
        (["ir-set-shape", "{xml}", "--input-shape", "x:1,9"], "cannot reshape the IR"),
    ],
)
def test_bad_input_is_one_error_and_writes_nothing(
    args: list[str], message: str, mlp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xml = tmp_path / "m.xml"
    if "{xml}" in args:
        ov.save_model(ov.convert_model(str(mlp)), str(xml), compress_to_fp16=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / ("out.xml" if args[0].startswith("ir-") else "out.onnx")
    argv = [a.format(m=mlp, xml=xml) for a in args] + ["-o", str(out)]
    rc, text = _edit(argv, capsys)
    assert rc == 2, text
    assert text.startswith("modelport: error:") and message in text and "Traceback" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_output_onto_the_input_is_refused(mlp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = mlp.read_bytes()
    rc, text = _edit(["set-batch", str(mlp), "--batch", "2", "-o", str(mlp)], capsys)
    assert rc == 2 and "refusing to overwrite" in text and mlp.read_bytes() == before


@pytest.mark.parametrize(
    ("verb", "extra"),
    [
        ("rename", ["--map", "x=inp"]),
        ("set-batch", ["--batch", "2"]),
        ("set-input-shape", ["--input-shape", "x:2,8"]),
        ("set-opset", ["--opset", "17"]),
        ("shrink-constants", []),
        ("merge", []),
        ("extract", ["--inputs", "x", "--outputs", "y"]),
        ("add-outputs", ["r"]),
        ("remove-outputs", ["y"]),
    ],
)
def test_output_onto_the_input_is_refused_before_the_edit_runs(
    mlp: Path, verb: str, extra: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import modelport.edit

    def must_not_run(*_args: object, **_kwargs: object) -> None:
        raise AssertionError(f"{verb} ran before the output was checked")

    monkeypatch.setattr(modelport.edit, verb.replace("-", "_"), must_not_run)
    models = [str(mlp), str(mlp)] if verb == "merge" else [str(mlp)]
    rc, text = _edit([verb, *models, *extra, "-o", str(mlp)], capsys)
    assert rc == 2 and "refusing to overwrite" in text, text


def test_set_batch_on_a_fixed_batch_names_the_dim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixed = models.save(models.fixed_batch_mlp(2), tmp_path / "fixed.onnx")
    rc, text = _edit(["set-batch", str(fixed), "--batch", "3", "-o", str(tmp_path / "out.onnx")], capsys)
    assert rc == 2 and "input 'x' has a fixed leading dim 2; --batch 3 cannot change it" in text
    assert not (tmp_path / "out.onnx").exists()


def test_every_edit_takes_the_check_flags(mlp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--feeds, --threads and --batch build the same CheckOptions on the tensor edits as on the graph edits."""
    feeds = tmp_path / "x.npz"
    np.savez(feeds, x=np.ones((5, 8), np.float32))
    for args in (
        ["rename", str(mlp), "--map", "x=image", "--feeds", str(feeds)],
        ["set-batch", str(mlp), "--batch", "5", "--feeds", str(feeds)],
        ["set-opset", str(mlp), "--opset", "18", "--feeds", str(feeds)],
        ["shrink-constants", str(mlp), "--batch", "5"],
    ):
        rc, text = _edit([*args, "-o", str(tmp_path / "o.onnx"), "--threads", "1", "--json"], capsys)
        assert rc == 0, text
        assert json.loads(text)["verification"]["outputs"][0]["shape"] == [5, 4], args
    rc, text = _edit(
        ["set-batch", str(mlp), "--batch", "2", "--feeds", str(feeds), "-o", str(tmp_path / "b.onnx")], capsys
    )
    assert rc == 2 and "the model expects [2, 8]" in text and not (tmp_path / "b.onnx").exists()
