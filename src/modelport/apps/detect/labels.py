"""Class names: the COCO category ids (1‥90, with the 10 ids COCO left unused), and ``--classes`` files.

TF Object Detection API models and torchvision's detectors number their classes by COCO category id (0 is the
background); YOLO models trained on COCO number the 80 used categories densely from 0.
"""

from __future__ import annotations

from collections.abc import Sequence

_UNUSED = ""
#: index = COCO category id; "" where COCO defines no category (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)
COCO_CATEGORIES: tuple[str, ...] = (
    "background", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", _UNUSED, "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", _UNUSED, "backpack", "umbrella", _UNUSED,
    _UNUSED, "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", _UNUSED, "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", _UNUSED, "dining table", _UNUSED, _UNUSED,
    "toilet", _UNUSED, "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
    "toaster", "sink", "refrigerator", _UNUSED, "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)  # fmt: skip

#: the 80 used COCO categories numbered densely from 0 (YOLO's numbering)
COCO_80: tuple[str, ...] = tuple(name for name in COCO_CATEGORIES[1:] if name)


def label(class_id: int, names: Sequence[str]) -> str:
    """The name of ``class_id`` (``class N`` when the table has none)."""
    if 0 <= class_id < len(names) and names[class_id]:
        return names[class_id]
    return f"class {class_id}"
