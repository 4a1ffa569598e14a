"""What ``classify`` takes and returns: its options, the per-image predictions and the accuracy summary.

All are frozen dataclasses; :class:`ClassifyReport` serialises through :class:`~modelport.reports.serialize.JsonReport`
(``to_dict`` / ``to_json`` / ``from_json``). Also here: reading a labels file (one label per line, or a JSON list,
or a JSON object mapping class indices to names) and a model's card (``<model>.json`` beside it, as the shipped
MNIST ConvNet has: ``labels`` and the normalisation ``(x · scale − mean) / std`` on pixels in [0, 1]).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from modelport.data.evaluate import DEFAULT_BATCH
from modelport.errors import AppError
from modelport.inputs import ImagePreprocess, Layout
from modelport.reports.serialize import JsonReport

log = logging.getLogger(__name__)

#: the file :meth:`ClassifyReport.write` writes.
REPORT_NAME = "classify.json"


@dataclasses.dataclass(frozen=True)
class ClassifyOptions:
    """Options of :func:`~modelport.apps.vision.classify.classify`.

    Attributes:
        top_k: predictions kept per image.
        labels: class names by index: a labels file, or the names themselves (None: the model card's, else the
            class index as text).
        preprocess: image size and normalisation (None: the model card's normalisation when the model has one,
            else ``pixels / 255``); the size defaults to the model's input size, the layout and channel count
            always follow the model's input unless ``layout``/``grayscale`` say otherwise.
        layout: the input's layout when the model's shape is ambiguous (None: read from the input's shape).
        grayscale: read images as gray (replicated to three channels for an RGB model).
        batch: images per inference call when the model's batch dimension is dynamic (a fixed batch wins).
        confusions: how many of the most confused class pairs the accuracy summary lists.
    """

    top_k: int = 5
    labels: Path | tuple[str, ...] | None = None
    preprocess: ImagePreprocess | None = None
    layout: Layout | None = None
    grayscale: bool = False
    batch: int = DEFAULT_BATCH
    confusions: int = 5

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise AppError(f"top-k must be ≥ 1, got {self.top_k}")
        if self.batch < 1:
            raise AppError(f"the batch must be ≥ 1 image, got {self.batch}")
        if self.confusions < 0:
            raise AppError(f"confusions must be ≥ 0, got {self.confusions}")


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One of an image's top-k classes: its label, class index and probability."""

    label: str
    index: int
    probability: float


@dataclasses.dataclass(frozen=True)
class ImageResult:
    """One image's top-k predictions (best first) and its share of the inference time.

    Attributes:
        path: the image file.
        predictions: the top-k classes, most probable first (ties: the lower class index first).
        latency_ms: the inference time of the image's batch divided by the images in it.
        true_label: the class folder's label in a labelled tree, else None.
        true_index: its class index, else None.
        correct: whether the top-1 class is the true one (None without a label).
    """

    path: str
    predictions: tuple[Prediction, ...]
    latency_ms: float
    true_label: str | None = None
    true_index: int | None = None
    correct: bool | None = None


@dataclasses.dataclass(frozen=True)
class ClassAccuracy:
    """Top-1 accuracy on one class folder of a labelled tree."""

    label: str
    index: int
    images: int
    top1: float


@dataclasses.dataclass(frozen=True)
class Confusion:
    """``count`` images of ``true_label`` got ``predicted_label`` as top-1 (``share`` of that class's images)."""

    true_label: str
    predicted_label: str
    count: int
    share: float


@dataclasses.dataclass(frozen=True)
class AccuracySummary:
    """Accuracy on a labelled folder tree.

    Attributes:
        images: labelled images scored.
        top1: top-1 accuracy in [0, 1].
        top5: top-5 accuracy (models with more than five classes), else None.
        mapping: how class folder names became class indices, in words.
        per_class: top-1 per class folder, in class-index order.
        confused: the most frequent (true, predicted) pairs that differ, most frequent first.
    """

    images: int
    top1: float
    top5: float | None
    mapping: str
    per_class: tuple[ClassAccuracy, ...]
    confused: tuple[Confusion, ...]


@dataclasses.dataclass(frozen=True)
class ClassifyReport(JsonReport):
    """What ``classify`` found.

    Attributes:
        model: the model that ran, in words (file and runtime; a port output's chosen target).
        runtime: the runtime's name.
        precision: the precision it ran at.
        input: the image input, ``name shape dtype``.
        preprocessing: how pixels became the tensor, in words.
        scores: ``"probabilities"`` when the model outputs them, ``"softmax of logits"`` when classify applied it.
        classes: the number of classes the model scores.
        labels: where the class names came from, in words.
        batch: images per inference call.
        images: the per-image results, in file order.
        accuracy: the accuracy summary of a labelled tree, else None.
        mean_latency_ms: mean inference time per image.
        seconds: wall time of the whole run (reading, preprocessing, inference).
    """

    model: str
    runtime: str
    precision: str
    input: str
    preprocessing: str
    scores: str
    classes: int
    labels: str
    batch: int
    images: tuple[ImageResult, ...]
    accuracy: AccuracySummary | None
    mean_latency_ms: float
    seconds: float

    def write(self, out_dir: str | Path) -> Path:
        """Write ``classify.json`` into ``out_dir`` (created if needed) atomically; returns its path."""
        from modelport.model_io import write_text

        return write_text(Path(out_dir) / REPORT_NAME, self.to_json() + "\n")


# ----------------------------------------------------------------------------------------------------
# Model cards


@dataclasses.dataclass(frozen=True)
class ModelCardInfo:
    """What a model card beside a model tells classify: labels and normalisation (None when it does not say)."""

    path: Path
    labels: tuple[str, ...] | None
    preprocess: ImagePreprocess | None


def find_model_card(candidates: list[Path]) -> ModelCardInfo | None:
    """The first candidate ``<model>.json`` that is a model card (a JSON object with ``labels`` or ``mean``/``std``).

    The card's normalisation applies to pixels scaled to [0, 1] (``scale`` on top of that), so the pixel scale
    becomes ``scale / 255``. Files that are not such an object are skipped.
    """
    for path in candidates:
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if not isinstance(data, dict):
            continue
        card = _card(path, data)
        if card is not None:
            return card
    return None


def _card(path: Path, data: dict[str, Any]) -> ModelCardInfo | None:
    labels = data.get("labels")
    names = tuple(str(v) for v in labels) if isinstance(labels, list) and labels else None
    pre = None
    mean, std = data.get("mean"), data.get("std")
    if isinstance(mean, list) and isinstance(std, list) and mean and len(mean) == len(std):
        try:
            scale = float(data.get("scale", 1.0)) / 255.0
            pre = ImagePreprocess(scale=scale, mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std))
        except (TypeError, ValueError):
            pre = None
        if pre is not None and not all(s > 0 for s in pre.std):
            pre = None
    if names is None and pre is None:
        return None
    log.debug("model card %s: %s labels, normalisation %s", path, len(names or ()), pre)
    return ModelCardInfo(path, names, pre)
