"""``depth``: the disparity of a stereo pair, or of every frame of a side-by-side video, on any runtime.

A pair: both views are read (RGB), checked to be the same size, run through a :class:`DepthEstimator`
(``warmup`` untimed runs, then ``repeat`` timed ones), scored against a ground truth when one is given, and
written — the colourised disparity to ``out``, the left view beside it to ``<stem>_side<suffix>``, the float32
disparity to ``save_disparity`` — only after everything was computed, each file atomically.

A video (``left`` a video file): each frame holds the left view in its left half and the right view in its
right half; :func:`~modelport.apps.vision.video.run_video` decodes, infers and encodes in separate threads with
bounded queues, and every output frame shows the left view next to the colourised disparity with the running
FPS and inference time drawn on it.

Every output path is checked before the model is opened; a failure leaves no file behind.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from modelport.apps.depth.estimator import DepthEstimator, default_stereo_model
from modelport.apps.depth.metrics import disparity_errors, load_ground_truth
from modelport.apps.depth.render import colour_range, colourise, side_by_side
from modelport.apps.depth.results import DepthOptions, DepthReport
from modelport.apps.vision.images import WRITE_SUFFIXES, check_output_path, read_image, write_image
from modelport.apps.vision.model import AppModel, resolve_app_model
from modelport.apps.vision.video import FrameTimes, VideoWriter, draw_overlay, is_video, open_video, run_video
from modelport.errors import AppError
from modelport.model_io import atomic_path

if TYPE_CHECKING:
    from modelport.apps.vision.video import PipelineStats

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
View = str | Path | np.ndarray


def depth(
    model: str | Path | AppModel | None,
    left: View,
    right: View | None = None,
    out: str | Path | None = None,
    *,
    options: DepthOptions | None = None,
    progress: Progress | None = None,
) -> DepthReport:
    """Estimate disparity with a stereo model (see the module docstring).

    Args:
        model: a model file, a ``port`` output directory, an :class:`AppModel`, or None for the shipped network
            (``modelport/assets/census_stereo.onnx``, on ONNX Runtime).
        left: the left view (an image file or an ``H×W×3`` uint8 RGB array), or a side-by-side video file.
        right: the right view (None for a video).
        out: where to write the colourised disparity (``.png``/``.jpg``; a video: ``.mp4``); None writes none.
        options: see :class:`DepthOptions`.
        progress: called with a short line per step.

    Raises:
        AppError: views of different sizes, an unreadable image or video, an output in a missing folder or of the
            wrong kind, a model whose I/O fits no stereo contract, a ground truth of no use.
        InvalidInputError: the model argument cannot be resolved.
    """
    opts = options or DepthOptions()
    say = progress or (lambda _msg: None)
    video = right is None and isinstance(left, (str, Path)) and is_video(Path(left))
    if right is None and not video:
        raise AppError(
            "depth needs a right view, or a side-by-side video as the left argument",
            hint="give LEFT RIGHT images, or --video SIDE_BY_SIDE.mp4",
        )
    targets = _check_outputs(out, opts, video=video)
    app = _resolve(model)
    if video:
        return _run_video(app, Path(left), targets, opts, say)  # type: ignore[arg-type]
    return _run_pair(app, left, right, targets, opts, say)  # type: ignore[arg-type]


def _resolve(model: str | Path | AppModel | None) -> AppModel:
    if isinstance(model, AppModel):
        return model
    return resolve_app_model(default_stereo_model() if model is None else model)


def _check_outputs(out: str | Path | None, opts: DepthOptions, *, video: bool) -> list[Path]:
    """Every path the run will write, checked before any work (see the module docstring)."""
    paths: list[Path] = []
    if out is not None:
        path = check_output_path(Path(out))
        suffix = path.suffix.lower()
        if video and suffix != ".mp4":
            raise AppError(f"a video's output must be .mp4, got {path.name}", hint="name it OUT.mp4", path=path)
        if not video and suffix not in WRITE_SUFFIXES:
            raise AppError(f"cannot write a disparity image as {suffix or 'no suffix'}", hint="use .png", path=path)
        paths.append(path)
        if opts.side_by_side and not video:
            paths.append(side_path(path))
    if opts.save_disparity is not None:
        paths.append(check_output_path(Path(opts.save_disparity)))
    if opts.ground_truth is not None and not Path(opts.ground_truth).is_file():
        raise AppError(f"ground truth {opts.ground_truth} does not exist", path=opts.ground_truth)
    return paths


def side_path(out: Path) -> Path:
    """Where the side-by-side view of ``out`` goes: ``<stem>_side<suffix>`` beside it."""
    return out.with_name(f"{out.stem}_side{out.suffix}")


def _view(value: View, which: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        if value.ndim != 3 or value.shape[2] != 3 or value.dtype != np.uint8:
            raise AppError(f"the {which} view must be H×W×3 uint8 RGB, got {value.dtype} {list(value.shape)}")
        return value
    return read_image(Path(value))


def _run_pair(
    app: AppModel, left_in: View, right_in: View, targets: list[Path], opts: DepthOptions, say: Progress
) -> DepthReport:
    left, right = _view(left_in, "left"), _view(right_in, "right")
    if left.shape != right.shape:
        raise AppError(
            f"left and right views differ in size: left {left.shape[1]}×{left.shape[0]}, "
            f"right {right.shape[1]}×{right.shape[0]}",
            hint="give a rectified pair of the same size",
        )
    shape = (int(left.shape[0]), int(left.shape[1]))
    gt = load_ground_truth(Path(opts.ground_truth), shape) if opts.ground_truth is not None else None
    with DepthEstimator(app, opts) as est:
        say(f"{app.description}: {est.contract.describe()}")
        for _ in range(opts.warmup):
            est(left, right)
        times = []
        for _ in range(opts.repeat):
            disp = est(left, right)
            times.append(est.last_ms)
        run_size, contract = est.run_size(shape), est.contract.describe()
        colour_max = opts.colour_max or opts.max_disp or est.model_range or colour_range(disp)
    errors = disparity_errors(disp, gt) if gt is not None else None
    written = _write_pair(targets, left, disp, float(colour_max), opts)
    return DepthReport(
        model=app.description,
        runtime=app.runtime,
        contract=contract,
        shape=shape,
        run_size=run_size,
        ms_per_pair=float(np.mean(times)),
        disparity_range=(float(disp.min()), float(disp.max())),
        errors=errors,
        outputs=tuple(written),
        frames=1,
    )


def _write_pair(
    targets: list[Path], left: np.ndarray, disp: np.ndarray, colour_max: float, opts: DepthOptions
) -> list[Path]:
    written: list[Path] = []
    images = [t for t in targets if opts.save_disparity is None or t != Path(opts.save_disparity)]
    colour = colourise(disp, colour_max)
    for i, path in enumerate(images):
        written.append(write_image(path, colour if i == 0 else side_by_side(left, colour)))
    if opts.save_disparity is not None:
        written.append(save_npy(Path(opts.save_disparity), disp))
    return written


def save_npy(path: Path, array: np.ndarray) -> Path:
    """Save a float32 array as ``.npy`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(array, dtype=np.float32), allow_pickle=False)
    return path


def _split(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    half = frame.shape[1] // 2
    return frame[:, :half], frame[:, half : 2 * half]


def _run_video(app: AppModel, path: Path, targets: list[Path], opts: DepthOptions, say: Progress) -> DepthReport:
    if opts.ground_truth is not None:
        raise AppError("a ground truth scores a pair, not a video", hint="drop --ground-truth for --video")
    info, frames = open_video(path)
    if info.width < 2 * 16:
        raise AppError(f"{path} is {info.width} px wide: too narrow for a side-by-side pair", path=path)
    half = info.width // 2
    out = targets[0] if targets and targets[0].suffix.lower() == ".mp4" else None
    stack: list[np.ndarray] = []
    lows: list[float] = []
    highs: list[float] = []
    with DepthEstimator(app, opts) as est:
        say(f"{app.description}: {est.contract.describe()}")
        say(f"{path.name}: {half}×{info.height} pairs at {info.fps:.1f} fps")
        colour_max = float(opts.colour_max or opts.max_disp or est.model_range or half / 4)

        def infer(frame: np.ndarray) -> np.ndarray:
            left, right = _split(frame)
            return est(np.ascontiguousarray(left), np.ascontiguousarray(right))

        def render(frame: np.ndarray, disp: np.ndarray, times: FrameTimes) -> np.ndarray:
            view = side_by_side(np.ascontiguousarray(_split(frame)[0]), colourise(disp, colour_max))
            lines = [f"{times.fps:.1f} FPS", f"{app.runtime}: {times.infer_ms:.0f} ms per pair"]
            return draw_overlay(view, lines)

        def on_result(_index: int, disp: np.ndarray) -> None:
            lows.append(float(disp.min()))
            highs.append(float(disp.max()))
            if opts.save_disparity is not None:
                stack.append(disp)

        t0 = time.perf_counter()
        writer = VideoWriter(out, info.fps or 25.0, 2 * half, info.height) if out is not None else None
        stats = _loop(frames, infer, render, writer, on_result, opts)
        run_size = est.run_size((info.height, half))
        contract = est.contract.describe()
    say(f"{stats.frames} frames in {time.perf_counter() - t0:.1f} s")
    written = [out] if out is not None else []
    if opts.save_disparity is not None:
        written.append(save_npy(Path(opts.save_disparity), np.stack(stack)))
    return DepthReport(
        model=app.description,
        runtime=app.runtime,
        contract=contract,
        shape=(info.height, half),
        run_size=run_size,
        ms_per_pair=stats.infer_ms,
        disparity_range=(min(lows, default=0.0), max(highs, default=0.0)),
        outputs=tuple(written),
        frames=stats.frames,
        video=stats,
    )


def _loop(
    frames: Iterator[np.ndarray],
    infer: Callable[[np.ndarray], np.ndarray],
    render: Callable[[np.ndarray, np.ndarray, FrameTimes], np.ndarray],
    writer: VideoWriter | None,
    on_result: Callable[[int, np.ndarray], None],
    opts: DepthOptions,
) -> PipelineStats:
    """Run the video loop; the writer (when there is one) is finished only if every frame went through."""
    if writer is None:
        return run_video(
            frames, infer, None, None, pipelined=opts.pipelined, on_result=on_result, max_frames=opts.max_frames
        )
    with writer:
        return run_video(
            frames, infer, render, writer, pipelined=opts.pipelined, on_result=on_result, max_frames=opts.max_frames
        )
