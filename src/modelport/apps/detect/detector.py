"""The detector: a model on a runtime, its input plan, its output contract, and the NMS cut when it applies.

:class:`Detector` is a context manager that opens the runner(s), recognises the output contract from one
inference on a gray image (names and shapes; :func:`~modelport.apps.detect.adapters.choose_adapter`), and then
turns RGB frames into :class:`~modelport.apps.detect.adapters.Detections` in the frame's pixels. An ONNX model
with a ``NonMaxSuppression`` on a runtime of ``cut_runtimes`` (ONNX Runtime, whose NMS runs on one thread) runs as
the NMS cut (:mod:`modelport.apps.detect.cut`) unless ``in_graph_nms``: the head on the chosen runtime, the host
NMS, the tail on ONNX Runtime. A model written by ``modelport rewrite --rules split-nms`` (a head with its
``.nms.json`` beside it) runs the same way on any runtime.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from modelport.apps.detect.adapters import Adapter, AdapterKind, Detections, PostOptions, choose_adapter
from modelport.apps.detect.cut import NmsCut, cut_before_nms, has_nms
from modelport.apps.detect.labels import COCO_80, COCO_CATEGORIES
from modelport.apps.detect.prep import InputPlan, input_plan, prepare
from modelport.apps.vision.labels import read_labels
from modelport.backends import open_runner
from modelport.backends.runner import RunnerOptions
from modelport.errors import AppError, InvalidInputError
from modelport.inputs import ImagePreprocess, Layout
from modelport.rewriting.nms_split import read_split, sidecar

if TYPE_CHECKING:
    from modelport.apps.vision.model import AppModel
    from modelport.backends.runner import Runner

log = logging.getLogger(__name__)

#: the side of the gray image the contract is recognised on when the input size is free
PROBE_SIDE = 320


@dataclasses.dataclass(frozen=True)
class DetectorOptions:
    """How a detector runs and post-processes.

    Attributes:
        adapter: force this output contract (None: recognise it).
        score: the lowest score reported.
        iou: NMS IoU threshold.
        max_detections: at most this many per image.
        classes: a class-names file (one per line, line i = class id i); None: COCO's for SSD-style models and
            80-class YOLO models.
        anchors: a ``.npy`` of ``N×4`` normalised ``(y0, x0, y1, x1)`` anchors for ``ssd-raw`` encodings.
        preprocess: size/normalisation given by the user (None: the model's input and the adapter decide).
        layout: the input layout when the shape does not tell.
        in_graph_nms: run an ONNX model's own ``NonMaxSuppression`` instead of the NMS cut.
        cut_runtimes: the runtimes whose in-graph NMS is cut out (ONNX Runtime's runs on one thread; OpenVINO's is
            fast, measured in ``benchmarks/results/apps_detect.md``).
        cache_dir: where the NMS cut is cached (None: ``~/.cache/modelport``).
    """

    adapter: AdapterKind | None = None
    score: float = 0.5
    iou: float = 0.45
    max_detections: int = 100
    classes: Path | None = None
    anchors: Path | None = None
    preprocess: ImagePreprocess | None = None
    layout: Layout | None = None
    in_graph_nms: bool = False
    cut_runtimes: tuple[str, ...] = ("onnxruntime",)
    cache_dir: Path | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise InvalidInputError(f"--score must be within 0‥1, got {self.score}")
        if not 0.0 <= self.iou <= 1.0:
            raise InvalidInputError(f"--iou must be within 0‥1, got {self.iou}")
        if self.max_detections < 1:
            raise InvalidInputError(f"--max-detections must be ≥ 1, got {self.max_detections}")


class Detector:
    """A detection model ready to run on RGB frames: ``with Detector(app, options) as d: d(rgb)``.

    Args:
        app: the resolved model argument.
        options: post-processing and preprocessing settings.
    """

    def __init__(self, app: AppModel, options: DetectorOptions | None = None) -> None:
        self.app = app
        self.options = options or DetectorOptions()
        self.cut: NmsCut | None = None
        self.adapter: Adapter | None = None
        self.plan: InputPlan | None = None
        self.names: tuple[str, ...] = ()
        self._runner: Runner | None = None
        self._tail: Runner | None = None
        self._post = PostOptions(
            score=self.options.score,
            iou=self.options.iou,
            max_detections=self.options.max_detections,
            anchors=_load_anchors(self.options.anchors),
        )

    @property
    def nms(self) -> str:
        """Where NMS runs, in words."""
        if self.cut is not None:
            return f"host (the model's {self.cut_name} cut out; head on {self.app.runtime}, tail on onnxruntime)"
        if self.adapter is not None and self.adapter.kind is AdapterKind.SSD_POSTPROCESSED:
            return "in the model"
        return "host"

    cut_name = "NonMaxSuppression"

    def __enter__(self) -> Detector:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Free the runners (idempotent)."""
        for runner in (self._runner, self._tail):
            if runner is not None:
                runner.__exit__(None, None, None)
        self._runner = self._tail = None

    def _open(self) -> None:
        app, opts = self.app, self.options
        path = app.path
        cut = not opts.in_graph_nms and app.runtime in opts.cut_runtimes and path.suffix.lower() == ".onnx"
        split = read_split(sidecar(path)) if path.suffix.lower() == ".onnx" else None
        if split is not None:  # written by `modelport rewrite --rules split-nms`: the path is its head
            self.cut = split
            self._tail = open_runner("onnxruntime", self.cut.tail, RunnerOptions(threads=1)).__enter__()
        elif cut and path.is_file() and has_nms(path):
            self.cut = cut_before_nms(path, opts.cache_dir)
            path = self.cut.head
            self._tail = open_runner("onnxruntime", self.cut.tail, RunnerOptions(threads=1)).__enter__()
        self._runner = open_runner(app.runtime, path, app.options).__enter__()
        self.plan = input_plan(list(self._runner.input_specs), opts.layout)
        size = self.plan.size or (opts.preprocess.size if opts.preprocess else None) or (PROBE_SIDE, PROBE_SIDE)
        gray = np.full((*size, 3), 128, dtype=np.uint8)
        outputs = self.run(prepare(gray, self.plan, letterbox=False, preprocess=opts.preprocess)[0])
        self.adapter = choose_adapter(outputs, forced=opts.adapter, has_anchors=self._post.anchors is not None)
        self.names = self._names(outputs)
        log.info("detect: %s; input %s; NMS %s", self.adapter.describe(), self.plan.describe(), self.nms)

    def _names(self, outputs: dict[str, np.ndarray]) -> tuple[str, ...]:
        if self.options.classes is not None:
            return read_labels(self.options.classes)
        assert self.adapter is not None
        if self.adapter.kind is AdapterKind.YOLO:
            shape = np.shape(outputs[dict(self.adapter.roles)["predictions"]])
            classes = min(shape[1:]) - (4 if self.adapter.style == "v8" else 5)
            return COCO_80 if classes == len(COCO_80) else ()
        return COCO_CATEGORIES

    def run(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        """The model's outputs for one input tensor (through the host NMS when the model is cut)."""
        assert self._runner is not None and self.plan is not None
        out = self._runner.infer({self.plan.name: tensor})
        if self.cut is None:
            return out
        assert self._tail is not None
        return self._tail.infer(self.cut.tail_feeds(out, score_floor=self.options.score))

    def __call__(self, rgb: np.ndarray) -> Detections:
        """The detections in one RGB ``uint8`` frame, boxes in its pixels."""
        assert self.plan is not None and self.adapter is not None
        tensor, geometry = prepare(rgb, self.plan, letterbox=self.adapter.letterbox, preprocess=self.options.preprocess)
        return self.adapter.decode(self.run(tensor), geometry, self._post)


def _load_anchors(path: Path | None) -> np.ndarray | None:
    if path is None:
        return None
    try:
        anchors = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read anchors: {exc}", hint="give a .npy of N×4 anchors", path=path) from exc
    if anchors.ndim not in (2, 3) or anchors.shape[-1] != 4:
        raise AppError(
            f"anchors must be N×4 (y0, x0, y1, x1), got {list(anchors.shape)}", hint="give a .npy of N×4", path=path
        )
    return anchors.reshape(-1, 4).astype(np.float64)
