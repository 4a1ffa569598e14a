"""detect's core on tiny models built here: host NMS against a brute-force reference (and OpenCV's), each output
contract (YOLO v8/v5, SSD post-processed TF/TFLite/torchvision, SSD raw with anchors), the letterbox and resize
geometry back to image pixels, the NMS cut (equal to the in-graph NMS), and the error for a model that fits no
contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from detectors import (
    nms_model,
    ssd_postprocessed_model,
    white,
    yolo_model,
)
from modelport.apps.detect import AdapterKind, Detector, DetectorOptions, cut_before_nms, onnx_nms
from modelport.apps.detect.adapters import Geometry, decode_boxes
from modelport.apps.detect.prep import input_plan, prepare
from modelport.apps.vision.model import resolve_app_model
from modelport.errors import AppError
from modelport.inputs import TensorSpec
from modelport.rewriting.nms import box_iou, nms

# --- host NMS ------------------------------------------------------------------------------------------------


def brute_nms(boxes: np.ndarray, scores: np.ndarray, iou: float, classes: np.ndarray | None = None) -> list[int]:
    """The definition, one box at a time: visit by descending score, keep a box unless a kept box of its class
    overlaps it with IoU above the threshold."""
    keep: list[int] = []
    for i in sorted(range(len(scores)), key=lambda k: (-scores[k], k)):
        rivals = [k for k in keep if classes is None or classes[k] == classes[i]]
        if not rivals or box_iou(boxes[i : i + 1], boxes[rivals]).max() <= iou:
            keep.append(i)
    return keep


def random_boxes(rng: np.random.Generator, n: int, span: float = 100.0) -> np.ndarray:
    xy = rng.uniform(0, span, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(1, span / 3, (n, 2))], 1)


@pytest.mark.parametrize("seed", range(6))
def test_nms_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    boxes, scores, classes = random_boxes(rng, n), rng.uniform(size=n), rng.integers(0, 4, n)
    for iou in (0.3, 0.45, 0.7):
        assert nms(boxes, scores, iou).tolist() == brute_nms(boxes, scores, iou)
        assert nms(boxes, scores, iou, classes=classes).tolist() == brute_nms(boxes, scores, iou, classes)
    assert nms(boxes, scores, 0.45, max_detections=5).tolist() == brute_nms(boxes, scores, 0.45)[:5]


def test_nms_large_groups_and_corner_order() -> None:
    """Above MATRIX_LIMIT boxes in one overlapping group the row-by-row path runs; corners may come swapped."""
    rng = np.random.default_rng(7)
    boxes, scores = random_boxes(rng, 2500, span=40), rng.uniform(size=2500)
    expected = brute_nms(boxes, scores, 0.5)
    assert nms(boxes, scores, 0.5).tolist() == expected
    swapped = boxes[:, [2, 3, 0, 1]]  # (x1, y1, x0, y0): the same boxes
    assert nms(swapped, scores, 0.5).tolist() == expected
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_nms_agrees_with_opencv() -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(11)
    boxes, scores = random_boxes(rng, 300), rng.uniform(size=300)
    rects = [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes.tolist()]
    theirs = np.asarray(cv2.dnn.NMSBoxes(rects, scores.tolist(), 0.0, 0.45)).reshape(-1)
    assert sorted(nms(boxes, scores, 0.45).tolist()) == sorted(theirs.tolist())


def test_onnx_nms_matches_onnxruntime(tmp_path: Path) -> None:
    """modelport's ``onnx_nms`` gives ONNX Runtime's ``selected_indices`` exactly (order included)."""
    graph = helper.make_graph(
        [helper.make_node("NonMaxSuppression", ["b", "s", "k", "iou", "thr"], ["sel"], center_point_box=0)],
        "nms",
        [
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 200, 4]),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, [2, 3, 200]),
        ],
        [helper.make_tensor_value_info("sel", TensorProto.INT64, [None, 3])],
        [
            numpy_helper.from_array(np.array([20], np.int64), "k"),
            numpy_helper.from_array(np.array([0.4], np.float32), "iou"),
            numpy_helper.from_array(np.array([0.2], np.float32), "thr"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    rng = np.random.default_rng(5)
    b = np.stack([random_boxes(rng, 200) for _ in range(2)]).astype(np.float32)
    s = rng.uniform(size=(2, 3, 200)).astype(np.float32)
    (ref,) = ort.InferenceSession(model.SerializeToString()).run(None, {"b": b, "s": s})
    np.testing.assert_array_equal(onnx_nms(b, s, 20, 0.4, 0.2), ref)


# --- contracts and geometry ----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["v8", "v5"])
def test_yolo_letterbox_boxes_in_image_pixels(tmp_path: Path, style: str) -> None:
    model = yolo_model(tmp_path / f"yolo_{style}.onnx", style)
    with Detector(resolve_app_model(model), DetectorOptions(score=0.5)) as det:
        assert det.adapter is not None and det.adapter.kind is AdapterKind.YOLO and det.adapter.style == style
        found = det(white(64, 128))  # letterboxed: scale 0.5, 16 rows of padding above
        dark = det(np.zeros((64, 128, 3), np.uint8))
    # A kept (B overlaps it: suppressed); C scores 0.7 in class 1
    brightness = (1 + 114 / 255) / 2  # half the letterboxed input is the gray padding
    np.testing.assert_allclose(found.scores, np.array([0.9, 0.7]) * brightness, atol=1e-5)
    assert found.class_ids.tolist() == [0, 1]
    np.testing.assert_allclose(found.boxes[0], [44, 12, 84, 52], atol=1e-3)  # (22-0)/0.5, (22-16)/0.5 …
    np.testing.assert_allclose(found.boxes[1], [12, 20, 28, 36], atol=1e-3)
    assert len(dark) == 0


@pytest.mark.parametrize("tflite_names", [False, True])
def test_ssd_postprocessed_any_names(tmp_path: Path, tflite_names: bool) -> None:
    """TF OD API names, or TFLite's post-process outputs (other order, classes from 0): the same detections."""
    model = ssd_postprocessed_model(tmp_path / "ssd.onnx", tflite_names)
    with Detector(resolve_app_model(model), DetectorOptions(score=0.5)) as det:
        assert det.adapter is not None and det.adapter.kind is AdapterKind.SSD_POSTPROCESSED
        found = det(white(200, 100))
    assert found.class_ids.tolist() == [1, 18]  # COCO ids: person, dog
    assert [det.names[c] for c in found.class_ids] == ["person", "dog"]
    np.testing.assert_allclose(found.scores, [0.95, 0.6], atol=1e-5)
    np.testing.assert_allclose(found.boxes[0], [20, 20, 60, 100], atol=1e-3)  # x·100, y·200


def test_ssd_raw_box_coder() -> None:
    anchors = np.array([[0.1, 0.1, 0.3, 0.5], [0.5, 0.5, 1.0, 1.0]])
    np.testing.assert_allclose(decode_boxes(np.zeros((2, 4)), anchors, (10, 10, 5, 5)), anchors)
    enc = np.array([[10.0, -10.0, 5 * np.log(2), 0.0]])  # centre +1 anchor height, −1 anchor width; twice as tall
    np.testing.assert_allclose(decode_boxes(enc, anchors[:1], (10, 10, 5, 5)), [[0.2, -0.3, 0.6, 0.1]])
    from modelport.apps.detect.adapters import PostOptions, choose_adapter

    outputs = {
        "anchors": anchors.astype(np.float32),
        "box_encodings": np.zeros((1, 2, 4), np.float32),
        "class_predictions": np.array([[[0.0, 3.0, -3.0], [0.0, -3.0, 2.0]]], np.float32),  # logits
    }
    adapter = choose_adapter(outputs)
    assert adapter.kind is AdapterKind.SSD_RAW and adapter.style == "encoded"
    found = adapter.decode(outputs, Geometry(100, 100), PostOptions(score=0.5))
    assert found.class_ids.tolist() == [1, 2]
    np.testing.assert_allclose(found.boxes, [[10, 10, 50, 30], [50, 50, 100, 100]], atol=1e-4)


def test_no_contract_lists_tried_and_outputs() -> None:
    from modelport.apps.detect.adapters import choose_adapter

    outputs = {"logits": np.zeros((1, 1000), np.float32)}
    with pytest.raises(AppError) as info:
        choose_adapter(outputs)
    text = str(info.value)
    for part in ("ssd-postprocessed:", "ssd-raw:", "yolo:", "logits [1, 1000] float32", "--adapter"):
        assert part in text
    with pytest.raises(AppError, match="tried yolo:"):
        choose_adapter({"boxes": np.zeros((1, 5, 4), np.float32)}, forced=AdapterKind.YOLO)


def test_input_plan_and_resize_geometry() -> None:
    plan = input_plan([TensorSpec("x", "float32", (3, 320, 320))])
    assert not plan.batched and plan.size == (320, 320)
    tensor, geometry = prepare(white(100, 200), plan, letterbox=False)
    assert tensor.shape == (3, 320, 320) and tensor.max() == pytest.approx(1.0)
    np.testing.assert_allclose(geometry.from_input(np.array([[160, 160, 320, 320]])), [[100, 50, 200, 100]])
    plan = input_plan([TensorSpec("image_tensor", "uint8", (1, None, None, 3))])
    tensor, geometry = prepare(white(30, 40), plan, letterbox=False)
    assert tensor.shape == (1, 30, 40, 3) and tensor.dtype == np.uint8  # any size: the image as it is
    with pytest.raises(AppError, match="one image input"):
        input_plan([TensorSpec("a", "float32", (1, 3, 8, 8)), TensorSpec("b", "float32", (1, 3, 8, 8))])


# --- the NMS cut ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("guarded", [False, True])
def test_cut_equals_in_graph_nms(tmp_path: Path, guarded: bool) -> None:
    source = nms_model(tmp_path / "nms.onnx", guarded)
    before = source.read_bytes()
    cut = cut_before_nms(source, tmp_path / "cache")
    assert source.read_bytes() == before  # the input is never modified
    assert cut.head.parent.parent == tmp_path / "cache" / "detect"
    assert not any(n.op_type == "NonMaxSuppression" for n in onnx.load(str(cut.head)).graph.node)
    assert not any(n.op_type in ("NonMaxSuppression", "If") for n in onnx.load(str(cut.tail)).graph.node)
    assert (cut.max_per_class, cut.iou, cut.score_threshold) == (3, pytest.approx(0.5), pytest.approx(0.05))
    full, head, tail = (ort.InferenceSession(str(p)) for p in (source, cut.head, cut.tail))
    for level in (255, 120):
        x = np.full((1, 3, 32, 32), level / 255, np.float32)
        ref = full.run(None, {"images": x})
        h = dict(zip([o.name for o in head.get_outputs()], head.run(None, {"images": x}), strict=True))
        got = tail.run(None, cut.tail_feeds(h))
        for a, b in zip(ref, got, strict=True):
            np.testing.assert_array_equal(a, b)
    assert cut_before_nms(source, tmp_path / "cache") == cut  # cached


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_detector_cuts_nms_and_matches_in_graph(tmp_path: Path, runtime: str) -> None:
    """The head runs on the chosen runtime (the tail on ONNX Runtime): the same detections as the whole graph."""
    source = nms_model(tmp_path / "nms.onnx", guarded=True)
    app = resolve_app_model(source, runtime=runtime)
    image = white(64, 64)
    options = DetectorOptions(score=0.3, cache_dir=tmp_path / "c", cut_runtimes=("onnxruntime", "openvino"))
    with Detector(app, options) as det:
        assert det.cut is not None and "host" in det.nms
        cut = det(image)
    with Detector(app, DetectorOptions(score=0.3, in_graph_nms=True, cache_dir=tmp_path / "c")) as det:
        assert det.cut is None
        graph = det(image)
    assert len(graph) >= 2
    np.testing.assert_array_equal(cut.class_ids, graph.class_ids)
    np.testing.assert_allclose(cut.scores, graph.scores, atol=1e-6)
    np.testing.assert_allclose(cut.boxes, graph.boxes, atol=1e-4)
    assert cut.boxes.max() > 32  # mapped from the 32×32 input to the 64×64 image
    if runtime == "openvino":  # by default only ONNX Runtime's NMS is cut out
        with Detector(app, DetectorOptions(score=0.3, cache_dir=tmp_path / "c")) as det:
            assert det.cut is None


def test_an_onnx_detector_with_in_graph_nms_runs_on_openvino_by_default(tmp_path: Path) -> None:
    """With no runtime given, a graph that runs NonMaxSuppression goes to OpenVINO (its NMS is the fast one); other
    models, and any explicit choice, keep the format's runtime."""
    from modelport.apps.detect import detect
    from modelport.apps.detect.cut import preferred_runtime
    from modelport.apps.vision.images import write_image

    with_nms = nms_model(tmp_path / "nms.onnx", guarded=True)
    without = yolo_model(tmp_path / "yolo.onnx")
    assert preferred_runtime(with_nms) == "openvino"
    assert preferred_runtime(without) is None
    assert preferred_runtime(tmp_path / "missing.onnx") is None
    photo = write_image(tmp_path / "white.png", white(64, 64))
    assert detect(with_nms, photo).runtime == "openvino"
    assert detect(without, photo).runtime == "onnxruntime"
    assert detect(resolve_app_model(with_nms, runtime="onnxruntime"), photo).runtime == "onnxruntime"
