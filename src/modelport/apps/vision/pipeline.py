"""The pipelined frame loop of the vision apps' video mode, and the FPS overlay drawn on the frames.

:func:`run_video` runs three stages joined by bounded queues of ``queue_size`` items — decode (a worker
thread), the app's inference (the calling thread) and render + encode (a worker thread) — so that while the
runtime works on frame *i*, frame *i+1* is decoded and frame *i−1* drawn and encoded. With a bounded queue the
slowest stage sets the pace: when inference is the slowest,

    fps_pipelined ≈ 1 / t_infer   against   fps_sequential = 1 / (t_decode + t_infer + t_render + t_encode),

as long as the cores are not all busy with the runtime's own threads. An exception in any stage sets a stop
event that every stage checks between frames (and while waiting on a queue), all threads are joined, and the
first exception is re-raised in the caller. ``pipelined=False`` runs the same stages in one loop, the
baseline the benchmark compares against. Stage times are measured inside each stage (``perf_counter`` around
that stage's own work, not its queue waits) and reported as means per frame; ``fps`` is frames over wall time.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from modelport.errors import AppError

log = logging.getLogger(__name__)

R = TypeVar("R")

#: frames over which the running FPS and inference time of the overlay are averaged.
RUNNING_WINDOW = 30
_POLL_S = 0.05
#: ASCII stand-ins for the characters of our overlay lines that OpenCV's Hershey font lacks.
_ASCII = {"·": "|", "×": "x", "−": "-", "…": "..."}


class FrameWriter(Protocol):
    """Where rendered frames go: :class:`~modelport.apps.vision.video.VideoWriter`, or anything with ``write``."""

    def write(self, rgb: np.ndarray) -> None:
        """Take one RGB ``uint8`` frame."""


# ----------------------------------------------------------------------------------------------------
# The frame loop


@dataclasses.dataclass(frozen=True)
class FrameTimes:
    """Running values for an overlay: the frame's index, FPS and inference time over the last frames."""

    index: int
    fps: float
    infer_ms: float


@dataclasses.dataclass(frozen=True)
class PipelineStats:
    """How a video ran: mode ("pipelined" | "sequential"), frames, wall seconds, FPS and mean ms per stage."""

    mode: str
    frames: int
    seconds: float
    fps: float
    decode_ms: float
    infer_ms: float
    render_ms: float
    encode_ms: float

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        """Two short lines for an overlay or a report: FPS, then the stage times."""
        return [
            f"{self.fps:.1f} FPS ({self.mode}, {self.frames} frames)",
            f"decode {self.decode_ms:.1f} · infer {self.infer_ms:.1f} · render {self.render_ms:.1f} · "
            f"encode {self.encode_ms:.1f} ms",
        ]


_END = object()


class _Loop(Generic[R]):
    """The three stages of :func:`run_video` and their timers, shared by both modes."""

    def __init__(
        self,
        infer: Callable[[np.ndarray], R],
        render: Callable[[np.ndarray, R, FrameTimes], np.ndarray] | None,
        writer: FrameWriter | None,
        on_result: Callable[[int, R], None] | None,
    ) -> None:
        self.infer, self.render, self.writer, self.on_result = infer, render, writer, on_result
        self.totals = {"decode": 0.0, "infer": 0.0, "render": 0.0, "encode": 0.0}
        self.decoded = self.inferred = self.done = 0
        self.start = time.perf_counter()
        self._finished: collections.deque[float] = collections.deque([self.start], maxlen=RUNNING_WINDOW + 1)
        self._infer_recent: collections.deque[float] = collections.deque(maxlen=RUNNING_WINDOW)

    def decode(self, frames: Iterator[np.ndarray]) -> np.ndarray | None:
        t0 = time.perf_counter()
        frame = next(frames, None)
        if frame is not None:
            self.totals["decode"] += time.perf_counter() - t0
            self.decoded += 1
        return frame

    def run_infer(self, frame: np.ndarray) -> tuple[R, float]:
        t0 = time.perf_counter()
        result = self.infer(frame)
        dt = time.perf_counter() - t0
        self.totals["infer"] += dt
        self.inferred += 1
        return result, dt

    def finish(self, index: int, frame: np.ndarray, result: R, infer_s: float) -> None:
        """Render, encode and report one frame (always in frame order)."""
        self._infer_recent.append(infer_s)
        now = time.perf_counter()
        span = now - self._finished[0]
        count = len(self._finished)  # frames finished within the span, this one included
        times = FrameTimes(
            index, count / span if span > 0 else 0.0, 1000.0 * sum(self._infer_recent) / len(self._infer_recent)
        )
        out = frame
        if self.render is not None:
            t0 = time.perf_counter()
            out = self.render(frame, result, times)
            self.totals["render"] += time.perf_counter() - t0
        if self.writer is not None:
            t0 = time.perf_counter()
            self.writer.write(out)
            self.totals["encode"] += time.perf_counter() - t0
        if self.on_result is not None:
            self.on_result(index, result)
        self._finished.append(time.perf_counter())
        self.done += 1

    def stats(self, mode: str) -> PipelineStats:
        seconds = time.perf_counter() - self.start

        def mean_ms(stage: str, n: int) -> float:
            return 1000.0 * self.totals[stage] / n if n else 0.0

        return PipelineStats(
            mode=mode,
            frames=self.done,
            seconds=seconds,
            fps=self.done / seconds if seconds > 0 else 0.0,
            decode_ms=mean_ms("decode", self.decoded),
            infer_ms=mean_ms("infer", self.inferred),
            render_ms=mean_ms("render", self.done),
            encode_ms=mean_ms("encode", self.done),
        )


def run_video(
    frames: Iterable[np.ndarray],
    infer: Callable[[np.ndarray], R],
    render: Callable[[np.ndarray, R, FrameTimes], np.ndarray] | None,
    writer: FrameWriter | None,
    *,
    pipelined: bool = True,
    queue_size: int = 4,
    on_result: Callable[[int, R], None] | None = None,
    max_frames: int | None = None,
) -> PipelineStats:
    """Run every frame through ``infer``, then ``render`` and ``writer``, pipelined or in one loop.

    Args:
        frames: RGB frames (e.g. the iterator of :func:`open_video`; it is closed when the loop ends).
        infer: the app's work on one frame, pre- and post-processing included; runs in the calling thread.
        render: draws a result onto its frame (given the running :class:`FrameTimes`); None writes the frame as is.
        writer: where the rendered frames go (None: nowhere; the caller closes it).
        pipelined: decode and render+encode in worker threads (True) or everything in one loop (False).
        queue_size: frames each queue holds between two stages.
        on_result: called with ``(index, result)`` for every frame, in frame order, after it is written.
        max_frames: stop after this many frames (None: all).

    Returns:
        The frame count, wall time, FPS and mean per-frame time of each stage.

    Raises:
        Whatever a stage raises (the first one, after every thread has stopped).
    """
    if queue_size < 1:
        raise AppError(f"queue_size must be ≥ 1, got {queue_size}")
    iterator = iter(frames)
    if max_frames is not None:
        iterator = _limited(iterator, max_frames)
    loop = _Loop(infer, render, writer, on_result)
    try:
        if pipelined:
            _run_pipelined(loop, iterator, queue_size)
        else:
            _run_sequential(loop, iterator)
    finally:
        _close(iterator)
    stats = loop.stats("pipelined" if pipelined else "sequential")
    log.debug("video loop: %s", " | ".join(stats.lines()))
    return stats


def _limited(frames: Iterator[np.ndarray], n: int) -> Iterator[np.ndarray]:
    try:
        for i, frame in enumerate(frames):
            if i >= n:
                break
            yield frame
    finally:
        _close(frames)


def _close(frames: Iterator[np.ndarray]) -> None:
    close = getattr(frames, "close", None)
    if close is not None:
        close()


def _run_sequential(loop: _Loop[R], frames: Iterator[np.ndarray]) -> None:
    index = 0
    while (frame := loop.decode(frames)) is not None:
        result, dt = loop.run_infer(frame)
        loop.finish(index, frame, result, dt)
        index += 1


class _Pipe:
    """Bounded queues with a shared stop event: puts and gets give up as soon as any stage fails."""

    def __init__(self, size: int) -> None:
        self.stop = threading.Event()
        self.decoded: queue.Queue[Any] = queue.Queue(maxsize=size)
        self.inferred: queue.Queue[Any] = queue.Queue(maxsize=size)
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(exc)
        self.stop.set()

    def put(self, q: queue.Queue[Any], item: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(self, q: queue.Queue[Any]) -> Any:
        """The next item, or ``_END`` at the end of the stream or once a stage has failed."""
        while not self.stop.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return _END


def _run_pipelined(loop: _Loop[R], frames: Iterator[np.ndarray], queue_size: int) -> None:
    pipe = _Pipe(queue_size)

    def decode_stage() -> None:
        try:
            index = 0
            while not pipe.stop.is_set() and (frame := loop.decode(frames)) is not None:
                if not pipe.put(pipe.decoded, (index, frame)):
                    return
                index += 1
            pipe.put(pipe.decoded, _END)
        except BaseException as exc:
            pipe.fail(exc)
        finally:
            _close(frames)  # in this thread: a generator cannot be closed while another thread runs it

    def render_stage() -> None:
        try:
            while (item := pipe.get(pipe.inferred)) is not _END:
                loop.finish(*item)
        except BaseException as exc:
            pipe.fail(exc)

    workers = [
        threading.Thread(target=decode_stage, name="modelport-video-decode", daemon=True),
        threading.Thread(target=render_stage, name="modelport-video-render", daemon=True),
    ]
    for w in workers:
        w.start()
    try:
        while (item := pipe.get(pipe.decoded)) is not _END:
            index, frame = item
            result, dt = loop.run_infer(frame)
            if not pipe.put(pipe.inferred, (index, frame, result, dt)):
                break
        pipe.put(pipe.inferred, _END)
    except BaseException as exc:
        pipe.fail(exc)
    finally:
        for w in workers:
            w.join()
    if pipe.errors:
        raise pipe.errors[0]


# ----------------------------------------------------------------------------------------------------
# Overlay


def draw_overlay(rgb: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """A copy of ``rgb`` with ``lines`` (FPS, stage times) in white on a dark box at the top left.

    The text scales with the frame (readable from 240 to 2160 pixels high); characters OpenCV's Hershey font
    lacks are replaced (``·`` → ``|``, ``×`` → ``x``, others → a space).
    """
    import cv2

    out = np.ascontiguousarray(rgb).copy()
    if not lines:
        return out
    h = out.shape[0]
    scale = max(0.4, h / 720.0 * 0.7)
    thick = max(1, round(scale * 2))
    texts = ["".join(c if c.isascii() else _ASCII.get(c, " ") for c in line) for line in lines]
    sizes = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0] for t in texts]
    pad = max(4, round(8 * scale))
    line_h = max(s[1] for s in sizes) + pad
    box_w = min(out.shape[1], max(s[0] for s in sizes) + 2 * pad)
    box_h = min(h, line_h * len(texts) + pad)
    region = out[:box_h, :box_w]
    region[:] = (region.astype(np.float32) * 0.35).astype(np.uint8)
    for i, text in enumerate(texts):
        y = pad + line_h * (i + 1) - pad // 2
        cv2.putText(out, text, (pad, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out
