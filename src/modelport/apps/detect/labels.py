"""Class names: the COCO category ids (1‥90, with the 10 ids COCO left unused), and ``--classes`` files.

TF Object Detection API models and torchvision's detectors number their classes by COCO category id (0 is the
background); YOLO models trained on COCO number the 80 used categories densely from 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modelport.errors import InvalidInputError

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


def read_classes(path: Path) -> tuple[str, ...]:
    """A ``--classes`` file: one name per line, line ``i`` (from 0) naming class id ``i``.

    Raises:
        InvalidInputError: the file is missing, unreadable, or has no names.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"cannot read the class names ({exc.__class__.__name__})",
            hint="give a UTF-8 text file with one class name per line",
            path=path,
        ) from exc
    names = tuple(line.strip() for line in lines)
    if not any(names):
        raise InvalidInputError("the class names file is empty", hint="one class name per line", path=path)
    return names


def label(class_id: int, names: Sequence[str]) -> str:
    """The name of ``class_id`` (``class N`` when the table has none)."""
    if 0 <= class_id < len(names) and names[class_id]:
        return names[class_id]
    return f"class {class_id}"
