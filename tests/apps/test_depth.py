"""The depth app end to end: the shipped stereo network on a real Middlebury pair (scikit-image's motorcycle),
across ONNX Runtime and OpenVINO, the CLI, a side-by-side video, other contracts, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import typer
from typer.testing import CliRunner

from modelport.apps.depth import DepthOptions, default_stereo_model, depth, disparity_errors
from modelport.apps.vision.model import resolve_app_model
from modelport.apps.vision.video import VideoWriter
from modelport.errors import AppError


@pytest.fixture(scope="module")
def motorcycle() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from skimage.data import stereo_motorcycle

    left, right, gt = stereo_motorcycle()
    return left, right, gt


@pytest.fixture(scope="module")
def ort_run(motorcycle: tuple[np.ndarray, np.ndarray, np.ndarray], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    left, right, gt = motorcycle
    d = tmp_path_factory.mktemp("depth")
    np.save(d / "gt.npy", gt)
    opts = DepthOptions(ground_truth=d / "gt.npy", save_disparity=d / "disp.npy", warmup=0)
    report = depth(None, left, right, d / "disp.png", options=opts)
    return report, np.load(d / "disp.npy"), d


def _sgbm_holes_counted(left: np.ndarray, right: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    import cv2

    sgbm = cv2.StereoSGBM_create(minDisparity=0, numDisparities=64, blockSize=5)
    disp = sgbm.compute(left, right).astype(np.float32) / 16.0
    e = disparity_errors(disp, gt, valid=disp > 0)
    return e.epe, e.bad3


def test_shipped_network_is_dense_and_beats_sgbm_with_holes_counted(motorcycle, ort_run) -> None:  # type: ignore[no-untyped-def]
    left, right, gt = motorcycle
    report, disp, d = ort_run
    assert disp.shape == gt.shape and disp.dtype == np.float32 and np.isfinite(disp).all()
    assert report.errors is not None and report.errors.coverage == pytest.approx(np.isfinite(gt).mean())
    sgbm_epe, sgbm_bad3 = _sgbm_holes_counted(left, right, gt)
    assert report.errors.epe < 2.5 and report.errors.bad3 < 0.12
    assert report.errors.epe < sgbm_epe and report.errors.bad3 < sgbm_bad3
    assert report.shape == report.run_size == gt.shape
    assert [p.name for p in report.outputs] == ["disp.png", "disp_side.png", "disp.npy"]
    import cv2

    side = cv2.imread(str(d / "disp_side.png"))
    assert side.shape == (gt.shape[0], 2 * gt.shape[1], 3)


def test_openvino_ir_gives_the_same_disparity(motorcycle, ort_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("openvino")
    from modelport.conversion import ChainOptions, convert

    left, right, gt = motorcycle
    ort_report, ort_disp, _ = ort_run
    ir = convert(default_stereo_model(), "openvino", tmp_path / "ir", options=ChainOptions(verify=False))
    app = resolve_app_model(Path(ir.artifact), threads=2)
    report = depth(app, left, right, options=DepthOptions(save_disparity=tmp_path / "ov.npy", warmup=0))
    ov = np.load(tmp_path / "ov.npy")
    assert report.runtime == "openvino" and "census_stereo.xml" in report.model
    assert np.mean(np.abs(ov - ort_disp) > 0.05) < 1e-3
    e = disparity_errors(ov, gt)
    assert e.epe == pytest.approx(ort_report.errors.epe, abs=0.01)


def test_max_disp_runs_the_pair_downscaled(motorcycle, ort_run) -> None:  # type: ignore[no-untyped-def]
    left, right, gt = motorcycle
    _, _, d = ort_run
    report = depth(None, left, right, options=DepthOptions(max_disp=128, warmup=0, ground_truth=d / "gt.npy"))
    assert report.run_size == (gt.shape[0] // 2, gt.shape[1] // 2) and report.shape == gt.shape
    assert report.errors is not None and report.errors.epe < 3.0  # disparities in pixels of the full-size view


def test_cli_pair_writes_png_side_and_npy(motorcycle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import cv2

    from modelport.cli import depth as depth_cli

    left, right, _ = motorcycle
    small = [cv2.resize(v, (370, 250), interpolation=cv2.INTER_AREA) for v in (left, right)]
    for name, view in zip(("l.png", "r.png"), small, strict=True):
        cv2.imwrite(str(tmp_path / name), view[:, :, ::-1])
    app = typer.Typer()
    depth_cli.register(app)
    app.callback()(lambda: None)
    args = ["depth", str(tmp_path / "l.png"), str(tmp_path / "r.png"), "-o", str(tmp_path / "o.png")]
    result = CliRunner().invoke(app, [*args, "--save-disparity", str(tmp_path / "o.npy"), "--json"])
    assert result.exit_code == 0, result.output
    assert '"run_size": [\n    250,\n    370\n  ]' in result.output
    disp = np.load(tmp_path / "o.npy")
    assert disp.shape == (250, 370) and 20 < float(np.median(disp)) < 30  # half the full-size median (~39)
    assert (tmp_path / "o_side.png").is_file()
    bad = CliRunner().invoke(app, ["depth", str(tmp_path / "l.png")])
    assert bad.exit_code != 0 and "LEFT RIGHT" in str(bad.exception)


def test_side_by_side_video_pipelined_and_sequential(motorcycle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import cv2

    left, right, _ = motorcycle
    views = [cv2.resize(v, (184, 124), interpolation=cv2.INTER_AREA) for v in (left, right)]
    src = tmp_path / "sbs.mp4"
    with VideoWriter(src, 10.0, 2 * 184, 124) as w:
        for i in range(5):
            w.write(np.concatenate([np.roll(v, i, axis=1) for v in views], axis=1))
    for pipelined in (True, False):
        out = tmp_path / f"out-{pipelined}.mp4"
        opts = DepthOptions(pipelined=pipelined, save_disparity=tmp_path / "v.npy", warmup=0)
        report = depth(None, src, None, out, options=opts)
        assert report.frames == 5 and report.video is not None
        assert report.video.mode == ("pipelined" if pipelined else "sequential")
        assert out.is_file() and report.shape == (124, 184)
        stack = np.load(tmp_path / "v.npy")
        assert stack.shape == (5, 124, 184) and 5 < float(np.median(stack)) < 20


def test_other_contracts_nhwc_fixed_half_resolution_and_two_inputs(tmp_path: Path) -> None:
    nhwc = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[1,64,96,2] pair) => (float[1,32,48,1] disp) {
            starts = Constant <value = int64[4] {0,0,0,0}> ()
            ends = Constant <value = int64[4] {1,64,96,1}> ()
            steps = Constant <value = int64[4] {1,2,2,1}> ()
            axes = Constant <value = int64[4] {0,1,2,3}> ()
            s = Slice (pair, starts, ends, axes, steps)
            zero = Constant <value = float {0.0}> ()
            three = Constant <value = float {3.0}> ()
            z = Mul (s, zero)
            disp = Add (z, three)
        }"""
    )
    onnx.save(nhwc, tmp_path / "nhwc.onnx")
    views = np.full((80, 120, 3), 128, np.uint8)
    report = depth(str(tmp_path / "nhwc.onnx"), views, views.copy(), options=DepthOptions(warmup=0))
    assert "NHWC" in report.contract and "grey" in report.contract and report.run_size == (64, 96)
    assert report.disparity_range == pytest.approx((7.5, 7.5))  # 3 px of a 48-wide map on a 120-wide image
    pair = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[1,3,H,W] right_view, float[1,3,H,W] left_view) => (float[1,1,H,W] disparity) {
            diff = Sub (left_view, right_view)
            disparity = ReduceMean <keepdims = 1, axes = [1]> (diff)
        }"""
    )
    onnx.save(pair, tmp_path / "pair.onnx")
    left = np.full((40, 60, 3), 200, np.uint8)
    right = np.full((40, 60, 3), 100, np.uint8)
    out = depth(str(tmp_path / "pair.onnx"), left, right, options=DepthOptions(warmup=0, normalisation=_raw()))
    assert out.disparity_range == pytest.approx((100.0, 100.0))  # left minus right: the order came from the names


def _raw():  # type: ignore[no-untyped-def]
    from modelport.apps.depth import Normalisation

    return Normalisation(scale=1.0)


def test_bad_input_one_error_each_and_nothing_written(motorcycle, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    left, right, _ = motorcycle
    out = tmp_path / "o.png"
    with pytest.raises(AppError, match="differ in size"):
        depth(None, left, right[:, :-8], out)
    with pytest.raises(AppError, match="does not exist"):
        depth(None, left, right, tmp_path / "missing" / "o.png")
    classifier = onnx.parser.parse_model(
        """<ir_version: 8, opset_import: ["" : 17]>
        g (float[1,3,32,32] image) => (float[1,3] logits) {
            logits = ReduceMean <keepdims = 0, axes = [2, 3]> (image)
        }"""
    )
    onnx.save(classifier, tmp_path / "cls.onnx")
    with pytest.raises(AppError, match="fit no stereo contract") as err:
        depth(str(tmp_path / "cls.onnx"), left, right, out)
    assert "image float32[1, 3, 32, 32]" in str(err.value)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 50)
    with pytest.raises(AppError, match="cannot decode"):
        depth(None, tmp_path / "broken.mp4", None, tmp_path / "v.mp4")
    with pytest.raises(AppError, match=r"\.mp4"):
        depth(None, tmp_path / "broken.mp4", None, tmp_path / "v.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4", "cls.onnx"]


def test_shipped_network_file_is_small_and_documented() -> None:
    import json

    path = default_stereo_model()
    assert path.stat().st_size < 1_000_000
    proto = onnx.load(str(path))
    assert {p.key: p.value for p in proto.metadata_props}["max_disp"] == "64"
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["input"] == proto.graph.input[0].name and card["output"] == proto.graph.output[0].name
    assert card["measured"]["motorcycle_epe"] < 2.5


def _wrapped(front: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto]) -> onnx.ModelProto:
    """The shipped network behind other input contracts (the nodes in ``front`` produce its ``stereo``)."""
    proto = onnx.load(str(default_stereo_model()))
    graph = proto.graph
    del graph.input[:]
    graph.input.extend(inputs)
    nodes = [*front, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(proto)
    return proto


def test_real_network_behind_hitnet_and_two_input_contracts(motorcycle, ort_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from onnx import TensorProto, helper

    left, right, _ = motorcycle
    _, reference, _ = ort_run
    nhwc = _wrapped(
        [helper.make_node("Transpose", ["pair_nhwc"], ["stereo"], perm=[0, 3, 1, 2])],
        [helper.make_tensor_value_info("pair_nhwc", TensorProto.FLOAT, [1, "h", "w", 6])],
    )
    two = _wrapped(
        [helper.make_node("Concat", ["left_image", "right_image"], ["stereo"], axis=1)],
        [
            helper.make_tensor_value_info("right_image", TensorProto.FLOAT, [1, 3, "h", "w"]),
            helper.make_tensor_value_info("left_image", TensorProto.FLOAT, [1, 3, "h", "w"]),
        ],
    )
    for name, proto, expect in (("nhwc.onnx", nhwc, "NHWC"), ("two.onnx", two, "two inputs")):
        onnx.save(proto, tmp_path / name)
        opts = DepthOptions(warmup=0, save_disparity=tmp_path / f"{name}.npy")
        report = depth(str(tmp_path / name), left, right, options=opts)
        assert expect in report.contract
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), reference, atol=1e-3)
