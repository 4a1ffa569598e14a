"""modelport's own non-maximum suppression: greedy, per class, vectorised with numpy.

For boxes :math:`a, b` given by corners, :math:`\\mathrm{IoU}(a, b) = |a \\cap b| / (|a| + |b| - |a \\cap b|)`
(0 when both are empty). Greedy NMS visits the boxes by descending score and keeps a box unless a box kept before
it overlaps it with IoU above the threshold; boxes of different classes never suppress each other.

Two exact speed-ups keep it fast on the thousands of candidates a detector emits:

* **Class offset.** Box ``i`` of class :math:`c_i` is shifted by :math:`c_i (M + 1)` on both axes, where
  :math:`M` is the coordinate range, so boxes of different classes can never overlap; one pass then does every
  class at once.
* **Independent groups.** Sorted by left edge, a box whose left edge is at or beyond the right edge of every box
  before it starts a new group: boxes of different groups have no overlap (IoU 0), so greedy NMS runs on each group
  alone. Per group the IoU matrix is computed in one vectorised step and the greedy scan only reads its rows; a
  group larger than :data:`MATRIX_LIMIT` is scanned box by box (one vectorised IoU row per kept box).

Greedy NMS only lets a box suppress boxes of *lower* score, so dropping every box under a score threshold
before NMS changes nothing about the boxes above it: the callers filter first.
"""

from __future__ import annotations

import numpy as np

#: the largest group whose full IoU matrix is computed at once (2048² booleans = 4 MiB)
MATRIX_LIMIT = 2048


def corners(boxes: np.ndarray) -> np.ndarray:
    """``N×4`` boxes as float64 ``(lo0, lo1, hi0, hi1)``: each pair of opposite corners put in order."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The ``len(a) × len(b)`` IoU matrix of two sets of corner boxes (any corner order; 0 for empty unions)."""
    inter, union = _overlap(corners(a), corners(b))
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _overlap(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intersection and union areas of ordered corner boxes, ``len(a) × len(b)`` each (one axis at a time)."""
    w = np.minimum(a[:, 2, None], b[None, :, 2]) - np.maximum(a[:, 0, None], b[None, :, 0])
    h = np.minimum(a[:, 3, None], b[None, :, 3]) - np.maximum(a[:, 1, None], b[None, :, 1])
    np.maximum(w, 0, out=w)
    np.maximum(h, 0, out=h)
    inter = np.multiply(w, h, out=w)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :]
    union -= inter
    return inter, union


def _suppression(a: np.ndarray, b: np.ndarray, iou_threshold: float) -> np.ndarray:
    """``IoU > t`` for ordered corner boxes of one group, without dividing: (1 + t)·|a ∩ b| > t·(|a| + |b|).

    The boxes are moved next to the origin and compared in float32 (IoU does not change under a translation; the
    class offsets would otherwise eat float32's precision). An empty union has an empty intersection: never
    suppressed.
    """
    origin = a[:, :2].min(axis=0)  # a box of the group: the others are near it
    a = (a - np.tile(origin, 2)).astype(np.float32)
    b = (b - np.tile(origin, 2)).astype(np.float32)
    a0, a1, a2, a3 = (np.ascontiguousarray(a[:, k, None]) for k in range(4))
    b0, b1, b2, b3 = (np.ascontiguousarray(b[None, :, k]) for k in range(4))
    w = np.minimum(a2, b2)
    w -= np.maximum(a0, b0)
    np.maximum(w, 0, out=w)
    h = np.minimum(a3, b3)
    h -= np.maximum(a1, b1)
    np.maximum(h, 0, out=h)
    w *= h  # the intersection
    w *= np.float32(1 + iou_threshold)
    areas = (a2 - a0) * (a3 - a1) + (b2 - b0) * (b3 - b1)
    areas *= np.float32(iou_threshold)
    return w > areas


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    iou_threshold: float,
    *,
    classes: np.ndarray | None = None,
    max_detections: int | None = None,
) -> np.ndarray:
    """Greedy per-class NMS.

    Args:
        boxes: ``N×4`` corner boxes (x0, y0, x1, y1 or y0, x0, y1, x1 — IoU does not care).
        scores: ``N`` scores.
        iou_threshold: a box is suppressed by a kept box of its class when their IoU is above this.
        classes: ``N`` class ids (None: one class).
        max_detections: keep at most this many (the best).

    Returns:
        The kept boxes' indices (int64), by descending score (ties: lower index first).
    """
    b = corners(boxes)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(b) != len(s):
        raise ValueError(f"{len(b)} boxes but {len(s)} scores")
    if len(b) == 0:
        return np.zeros(0, dtype=np.int64)
    if classes is not None:
        cls = np.asarray(classes).reshape(-1)
        _, dense = np.unique(cls, return_inverse=True)
        span = float(b.max() - b.min()) + 1.0
        b = b + (dense.astype(np.float64) * span)[:, None]
    kept = np.concatenate([group[_greedy(b[group], iou_threshold)] for group in _groups(b, s)])
    kept = kept[np.lexsort((kept, -s[kept]))]
    return (kept if max_detections is None else kept[:max_detections]).astype(np.int64)


def _groups(b: np.ndarray, s: np.ndarray) -> list[np.ndarray]:
    """Indices of the independent groups (see the module docstring), each sorted by descending score."""
    by_x = np.argsort(b[:, 0], kind="stable")
    reach = np.maximum.accumulate(b[by_x, 2])
    starts = np.flatnonzero(b[by_x[1:], 0] >= reach[:-1]) + 1
    groups = np.split(by_x, starts)
    singles = [g for g in groups if len(g) == 1]
    out = [np.concatenate(singles)] if singles else []  # one box alone is always kept: batch them
    for g in groups:
        if len(g) > 1:
            out.append(g[np.lexsort((g, -s[g]))])
    return out


def _greedy(b: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS over boxes already sorted by descending score; returns positions into ``b``.

    A batch of singletons (several boxes with no overlap) passes through unchanged as their IoUs are all 0.
    """
    m = len(b)
    if m == 1:
        return np.zeros(1, dtype=np.int64)
    if m <= MATRIX_LIMIT:
        suppress = _suppression(b, b, iou_threshold)
        removed = np.zeros(m, dtype=bool)
        keep: list[int] = []
        for i in range(m):
            if not removed[i]:
                keep.append(i)
                removed[i + 1 :] |= suppress[i, i + 1 :]
        return np.asarray(keep, dtype=np.int64)
    order = np.arange(m)
    keep = []
    while len(order):
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        order = rest[~_suppression(b[i : i + 1], b[rest], iou_threshold)[0]]
    return np.asarray(keep, dtype=np.int64)


def onnx_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    max_output_boxes_per_class: int = 0,
    iou_threshold: float = 0.0,
    score_threshold: float | None = None,
    *,
    center_point_box: int = 0,
) -> np.ndarray:
    """ONNX ``NonMaxSuppression`` on the host: what the operator computes, in modelport's NMS.

    Args:
        boxes: ``B×N×4`` boxes (corners, or centre/size when ``center_point_box`` is 1).
        scores: ``B×C×N`` scores.
        max_output_boxes_per_class: at most this many per batch and class (0: none, as the operator says).
        iou_threshold: suppress above this IoU.
        score_threshold: drop boxes whose score is not above this (None: keep all).
        center_point_box: 1 when boxes are ``(xc, yc, w, h)``.

    Returns:
        ``M×3`` int64 ``(batch, class, box)`` rows: per batch, per class, by descending score (ONNX Runtime's order).
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if center_point_box:
        half = boxes[..., 2:] / 2
        boxes = np.concatenate([boxes[..., :2] - half, boxes[..., :2] + half], axis=-1)
    rows: list[np.ndarray] = []
    if max_output_boxes_per_class <= 0:
        return np.zeros((0, 3), dtype=np.int64)
    for n in range(scores.shape[0]):
        for c in range(scores.shape[1]):
            s = scores[n, c]
            cand = np.flatnonzero(s > score_threshold) if score_threshold is not None else np.arange(len(s))
            kept = cand[nms(boxes[n, cand], s[cand], iou_threshold, max_detections=max_output_boxes_per_class)]
            rows.append(np.stack([np.full_like(kept, n), np.full_like(kept, c), kept], axis=1))
    return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 3), dtype=np.int64)
