"""``edit.openvino_ir``: ir-rename and ir-set-shape on an IR made in the test, verified in OpenVINO; every refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import pytest

import models
from modelport.edit import ir_rename, ir_set_shape
from modelport.errors import InvalidInputError, ModelLoadError


def _ir(tmp_path: Path, name: str = "m", batch: int | str = "batch") -> Path:
    onnx_path = models.save(models.mlp(batch), tmp_path / f"{name}.onnx")
    xml = tmp_path / f"{name}.xml"
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    return xml


def _run(xml: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    result = compiled(feeds)
    return {next(iter(port.get_names())): np.asarray(value) for port, value in result.items()}


def test_ir_rename_renames_ports_and_keeps_outputs(tmp_path: Path) -> None:
    xml = _ir(tmp_path)
    result = ir_rename(xml, {"x": "image", "y": "logits"})
    assert result.report.changes == ("input x → image", "output y → logits")
    assert (result.report.inputs, result.report.outputs) == (("image",), ("logits",))
    assert result.report.ops_before == result.report.ops_after and result.report.nodes_before > 0
    v = result.report.verification
    assert v is not None and v.passed and v.max_abs == 0.0 and v.names == ("logits",)
    report = result.write(tmp_path / "out.xml")
    assert report.output == str(tmp_path / "out.xml") and (tmp_path / "out.bin").exists()
    x = np.random.default_rng(0).random((3, 8), dtype=np.float32)
    want, got = _run(xml, {"x": x}), _run(tmp_path / "out.xml", {"image": x})
    assert list(got) == ["logits"]
    np.testing.assert_array_equal(want["y"], got["logits"])
    assert [p.get_names() for p in ov.Core().read_model(str(xml)).inputs] == [{"x"}]  # the source is untouched


def test_ir_set_shape_fixes_a_dynamic_dim_and_verifies(tmp_path: Path) -> None:
    xml = _ir(tmp_path)
    result = ir_set_shape(xml, {"x": (3, 8)})
    assert result.report.changes == ("input x: [?,8] → [3,8]", "output y: [3,4]")
    assert result.report.verification is not None and result.report.verification.max_abs == 0.0
    result.write(tmp_path / "fixed.xml")
    model = ov.Core().read_model(str(tmp_path / "fixed.xml"))
    assert model.inputs[0].get_partial_shape() == ov.PartialShape([3, 8])
    # the fixed IR is static: reshaping it again cannot be checked against it, and the report says so
    again = ir_set_shape(tmp_path / "fixed.xml", {"x": (5, 8)})
    assert again.report.verification is None
    assert again.report.changes[-1].startswith("not verified: the original IR fixes x [3,8]")


def test_ir_refusals(tmp_path: Path) -> None:
    xml = _ir(tmp_path)
    cases = [
        (lambda: ir_rename(xml, {"nope": "a"}), InvalidInputError, "no input or output named 'nope'"),
        (lambda: ir_rename(xml, {"x": "y"}), InvalidInputError, "collides with another input/output"),
        (lambda: ir_rename(xml, {"x": ""}), InvalidInputError, "new name for 'x' is empty"),
        (lambda: ir_rename(xml, {}), InvalidInputError, "nothing to rename"),
        (lambda: ir_set_shape(xml, {"nope": (1, 8)}), InvalidInputError, "no input named 'nope'"),
        (lambda: ir_set_shape(xml, {"x": (2, 9)}), InvalidInputError, "cannot reshape the IR to x\\[2,9\\].*MatMul"),
        (lambda: ir_set_shape(xml, {"x": (0, 8)}), InvalidInputError, "not positive"),
        (lambda: ir_set_shape(xml.with_suffix(".onnx"), {"x": (1, 8)}), InvalidInputError, "not an OpenVINO IR"),
        (lambda: ir_rename(tmp_path / "missing.xml", {"x": "a"}), ModelLoadError, "file not found"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    with pytest.raises(InvalidInputError, match="refusing to overwrite"):
        ir_rename(xml, {"x": "a"}).write(xml)
    with pytest.raises(InvalidInputError, match=r"written as NAME\.xml"):
        ir_rename(xml, {"x": "a"}).write(tmp_path / "out.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.onnx", "m.xml"]
