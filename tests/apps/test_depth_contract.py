"""The depth app's pure parts: I/O contract detection, packing, disparity rescaling, metrics, ground truth files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelport.apps.depth import DepthOptions, detect_contract, disparity_errors, load_ground_truth, read_pfm
from modelport.apps.depth.contract import Normalisation, pack, unpack_disparity
from modelport.errors import AppError, InvalidInputError
from modelport.inputs import TensorSpec


def spec(name: str, *shape: object, dtype: str = "float32") -> TensorSpec:
    return TensorSpec(name, dtype, tuple(shape))  # type: ignore[arg-type]


def test_concat_nchw_dynamic_is_detected() -> None:
    c = detect_contract([spec("stereo", 1, 6, "height", "width")], ["disparity"])
    assert (c.packing, c.layout, c.channels, c.size, c.inputs, c.output) == (
        "concat", "NCHW", 3, None, ("stereo",), "disparity"
    )  # fmt: skip
    assert "[1,6,H,W]" in c.describe()


def test_hitnet_style_nhwc_grey_fixed_size() -> None:
    c = detect_contract([spec("input", 1, 480, 640, 2)], ["scores", "reference_output_disparity"])
    assert (c.layout, c.channels, c.size, c.output) == ("NHWC", 1, (480, 640), "reference_output_disparity")


def test_two_inputs_ordered_by_name() -> None:
    c = detect_contract([spec("right_img", 1, 3, None, None), spec("left_img", 1, 3, None, None)], ["out"])
    assert c.packing == "pair" and c.inputs == ("left_img", "right_img") and c.layout == "NCHW"


def test_layout_override_for_ambiguous_dims() -> None:
    specs = [spec("x", 1, None, None, None)]
    with pytest.raises(AppError):
        detect_contract(specs, ["d"])
    c = detect_contract(specs, ["d"], layout="nhwc")
    assert c.layout == "NHWC" and c.channels == 3
    with pytest.raises(InvalidInputError, match="unknown input layout"):
        detect_contract(specs, ["d"], layout="NCDHW")


def test_classifier_fits_no_contract_and_the_error_says_what_was_tried() -> None:
    with pytest.raises(AppError) as err:
        detect_contract([spec("image", 1, 3, 224, 224)], ["logits"])
    text = str(err.value)
    assert "6 channels RGB or 2 grey" in text and "two inputs" in text
    assert "image float32[1, 3, 224, 224]" in text and "logits" in text


def test_pack_concat_and_grey_values() -> None:
    left = np.full((4, 5, 3), 255, np.uint8)
    right = np.zeros((4, 5, 3), np.uint8)
    right[..., 0] = 100
    nchw = detect_contract([spec("s", 1, 6, None, None)], ["d"])
    feeds = pack(nchw, left, right, Normalisation())
    x = feeds["s"]
    assert x.shape == (1, 6, 4, 5) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :3], 1.0)
    np.testing.assert_allclose(x[0, 3], 100 / 255, rtol=1e-6)
    grey = detect_contract([spec("s", 1, 4, 5, 2)], ["d"])
    g = pack(grey, left, right, Normalisation())["s"]
    assert g.shape == (1, 4, 5, 2)
    np.testing.assert_allclose(g[0, 0, 0], [1.0, 0.299 * 100 / 255], rtol=1e-5)
    bgr = pack(nchw, left, right, Normalisation(bgr=True, mean=(0.5,), std=(0.5,)))["s"]
    np.testing.assert_allclose(bgr[0, 5], (100 / 255 - 0.5) / 0.5, rtol=1e-5)  # R of the right view is last


def test_unpack_rescales_size_and_value() -> None:
    c = detect_contract([spec("s", 1, 6, None, None)], ["disp"])
    half = np.full((1, 10, 20, 1), 4.0, np.float32)  # NHWC, half the width: 4 px there = 8 px here
    out = unpack_disparity(c, {"disp": half}, (20, 40))
    assert out.shape == (20, 40) and out.dtype == np.float32
    np.testing.assert_allclose(out, 8.0)
    with pytest.raises(AppError, match="not a disparity map"):
        unpack_disparity(c, {"disp": np.zeros((1, 3, 10, 20), np.float32)}, (20, 40))


def test_errors_count_every_pixel_and_holes() -> None:
    gt = np.array([[10.0, 20.0], [np.inf, 30.0]], np.float32)
    disp = np.array([[10.5, 24.0], [99.0, 30.0]], np.float32)
    e = disparity_errors(disp, gt)
    assert e.epe == pytest.approx((0.5 + 4.0 + 0.0) / 3) and e.bad3 == pytest.approx(1 / 3)
    assert e.coverage == pytest.approx(0.75) and e.filled == 1.0
    holes = disparity_errors(disp, gt, valid=np.array([[True, True], [True, False]]))
    assert holes.epe == pytest.approx((0.5 + 4.0 + 30.0) / 3) and holes.bad3 == pytest.approx(2 / 3)
    assert holes.filled == pytest.approx(2 / 3)


def test_pfm_rows_run_bottom_to_top(tmp_path: Path) -> None:
    gt = np.array([[1.0, 2.0, 3.0], [4.0, np.inf, 6.0]], np.float32)
    path = tmp_path / "disp0GT.pfm"
    path.write_bytes(b"Pf\n3 2\n-1.0\n" + gt[::-1].astype("<f4").tobytes())
    np.testing.assert_array_equal(read_pfm(path), gt)
    loaded = load_ground_truth(path, (4, 6))  # twice the size: values doubled, nearest resize
    assert loaded.shape == (4, 6) and loaded[0, 0] == 2.0 and np.isinf(loaded[2, 2])
    with pytest.raises(AppError, match="truncated"):
        (tmp_path / "short.pfm").write_bytes(b"Pf\n3 2\n-1.0\n" + b"\0" * 8)
        read_pfm(tmp_path / "short.pfm")


def test_png_ground_truth_zero_is_unknown(tmp_path: Path) -> None:
    import cv2

    png = np.array([[0, 40], [80, 120]], np.uint8)
    cv2.imwrite(str(tmp_path / "gt.png"), png)
    gt = load_ground_truth(tmp_path / "gt.png")
    assert np.isinf(gt[0, 0]) and gt[1, 1] == 120.0


def test_options_are_checked() -> None:
    with pytest.raises(InvalidInputError, match=r"\.npy"):
        DepthOptions(save_disparity=Path("d.png"))
    with pytest.raises(InvalidInputError, match="max-disp"):
        DepthOptions(max_disp=0)


def test_model_range_from_metadata_a_port_source_or_the_shipped_card(tmp_path: Path) -> None:
    import onnx

    from modelport.apps.depth import model_disparity_range

    proto = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[1,6,H,W] stereo) => (float[1,6,H,W] disparity) { disparity = Identity (stereo) }"""
    )
    proto.metadata_props.add(key="max_disp", value="96")
    onnx.save(proto, tmp_path / "model.onnx")
    target = tmp_path / "targets" / "openvino-fp32" / "model.xml"
    target.parent.mkdir(parents=True)
    target.write_text("<net/>")
    assert model_disparity_range(tmp_path / "model.onnx") == 96
    assert model_disparity_range(target) == 96  # a port target: the port's prepared source says
    assert model_disparity_range(tmp_path / "census_stereo.tflite") == 64  # a port of the shipped network
    assert model_disparity_range(tmp_path / "other.tflite") is None
