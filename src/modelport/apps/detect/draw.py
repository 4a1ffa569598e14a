"""Drawing detections: a box per detection in a colour per class, its label and score above it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modelport.apps.detect.adapters import Detections
from modelport.apps.detect.labels import label

#: box colours (RGB), chosen per class id
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 56, 56), (56, 200, 255), (72, 220, 72), (255, 178, 29), (207, 96, 255), (0, 212, 187),
    (255, 112, 180), (146, 204, 23), (61, 118, 255), (255, 157, 151), (132, 56, 255), (26, 147, 52),
)  # fmt: skip


def draw_detections(rgb: np.ndarray, detections: Detections, names: Sequence[str]) -> np.ndarray:
    """A copy of ``rgb`` with each detection's box and ``label score`` drawn (line width grows with the image)."""
    import cv2

    out = np.ascontiguousarray(rgb).copy()
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 300))
    scale = max(0.4, min(h, w) / 900)
    for box, score, cls in zip(detections.boxes, detections.scores, detections.class_ids, strict=True):
        colour = PALETTE[int(cls) % len(PALETTE)]
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thick, cv2.LINE_AA)
        text = f"{label(int(cls), names)} {float(score):.2f}"
        text = "".join(c if c.isascii() else "?" for c in text)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        top = y0 - th - base - 2 if y0 - th - base - 2 >= 0 else y0
        left = max(0, min(x0, w - tw - 2))  # the label stays inside the image
        cv2.rectangle(out, (left, top), (left + tw + 2, top + th + base + 2), colour, -1)
        cv2.putText(out, text, (left + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return out
