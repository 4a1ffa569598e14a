"""Tiny ONNX detectors built in the tests (one per output contract, and one with an in-graph NonMaxSuppression),
shared by the detect tests and the split-nms rewrite tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _brightness(graph_nodes: list[onnx.NodeProto], image: str, cast: bool = False) -> str:
    """Nodes computing the image's mean pixel in 0‥1 as a [1, 1, 1] tensor named ``m``."""
    src = image
    if cast:
        graph_nodes.append(helper.make_node("Cast", [image], ["imf"], to=TensorProto.FLOAT))
        src = "imf"
    graph_nodes.append(helper.make_node("ReduceMean", [src], ["m4"], keepdims=1))
    graph_nodes.append(helper.make_node("Squeeze", ["m4", "ax0"], ["m"]))  # [1,1,1]
    if cast:
        graph_nodes.append(helper.make_node("Div", ["m", "c255"], ["m255"]))
        return "m255"
    return "m"


def _model(nodes: list, inputs: list, outputs: list, inits: dict[str, np.ndarray]) -> onnx.ModelProto:
    init = [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()]
    init.append(numpy_helper.from_array(np.array([0], np.int64), "ax0"))
    init.append(numpy_helper.from_array(np.array(255.0, np.float32), "c255"))
    graph = helper.make_graph(nodes, "tiny_detector", inputs, outputs, init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


#: boxes (cx, cy, w, h in 64×64 input pixels): A, B overlapping A (suppressed), C of another class, 5 unscored
YOLO_BOXES = np.array([[32, 32, 20, 20], [33, 32, 20, 20], [10, 30, 8, 8]] + [[50, 50, 4, 4]] * 5, np.float32)
#: per box, per class, at full brightness
YOLO_SCORES = np.array([[0.9, 0.0], [0.8, 0.0], [0.0, 0.7]] + [[0.0, 0.0]] * 5, np.float32)


def yolo_model(path: Path, style: str = "v8") -> Path:
    """A 64×64 YOLO head whose class scores scale with the image's brightness (white: 0.9/0.8/0.7)."""
    nodes: list = []
    m = _brightness(nodes, "images")
    if style == "v8":
        base = np.concatenate([YOLO_BOXES, np.zeros_like(YOLO_SCORES)], 1).T[None]  # [1, 6, 3]
        weight = np.concatenate([np.zeros_like(YOLO_BOXES), YOLO_SCORES], 1).T[None]
    else:  # [1, 8, 7]: boxes, objectness (scaled), class probabilities
        objectness = YOLO_SCORES.max(1, keepdims=True)
        base = np.concatenate([YOLO_BOXES, 0 * objectness, (YOLO_SCORES > 0) * 1.0], 1)[None]
        weight = np.concatenate([0 * YOLO_BOXES, objectness, 0 * YOLO_SCORES], 1)[None]
    nodes += [helper.make_node("Mul", ["w", m], ["wm"]), helper.make_node("Add", ["base", "wm"], ["output0"])]
    shape = list(base.shape)
    model = _model(
        nodes,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, shape)],
        {"base": base.astype(np.float32), "w": weight.astype(np.float32)},
    )
    onnx.save(model, str(path))
    return path


#: normalised (y0, x0, y1, x1) boxes of the post-processed model, their scores at full brightness, COCO classes
SSD_BOXES = np.array([[0.1, 0.2, 0.5, 0.6], [0.5, 0.5, 0.9, 0.8], [0.0, 0.0, 0.1, 0.1]], np.float32)
SSD_SCORES = np.array([0.95, 0.6, 0.3], np.float32)
SSD_CLASSES = np.array([1, 18, 3], np.float32)  # person, dog, car


def ssd_postprocessed_model(path: Path, tflite_names: bool = False) -> Path:
    """A TF-OD-API-style model: uint8 NHWC image of any size → boxes, scores, classes, num_detections.

    With ``tflite_names`` the outputs are named and ordered as TFLite's post-process op's (boxes, classes, scores,
    count) and its classes count from 0.
    """
    nodes: list = []
    m = _brightness(nodes, "image_tensor", cast=True)
    names = (
        ["TFLite_Detection_PostProcess", *(f"TFLite_Detection_PostProcess:{k}" for k in (1, 2, 3))]
        if tflite_names
        else ["detection_boxes", "detection_classes", "detection_scores", "num_detections"]
    )
    boxes, classes, scores, count = names
    nodes += [
        helper.make_node("Identity", ["boxes_c"], [boxes]),
        helper.make_node("Identity", ["classes_c"], [classes]),
        helper.make_node("Squeeze", [m, "ax0"], ["m2"]),
        helper.make_node("Mul", ["scores_c", "m2"], [scores]),
        helper.make_node("Identity", ["count_c"], [count]),
    ]
    shift = 1 if tflite_names else 0
    model = _model(
        nodes,
        [helper.make_tensor_value_info("image_tensor", TensorProto.UINT8, [1, "h", "w", 3])],
        [
            helper.make_tensor_value_info(boxes, TensorProto.FLOAT, [1, 3, 4]),
            helper.make_tensor_value_info(classes, TensorProto.FLOAT, [1, 3]),
            helper.make_tensor_value_info(scores, TensorProto.FLOAT, [1, 3]),
            helper.make_tensor_value_info(count, TensorProto.FLOAT, [1]),
        ],
        {
            "boxes_c": SSD_BOXES[None],
            "classes_c": (SSD_CLASSES - shift)[None],
            "scores_c": SSD_SCORES[None],
            "count_c": np.array([3], np.float32),
        },
    )
    onnx.save(model, str(path))
    return path


def nms_model(path: Path, guarded: bool = False) -> Path:
    """A 32×32 image → boxes [1, 6, 4] (input pixels, x0 y0 x1 y1) and scores [1, 2, 6] that scale with the
    brightness → ``NonMaxSuppression`` → gathers: boxes [M, 4], scores [M], labels [M] (torchvision's outputs).

    With ``guarded`` the NMS sits in an ``If`` on "any box", as torchvision's exports have it.
    """
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 20, (6, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(4, 12, (6, 2))], 1).astype(np.float32)
    boxes[1] = boxes[0] + 0.5  # a near-duplicate of box 0
    scores = rng.uniform(0.2, 1.0, (2, 6)).astype(np.float32)
    nodes: list = []
    m = _brightness(nodes, "images")
    nodes += [helper.make_node("Mul", ["scores_c", m], ["scores"])]
    nms = helper.make_node("NonMaxSuppression", ["boxes_c", "scores", "max_out", "iou", "thr"], ["selected"])
    if guarded:
        then = helper.make_graph(
            [nms], "then", [], [helper.make_tensor_value_info("selected", TensorProto.INT64, [None, 3])]
        )
        empty = helper.make_graph(
            [helper.make_node("Constant", [], ["none"], value=numpy_helper.from_array(np.zeros((0, 3), np.int64)))],
            "else",
            [],
            [helper.make_tensor_value_info("none", TensorProto.INT64, [None, 3])],
        )
        nodes += [
            helper.make_node("Size", ["boxes_c"], ["n"]),
            helper.make_node("Greater", ["n", "zero"], ["any"]),
            helper.make_node("If", ["any"], ["sel"], then_branch=then, else_branch=empty),
        ]
    else:
        nms.output[0] = "sel"
        nodes.append(nms)
    nodes += [
        helper.make_node("Gather", ["sel", "two"], ["idx"], axis=1),
        helper.make_node("Gather", ["sel", "one"], ["labels"], axis=1),
        helper.make_node("Squeeze", ["boxes_c", "ax0"], ["b2"]),
        helper.make_node("Gather", ["b2", "idx"], ["boxes"], axis=0),
        helper.make_node("GatherND", ["scores", "sel"], ["det_scores"]),
        helper.make_node("Identity", ["det_scores"], ["scores_out"]),
    ]
    model = _model(
        nodes,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [None, 4]),
            helper.make_tensor_value_info("scores_out", TensorProto.FLOAT, [None]),
            helper.make_tensor_value_info("labels", TensorProto.INT64, [None]),
        ],
        {
            "boxes_c": boxes[None],
            "scores_c": scores[None],
            "max_out": np.array([3], np.int64),
            "iou": np.array([0.5], np.float32),
            "thr": np.array([0.05], np.float32),
            "two": np.array(2, np.int64),
            "one": np.array(1, np.int64),
            "zero": np.array(0, np.int64),
        },
    )
    onnx.save(model, str(path))
    return path


def white(h: int, w: int) -> np.ndarray:
    return np.full((h, w, 3), 255, np.uint8)
