"""ONNX → fp16 ONNX: a valid model converts; a converter output that is not valid ONNX is one ConversionError."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import models
from modelport.conversion import onnx_precision
from modelport.conversion.base import ConvertOptions
from modelport.errors import ConversionError
from modelport.formats import Precision


def test_fp16_conversion_writes_fp16_weights(tmp_path: Path) -> None:
    src = models.save(models.conv_bn(), tmp_path / "m.onnx")
    report = onnx_precision.onnx_to_precision(src, tmp_path, ConvertOptions(precision=Precision.FP16, name="half"))
    out = onnx.load(str(tmp_path / "half.onnx"))
    kinds = {init.data_type for init in out.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in kinds and report.precision is Precision.FP16
    assert out.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # io kept float32


def test_an_invalid_converter_output_is_one_conversion_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Like the SSDLite detector's Loop: the converter's output reads a tensor nothing defines before it."""
    src = models.save(models.conv_bn(), tmp_path / "m.onnx")
    broken = onnx.load(str(src))
    broken.graph.node.insert(0, onnx.helper.make_node("Relu", ["later"], ["early"]))
    broken.graph.node.append(onnx.helper.make_node("Identity", [broken.graph.output[0].name], ["later"]))
    import onnxruntime.transformers.float16 as f16

    monkeypatch.setattr(f16, "convert_float_to_float16", lambda proto, **_: broken)
    monkeypatch.setattr(onnx_precision, "_toposort", lambda proto: proto)
    with pytest.raises(ConversionError, match="not valid ONNX") as info:
        onnx_precision.onnx_to_precision(src, tmp_path, ConvertOptions(precision=Precision.FP16))
    assert "keep this model at fp32" in str(info.value)
    assert not list(tmp_path.glob("*.fp16*")) and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
