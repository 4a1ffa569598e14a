"""ONNX → TFLite through onnx2tf: offline, input untouched, dims fixed, NHWC/NCHW layouts, fp16, names, and errors
that name the ONNX op and node (an op onnx2tf lacks, an op it fails on)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest

import models
from modelport.backends import open_runner
from modelport.conversion import ChainOptions, ConvertOptions, convert
from modelport.conversion.onnx_tflite import tflite_from_onnx
from modelport.errors import ConversionError
from modelport.formats import Precision

pytestmark = pytest.mark.slow  # each onnx2tf run starts TensorFlow in a child process (~8 s)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_offline_nhwc_fp32(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "src").mkdir()
    src = models.save(models.conv_bn(), tmp_path / "src" / "convbn.onnx")
    before = _sha(src)
    # batch 1 and 3 channels: the case where onnx2tf fetches a calibration sample from GitHub. Any request
    # would go to a closed local port and fail, so success shows nothing was downloaded.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    options = ChainOptions(ConvertOptions(input_shapes=(("image", (1, 3, 8, 8)),)))
    report = convert(src, "tflite", tmp_path / "out", options=options)
    assert _sha(src) == before and sorted(p.name for p in src.parent.iterdir()) == ["convbn.onnx"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["convbn.tflite"]
    assert report.engine.startswith("onnx2tf 1.28")
    assert "fixed input shapes {'image': (1, 3, 8, 8)}" in report.notes
    v = report.verification
    assert v is not None and v.passed and v.max_abs < 1e-4 and v.candidate.endswith("@litert/fp32")
    with open_runner("litert", report.artifact) as lite:
        (spec,) = lite.input_specs
        assert spec.name == "image" and spec.shape == (1, 8, 8, 3)  # NHWC, batch fixed in onnx2tf's copy
        assert lite.output_names == ["out"]  # ONNX output name restored
        x = np.random.default_rng(5).standard_normal((1, 3, 8, 8)).astype(np.float32)
        got = lite.infer({"image": x.transpose(0, 2, 3, 1)})["out"]
    with open_runner("onnxruntime", src) as ref:
        want = ref.infer({"image": x})["out"]
    np.testing.assert_allclose(got.transpose(0, 3, 1, 2), want, rtol=1e-4, atol=1e-5)  # NHWC output


def test_fp16_keeps_nchw(tmp_path: Path) -> None:
    src = models.save(models.conv_bn(), tmp_path / "convbn.onnx")
    artifact = ConvertOptions(
        precision=Precision.FP16, input_shapes=(("image", (2, 3, 8, 8)),), inputs_as_nchw=("image",)
    )
    report = convert(src, "tflite", tmp_path / "out", options=ChainOptions(artifact))
    assert report.precision is Precision.FP16 and "inputs kept NCHW: image" in report.notes
    v = report.verification
    assert v is not None and v.passed and v.tolerance.rtol == 1e-2  # fp16 weights: the fp16 tolerance
    with open_runner("litert", report.artifact) as lite:
        assert lite.input_specs[0].shape is not None and lite.input_specs[0].shape[1:] == (3, 8, 8)
        assert lite.info().executed_precision == "fp16-weights+fp32"


def test_unsupported_op_names_op_and_node(tmp_path: Path) -> None:
    proto = models.mlp()
    proto.graph.node[2].op_type = "FancyActivation"
    proto.graph.node[2].domain = "com.example"
    proto.opset_import.append(onnx.helper.make_opsetid("com.example", 1))
    proto.graph.node[2].name = "act0"
    src = tmp_path / "custom.onnx"
    src.write_bytes(proto.SerializeToString())
    out = tmp_path / "out.tflite"
    with pytest.raises(ConversionError, match="onnx2tf") as info:
        tflite_from_onnx(src, out)
    text = str(info.value)
    assert "cannot convert op FancyActivation (node act0)" in text and "\n" not in text
    assert not out.exists()


def test_failing_op_is_named_from_the_log(tmp_path: Path) -> None:
    """onnx2tf's log names the failing node; the error adds its op type from the ONNX graph."""
    proto = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1,8] x) => (float[1,3] y) {
            y = Reshape(x, s)
        }
    """)
    proto.graph.initializer.append(onnx.numpy_helper.from_array(np.array([1, 3], np.int64), "s"))
    proto.graph.node[0].name = "bad_reshape"  # 8 elements cannot become [1, 3]
    src = models.save(proto, tmp_path / "bad.onnx")
    with pytest.raises(ConversionError) as info:
        tflite_from_onnx(src, tmp_path / "bad.tflite")
    assert info.value.message.startswith("onnx2tf cannot convert op Reshape (node bad_reshape): ")
    assert info.value.hint is not None and "--input-shape" in info.value.hint


def test_free_dims_get_documented_sizes_and_the_static_artifact_says_so(tmp_path: Path) -> None:
    """onnx2tf needs fixed dims: with no --input-shape the chain fixes the free ones to the verification sizes
    (``inputs.FREE_DIM_SIZES``) and says so; an OpenVINO artifact of the same model stays dynamic."""
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
    src = models.save(proto, tmp_path / "fcn.onnx")
    tfl = convert(src, "tflite", tmp_path / "t")
    assert any(n.startswith("static artifact: the converter fixed the dims") for n in tfl.notes), tfl.notes
    assert tfl.verification is not None and tfl.verification.passed
    with open_runner("litert", tfl.artifact) as runner:
        assert runner.input_specs[0].shape == (1, 64, 64, 3)  # NHWC: batch 1, 64 × 64 (FREE_DIM_SIZES)
    ov = convert(src, "openvino", tmp_path / "o")
    assert any(n.startswith("dynamic artifact: also verified at x[2, 3, 96, 96]") for n in ov.notes), ov.notes
