"""Detector output contracts (adapters): which outputs are what, and how they become boxes in image pixels.

Three contracts, recognised from the outputs of one inference (names *and* shapes, so converters' renaming and
reordering do not matter), or forced with ``--adapter``:

``ssd-postprocessed``
    Post-processing inside the model. TF Object Detection API / TFLite ``TFLite_Detection_PostProcess``: boxes
    ``[1, N, 4]`` as normalised ``(y0, x0, y1, x1)``, scores ``[1, N]``, classes ``[1, N]``, the number of
    detections ``[1]``. torchvision's detectors: boxes ``[N, 4]`` as ``(x0, y0, x1, y1)`` in input pixels,
    scores ``[N]``, labels ``[N]`` (no count).
``ssd-raw``
    Box predictions ``[1, N, 4]`` and class scores ``[1, N, C]`` (column 0: background), decoded on the host.
    With anchors (a model output ``[N, 4]``, or ``--anchors``, both ``(y0, x0, y1, x1)`` normalised) the boxes
    are encodings ``(ty, tx, th, tw)`` decoded by the SSD box coder with scale factors
    :math:`(s_y, s_x, s_h, s_w)` (default 10, 10, 5, 5) around anchor centre :math:`(y_a, x_a)` and size
    :math:`(h_a, w_a)`: :math:`y = t_y / s_y \\cdot h_a + y_a`, :math:`h = e^{t_h / s_h} h_a` (same for x, w);
    without, they are already decoded normalised ``(y0, x0, y1, x1)``. Scores outside [0, 1] are logits
    (sigmoid). Every (box, class) pair above ``--score`` is a candidate (multi-label), NMS per class.
``yolo``
    One output ``[1, 4+C, N]`` (v8-style: class scores, no objectness) or ``[1, N, 5+C]`` (v5-style: score =
    objectness × class score), boxes ``(cx, cy, w, h)`` in input pixels of a letterboxed image; one class per
    box (the best), NMS per class.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence

import numpy as np

from modelport.errors import AppError
from modelport.rewriting.nms import nms


class AdapterKind(str, enum.Enum):
    """The output contracts ``detect`` knows."""

    SSD_POSTPROCESSED = "ssd-postprocessed"
    SSD_RAW = "ssd-raw"
    YOLO = "yolo"


@dataclasses.dataclass(frozen=True)
class Detections:
    """One image's detections.

    Attributes:
        boxes: ``N×4`` float32 ``(x0, y0, x1, y1)`` in pixels of the original image.
        scores: ``N`` float32.
        class_ids: ``N`` int64, in the model's numbering.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        """No detections."""
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


@dataclasses.dataclass(frozen=True)
class Geometry:
    """How the model input was made from the original image: input pixel = original pixel · scale + pad.

    Attributes:
        width: the original image's width (pixels).
        height: the original image's height.
        scale_x: horizontal scale (input pixels per original pixel).
        scale_y: vertical scale.
        pad_x: left padding in input pixels (letterbox).
        pad_y: top padding in input pixels.
    """

    width: int
    height: int
    scale_x: float = 1.0
    scale_y: float = 1.0
    pad_x: float = 0.0
    pad_y: float = 0.0

    def from_input(self, xyxy: np.ndarray) -> np.ndarray:
        """``N×4`` boxes in input pixels → original pixels, clipped to the image."""
        b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        x = (b[:, 0::2] - self.pad_x) / self.scale_x
        y = (b[:, 1::2] - self.pad_y) / self.scale_y
        out = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)
        out[:, 0::2] = np.clip(out[:, 0::2], 0, self.width)
        out[:, 1::2] = np.clip(out[:, 1::2], 0, self.height)
        return out.astype(np.float32)

    def from_normalised_yxyx(self, yxyx: np.ndarray) -> np.ndarray:
        """``N×4`` normalised ``(y0, x0, y1, x1)`` of a plainly resized input → original pixels (clipped)."""
        b = np.clip(np.asarray(yxyx, dtype=np.float64).reshape(-1, 4), 0.0, 1.0)
        return np.stack(
            [b[:, 1] * self.width, b[:, 0] * self.height, b[:, 3] * self.width, b[:, 2] * self.height], 1
        ).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class PostOptions:
    """Host-side post-processing settings.

    Attributes:
        score: the lowest score kept.
        iou: NMS IoU threshold.
        max_detections: at most this many per image.
        anchors: ``N×4`` normalised ``(y0, x0, y1, x1)`` anchors for ``ssd-raw`` encodings (None: a model output
            or none).
        box_scales: the SSD box coder's scale factors ``(y, x, h, w)``.
    """

    score: float = 0.5
    iou: float = 0.45
    max_detections: int = 100
    anchors: np.ndarray | None = None
    box_scales: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)


@dataclasses.dataclass(frozen=True)
class Adapter:
    """A recognised contract: which output plays which role.

    Attributes:
        kind: the contract.
        roles: role → output name (``boxes``, ``scores``, ``classes``, ``count``, ``anchors``, ``predictions``).
        style: the variant (``tf``/``torchvision`` for post-processed, ``encoded``/``decoded`` for raw,
            ``v8``/``v5`` for YOLO).
        class_offset: added to the model's class numbers (1 for TFLite's post-process op, which counts from 0).
    """

    kind: AdapterKind
    roles: tuple[tuple[str, str], ...]
    style: str
    class_offset: int = 0

    @property
    def letterbox(self) -> bool:
        """Whether the input is letterboxed (YOLO) rather than plainly resized (SSD)."""
        return self.kind is AdapterKind.YOLO

    def describe(self) -> str:
        """One line: the contract, its variant and the outputs by role."""
        roles = ", ".join(f"{role}={name}" for role, name in self.roles)
        return f"{self.kind.value} ({self.style}: {roles})"

    def decode(self, outputs: Mapping[str, np.ndarray], geometry: Geometry, post: PostOptions) -> Detections:
        """The detections in ``outputs`` (one image), in original-image pixels, thresholded and NMS'd."""
        arrays = {role: np.asarray(outputs[name]) for role, name in self.roles}
        if self.kind is AdapterKind.SSD_POSTPROCESSED:
            det = _decode_postprocessed(arrays, geometry, self.style)
            keep = np.flatnonzero(det.scores >= post.score)
            keep = keep[np.argsort(-det.scores[keep], kind="stable")][: post.max_detections]
            return Detections(det.boxes[keep], det.scores[keep], det.class_ids[keep] + self.class_offset)
        if self.kind is AdapterKind.SSD_RAW:
            boxes, scores, classes = _decode_ssd_raw(arrays, geometry, post)
        else:
            boxes, scores, classes = _decode_yolo(arrays, geometry, self.style, post)
        keep = nms(boxes, scores, post.iou, classes=classes, max_detections=post.max_detections)
        return Detections(
            boxes[keep].astype(np.float32), scores[keep].astype(np.float32), classes[keep].astype(np.int64)
        )


def _decode_postprocessed(arrays: Mapping[str, np.ndarray], geometry: Geometry, style: str) -> Detections:
    if style == "tf":
        count = int(np.asarray(arrays["count"]).reshape(-1)[0]) if "count" in arrays else None
        boxes = arrays["boxes"].reshape(-1, 4)[:count]
        pixels = geometry.from_normalised_yxyx(boxes)
        n = len(pixels)
    else:
        pixels = geometry.from_input(arrays["boxes"].reshape(-1, 4))
        n = len(pixels)
    scores = arrays["scores"].reshape(-1)[:n].astype(np.float32)
    classes = np.rint(arrays["classes"].reshape(-1)[:n]).astype(np.int64)
    return Detections(pixels, scores, classes)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _decode_ssd_raw(
    arrays: Mapping[str, np.ndarray], geometry: Geometry, post: PostOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes = arrays["boxes"].reshape(-1, 4).astype(np.float64)
    scores = arrays["scores"].reshape(len(boxes), -1).astype(np.float64)
    if scores.min() < 0 or scores.max() > 1:
        scores = _sigmoid(scores)
    anchors = arrays.get("anchors", post.anchors)
    if anchors is not None:
        boxes = decode_boxes(boxes, np.asarray(anchors, np.float64).reshape(-1, 4), post.box_scales)
    first = 1 if scores.shape[1] > 1 else 0  # column 0 is the background
    rows, cols = np.nonzero(scores[:, first:] >= post.score)
    cols = cols + first
    return geometry.from_normalised_yxyx(boxes[rows]), scores[rows, cols], cols


def decode_boxes(encodings: np.ndarray, anchors: np.ndarray, scales: Sequence[float]) -> np.ndarray:
    """The SSD box coder: ``(ty, tx, th, tw)`` encodings around ``(y0, x0, y1, x1)`` anchors → ``(y0, x0, y1, x1)``.

    Raises:
        AppError: the anchors do not match the encodings one to one.
    """
    if anchors.shape != encodings.shape:
        raise AppError(
            f"{len(anchors)} anchors for {len(encodings)} box encodings",
            hint="give the anchors the model was trained with (--anchors FILE.npy, N×4 y0,x0,y1,x1)",
        )
    ha, wa = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ya, xa = anchors[:, 0] + ha / 2, anchors[:, 1] + wa / 2
    sy, sx, sh, sw = scales
    yc = encodings[:, 0] / sy * ha + ya
    xc = encodings[:, 1] / sx * wa + xa
    h = np.exp(encodings[:, 2] / sh) * ha
    w = np.exp(encodings[:, 3] / sw) * wa
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)


def _decode_yolo(
    arrays: Mapping[str, np.ndarray], geometry: Geometry, style: str, post: PostOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pred = arrays["predictions"][0].astype(np.float64)
    if style == "v8":
        pred = pred.T  # N × (4 + C)
        cls_scores = pred[:, 4:]
    else:
        cls_scores = pred[:, 5:] * pred[:, 4:5]
    classes = np.argmax(cls_scores, axis=1)
    scores = cls_scores[np.arange(len(pred)), classes]
    keep = np.flatnonzero(scores >= post.score)
    cx, cy, w, h = pred[keep, :4].T
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return geometry.from_input(xyxy), scores[keep], classes[keep]


def outputs_text(outputs: Mapping[str, np.ndarray]) -> str:
    """The model's outputs in words: ``name [shape] dtype`` each."""
    return ", ".join(f"{name} {list(np.shape(a))} {np.asarray(a).dtype}" for name, a in outputs.items())


def choose_adapter(
    outputs: Mapping[str, np.ndarray], *, forced: AdapterKind | None = None, has_anchors: bool = False
) -> Adapter:
    """The contract ``outputs`` (one inference's results) fit, tried in the order of :class:`AdapterKind`.

    Args:
        outputs: output name → array, from one inference.
        forced: try only this contract.
        has_anchors: anchors were given (``--anchors``), so ``ssd-raw`` boxes are encodings.

    Raises:
        AppError: the outputs fit no contract tried; the message lists each contract, why it did not fit, and
            the model's outputs.
    """
    tried: list[str] = []
    matchers = {
        AdapterKind.SSD_POSTPROCESSED: _match_postprocessed,
        AdapterKind.SSD_RAW: lambda o: _match_raw(o, has_anchors),
        AdapterKind.YOLO: _match_yolo,
    }
    for kind, matcher in matchers.items():
        if forced is not None and kind is not forced:
            continue
        found = matcher(outputs)
        if isinstance(found, Adapter):
            return found
        tried.append(f"{kind.value}: {found}")
    raise AppError(
        f"the model's outputs fit no detection contract (outputs: {outputs_text(outputs)}); tried " + "; ".join(tried),
        hint="detect runs SSD-style models (post-processed, or raw boxes + class scores) and YOLO-style raw "
        "outputs; choose one with --adapter ssd-postprocessed|ssd-raw|yolo, or cut the model with `modelport edit`",
    )


def _named(names: Sequence[str], *words: str) -> list[str]:
    return [n for n in names if any(w in n.lower() for w in words)]


def _pick(candidates: Sequence[str], *words: str) -> str | None:
    """The one candidate, or the one whose name holds a word, else None."""
    if len(candidates) == 1:
        return candidates[0]
    named = _named(candidates, *words)
    return named[0] if len(named) == 1 else None


def _integral(a: np.ndarray) -> bool:
    return bool(np.issubdtype(a.dtype, np.integer) or (a.size and np.all(np.asarray(a) == np.rint(a))))


def _match_postprocessed(outputs: Mapping[str, np.ndarray]) -> Adapter | str:
    shapes = {n: np.shape(a) for n, a in outputs.items()}
    boxes = [n for n, s in shapes.items() if len(s) in (2, 3) and s[-1] == 4 and (len(s) == 2 or s[0] == 1)]
    box = _pick(boxes, "box")
    if box is None:
        return "needs one box output [1, N, 4] or [N, 4]" + (f" (several: {boxes})" if boxes else "")
    per_box = [n for n, s in shapes.items() if n != box and s == shapes[box][:-1]]
    if len(per_box) != 2:
        return f"needs a score and a class output of shape {list(shapes[box][:-1])} beside {box}"
    classes = _pick(per_box, "class", "label")
    scores = _pick(per_box, "score")
    if classes is None or scores is None or classes == scores:
        integral = [n for n in per_box if _integral(np.asarray(outputs[n]))]
        # by values (classes are whole numbers), else in TFLite's post-process order: classes, then scores
        classes = integral[0] if len(integral) == 1 else per_box[0]
        scores = next(n for n in per_box if n != classes)
    roles = [("boxes", box), ("scores", scores), ("classes", classes)]
    counts = [n for n, s in shapes.items() if int(np.prod(s)) == 1 and n not in (box, scores, classes)]
    count = _pick(counts, "num", "count")
    style = "tf" if len(shapes[box]) == 3 else "torchvision"
    if style == "tf" and count is not None:
        roles.append(("count", count))
    offset = 1 if _named(list(outputs), "tflite_detection_postprocess") else 0
    return Adapter(AdapterKind.SSD_POSTPROCESSED, tuple(roles), style, class_offset=offset)


def _match_raw(outputs: Mapping[str, np.ndarray], has_anchors: bool) -> Adapter | str:
    shapes = {n: np.shape(a) for n, a in outputs.items()}
    quads = [n for n, s in shapes.items() if len(s) in (2, 3) and s[-1] == 4 and (len(s) == 2 or s[0] == 1)]
    anchors = _pick(_named(quads, "anchor", "prior"), "anchor", "prior")
    boxes_c = [n for n in quads if n != anchors and len(shapes[n]) == 3]
    box = _pick(boxes_c, "box", "loc", "encod", "regress")
    if box is None:
        return "needs one box output [1, N, 4]" + (f" (several: {boxes_c})" if boxes_c else "")
    n_boxes = shapes[box][1]
    score_c = [n for n, s in shapes.items() if n != box and len(s) == 3 and s[:2] == (1, n_boxes) and n != anchors]
    score = _pick(score_c, "score", "class", "logit", "conf")
    if score is None:
        return f"needs one class-score output [1, {n_boxes}, C] beside {box}"
    roles = [("boxes", box), ("scores", score)]
    if anchors is not None and int(np.prod(shapes[anchors])) == n_boxes * 4:
        roles.append(("anchors", anchors))
    style = "encoded" if has_anchors or len(roles) == 3 else "decoded"
    return Adapter(AdapterKind.SSD_RAW, tuple(roles), style)


def _match_yolo(outputs: Mapping[str, np.ndarray]) -> Adapter | str:
    heads = [n for n, a in outputs.items() if np.ndim(a) == 3 and np.shape(a)[0] == 1 and min(np.shape(a)[1:]) >= 5]
    head = _pick(heads, "output", "pred")
    if head is None:
        return "needs one output [1, 4+C, N] or [1, N, 5+C]" + (f" (several: {heads})" if heads else "")
    _, a, b = np.shape(outputs[head])
    style = "v8" if a < b else "v5"
    return Adapter(AdapterKind.YOLO, (("predictions", head),), style)
