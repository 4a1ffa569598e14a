"""``detect``: objects in images, folders and videos, with any detection model on any runtime.

An image gives one annotated image (``-o out.png``), a folder gives one per image under an output folder
(``-o OUTDIR/``, sub-folders kept), a video gives an annotated H.264 mp4 (``-o out.mp4``) made by the pipelined
video loop (decode, inference and encode in their own threads) with the frame rate drawn on each frame. Every
detection is also returned (and handed to ``on_frame`` as each frame finishes): frame index, label, class id,
score and box ``(x0, y0, x1, y1)`` in pixels of the original image. Output paths are checked before any work,
and each file is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from modelport.apps.detect.adapters import Detections
from modelport.apps.detect.cut import preferred_runtime
from modelport.apps.detect.detector import Detector, DetectorOptions
from modelport.apps.detect.draw import draw_detections
from modelport.apps.detect.labels import label
from modelport.apps.vision.images import WRITE_SUFFIXES, check_output_path, list_images, read_image, write_image
from modelport.apps.vision.model import AppModel, resolve_app_model
from modelport.apps.vision.video import (
    FrameTimes,
    PipelineStats,
    VideoWriter,
    draw_overlay,
    is_video,
    open_video,
    run_video,
)
from modelport.errors import AppError


@dataclasses.dataclass(frozen=True)
class DetectOptions(DetectorOptions):
    """:class:`DetectorOptions` plus how a video runs.

    Attributes:
        pipelined: decode, infer and encode in separate threads (False: one loop, the benchmark's baseline).
        max_frames: stop a video after this many frames (None: all).
        overlay: draw the FPS and stage times on video frames.
    """

    pipelined: bool = True
    max_frames: int | None = None
    overlay: bool = True


@dataclasses.dataclass(frozen=True)
class Detection:
    """One detection: where (frame index, and the image file for image inputs), what, how sure, and the box."""

    frame: int
    label: str
    class_id: int
    score: float
    box: tuple[float, float, float, float]
    image: str = ""

    def to_dict(self) -> dict[str, Any]:
        """``{"frame", "label", "class_id", "score", "box"}`` (and ``"image"`` for image inputs)."""
        d: dict[str, Any] = {
            "frame": self.frame,
            "label": self.label,
            "class_id": self.class_id,
            "score": round(self.score, 6),
            "box": [round(v, 2) for v in self.box],
        }
        if self.image:
            d["image"] = self.image
        return d


@dataclasses.dataclass(frozen=True)
class DetectReport:
    """What ``detect`` did.

    Attributes:
        model: the model argument as resolved (file and runtime).
        runtime: the runtime that ran it.
        adapter: the output contract and its outputs by role.
        input: the model's image input.
        nms: where NMS ran.
        frames: images or video frames processed.
        detections: every detection, in frame order.
        outputs: the files written.
        mean_infer_ms: mean time per frame of pre-processing, inference and post-processing.
        video: the video loop's figures (None for images).
        seconds: wall time of the whole call.
    """

    model: str
    runtime: str
    adapter: str
    input: str
    nms: str
    frames: int
    detections: tuple[Detection, ...]
    outputs: tuple[str, ...]
    mean_infer_ms: float
    video: PipelineStats | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        d = dataclasses.asdict(self)
        d["detections"] = [x.to_dict() for x in self.detections]
        d["outputs"] = list(self.outputs)
        d["video"] = self.video.to_dict() if self.video else None
        return d

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)


FrameCallback = Callable[[int, list[Detection]], None]


def detect(
    model: str | Path | AppModel,
    inputs: str | Path,
    out: str | Path | None = None,
    *,
    options: DetectOptions | None = None,
    progress: Callable[[str], None] | None = None,
    on_frame: FrameCallback | None = None,
) -> DetectReport:
    """Detect objects in an image, a folder of images or a video.

    Args:
        model: a model file, a ``port`` output directory, or an :class:`AppModel`.
        inputs: an image, a folder of images, or a video (by suffix).
        out: where the annotated result goes: a file for an image (or a folder: ``<stem>.png`` in it), a folder
            for a folder (created when its parent exists), an ``.mp4`` for a video; None writes nothing.
        options: thresholds, contract, preprocessing, video settings.
        progress: called with a short line now and then.
        on_frame: called with ``(frame index, detections)`` as each image or frame finishes, in order.

    Raises:
        AppError: an output path in a missing folder, an empty folder, an undecodable image or video, a model
            whose input is not one image or whose outputs fit no contract.
        InvalidInputError: the model argument cannot be resolved, a bad option value.
    """
    t0 = time.perf_counter()
    opts = options or DetectOptions()
    say = progress or (lambda _msg: None)
    source = Path(inputs)
    app = model if isinstance(model, AppModel) else resolve_app_model(model, runtime=preferred_runtime(Path(model)))
    video = source.is_file() and is_video(source)
    target = _check_out(source, Path(out) if out is not None else None, video)
    files = [] if video else list_images(source)  # an empty folder fails before the model loads
    found: list[Detection] = []
    with Detector(app, opts) as detector:
        say(f"detecting with {app.description}: {detector.adapter.describe() if detector.adapter else ''}")
        if video:
            stats, written, frames, infer_ms = _run_video(detector, source, target, opts, found, on_frame)
        else:
            stats = None
            written, frames, infer_ms = _run_images(detector, source, files, target, found, on_frame, say)
        assert detector.adapter is not None and detector.plan is not None
        return DetectReport(
            model=app.description,
            runtime=app.runtime,
            adapter=detector.adapter.describe(),
            input=detector.plan.describe(),
            nms=detector.nms,
            frames=frames,
            detections=tuple(found),
            outputs=tuple(str(p) for p in written),
            mean_infer_ms=infer_ms,
            video=stats,
            seconds=time.perf_counter() - t0,
        )


def _check_out(source: Path, out: Path | None, video: bool) -> Path | None:
    """The output path, checked before any work (see :func:`detect`)."""
    if out is None:
        return None
    if video:
        if out.suffix.lower() != ".mp4":
            raise AppError(f"a video's output must be .mp4, got {out.name}", hint="name it OUT.mp4", path=out)
        return check_output_path(out)
    if source.is_dir() or out.is_dir():
        if out.exists() and not out.is_dir():
            raise AppError(
                f"the output for folder {source} must be a folder, {out} is a file",
                hint="give -o a folder (it is created when its parent exists)",
                path=out,
            )
        if not out.is_dir() and not out.parent.is_dir():
            raise AppError(
                f"cannot write into {out}: the folder {out.parent} does not exist",
                hint="create the folder first, or choose another output folder",
                path=out,
            )
        return out
    if out.suffix.lower() not in WRITE_SUFFIXES:
        raise AppError(f"cannot write an image as {out.name}", hint="name it OUT.png or OUT.jpg", path=out)
    return check_output_path(out)


def _records(index: int, det: Detections, names: tuple[str, ...], image: str = "") -> list[Detection]:
    return [
        Detection(index, label(int(c), names), int(c), float(s), tuple(float(v) for v in b), image)  # type: ignore[arg-type]
        for b, s, c in zip(det.boxes, det.scores, det.class_ids, strict=True)
    ]


def _run_images(
    detector: Detector,
    source: Path,
    files: list[Path],
    target: Path | None,
    found: list[Detection],
    on_frame: FrameCallback | None,
    say: Callable[[str], None],
) -> tuple[list[Path], int, float]:
    written: list[Path] = []
    spent = 0.0
    for index, path in enumerate(files):
        rgb = read_image(path)
        t = time.perf_counter()
        det = detector(rgb)
        spent += time.perf_counter() - t
        records = _records(index, det, detector.names, str(path))
        found.extend(records)
        if on_frame is not None:
            on_frame(index, records)
        if target is not None:
            dest = _image_dest(source, path, target)
            written.append(write_image(dest, draw_detections(rgb, det, detector.names)))
        say(f"{path}: {len(det)} detection(s)")
    return written, len(files), 1000.0 * spent / max(1, len(files))


def _image_dest(source: Path, path: Path, target: Path) -> Path:
    if not target.is_dir() and not source.is_dir():
        return target
    relative = path.relative_to(source) if source.is_dir() else Path(path.name)
    dest = (target / relative).with_suffix(".png")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest


def _run_video(
    detector: Detector,
    source: Path,
    target: Path | None,
    opts: DetectOptions,
    found: list[Detection],
    on_frame: FrameCallback | None,
) -> tuple[PipelineStats, list[Path], int, float]:
    info, frames = open_video(source)
    names = detector.names

    def render(rgb: np.ndarray, det: Detections, times: FrameTimes) -> np.ndarray:
        drawn = draw_detections(rgb, det, names)
        if not opts.overlay:
            return drawn
        return draw_overlay(drawn, [f"{times.fps:.1f} FPS", f"infer {times.infer_ms:.1f} ms ({detector.app.runtime})"])

    def collect(index: int, det: Detections) -> None:
        records = _records(index, det, names)
        found.extend(records)
        if on_frame is not None:
            on_frame(index, records)

    if target is None:
        stats = run_video(
            frames, detector, None, None, pipelined=opts.pipelined, on_result=collect, max_frames=opts.max_frames
        )
        return stats, [], stats.frames, stats.infer_ms
    with VideoWriter(target, info.fps or 25.0, info.width, info.height) as writer:
        stats = run_video(
            frames, detector, render, writer, pipelined=opts.pipelined, on_result=collect, max_frames=opts.max_frames
        )
    return stats, [target], stats.frames, stats.infer_ms
