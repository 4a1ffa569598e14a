"""Video for the vision apps: decoding to RGB frames, an atomic H.264 writer, and the pipelined frame loop.

Decoding and encoding use PyAV (FFmpeg). :class:`VideoWriter` writes H.264 (libx264, ``yuv420p``) into a
temporary file beside the destination and renames it only when the writer closes cleanly, so a failed run
leaves no half-written video. 4:2:0 chroma needs an even width and height: an odd frame is padded by repeating
its last row/column (``VideoWriter.encoded_size`` says the size written).

The pipelined frame loop (:func:`run_video`) and the overlay are in :mod:`modelport.apps.vision.pipeline`,
re-exported here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from modelport.apps.vision.images import check_output_path
from modelport.apps.vision.pipeline import FrameTimes, FrameWriter, PipelineStats, draw_overlay, run_video
from modelport.errors import AppError, first_line, optional_import

__all__ = [
    "VIDEO_SUFFIXES",
    "FrameTimes",
    "FrameWriter",
    "PipelineStats",
    "VideoInfo",
    "VideoWriter",
    "draw_overlay",
    "is_video",
    "open_video",
    "run_video",
]

log = logging.getLogger(__name__)

#: the suffixes read as videos (lower case).
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"})


def _av() -> Any:
    return optional_import("av", extra="vision", what="PyAV (video decoding and encoding)")


def is_video(path: Path) -> bool:
    """Whether ``path`` names a video, by its suffix."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


# ----------------------------------------------------------------------------------------------------
# Reading


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """A video's stream: its file, frame rate, frame size and frame count (None when the container omits it)."""

    path: Path
    fps: float
    width: int
    height: int
    frames: int | None


def open_video(path: Path, *, threads: int = 0) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    """Open a video and decode its first video stream lazily into RGB ``uint8`` ``H×W×3`` frames.

    The first frame is decoded before returning, so a file that is not a decodable video fails here. The
    container is closed when the iterator is exhausted or closed (``iterator.close()``, or garbage collection).

    Args:
        path: the video file.
        threads: decoder threads (0: FFmpeg's choice, about one per core; fewer leave cores to the runtime).

    Raises:
        AppError: the file is missing, is not a video FFmpeg decodes, has no video stream, or a later frame
            cannot be decoded (raised by the iterator).
        RuntimeUnavailable: PyAV is not installed.
    """
    av = _av()
    path = Path(path)
    if not path.is_file():
        raise AppError(f"video {path} does not exist", hint="give a video file (.mp4, .avi, .mkv …)", path=path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise AppError(f"cannot decode {path}: {first_line(exc)}", hint="give a video FFmpeg reads", path=path) from exc
    try:
        if not container.streams.video:
            raise AppError(f"cannot decode {path}: it has no video stream", path=path)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if threads > 0:
            stream.codec_context.thread_count = threads
        frames = _decode(container, stream, path)
        first = next(frames, None)
        if first is None:
            raise AppError(f"cannot decode {path}: no frame could be decoded", path=path)
    except BaseException:
        container.close()
        raise
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    info = VideoInfo(
        path=path,
        fps=float(rate) if rate else 0.0,
        width=int(first.shape[1]),
        height=int(first.shape[0]),
        frames=int(stream.frames) if stream.frames else None,
    )
    return info, _chain_first(first, frames)


def _decode(container: Any, stream: Any, path: Path) -> Iterator[np.ndarray]:
    """The frames of ``stream`` as RGB arrays; closes the container when done (or closed)."""
    av = _av()
    index = 0
    try:
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")
            index += 1
    except (av.FFmpegError, OSError) as exc:
        raise AppError(f"cannot decode {path} at frame {index}: {first_line(exc)}", path=path) from exc
    finally:
        container.close()


def _chain_first(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    try:
        yield first
        yield from rest
    finally:
        close = getattr(rest, "close", None)
        if close is not None:
            close()


# ----------------------------------------------------------------------------------------------------
# Writing


class VideoWriter:
    """An H.264 mp4 written atomically: ``with VideoWriter(path, fps, w, h) as out: out.write(rgb)``.

    Frames go to a temporary ``.<name>.<random>.partial.mp4`` beside ``path``; a clean exit (or :meth:`close`)
    flushes the encoder and renames it onto ``path``; an exception inside the ``with`` (or :meth:`abort`)
    deletes it. An odd width/height is padded to the next even number (``encoded_size``).

    Args:
        path: the ``.mp4`` to write; its folder must exist.
        fps: frames per second (a float such as 29.97 is kept as a fraction).
        width: frame width in pixels.
        height: frame height in pixels.
        crf: x264 constant rate factor (lower: better and larger; 18–23 looks good).
        preset: x264 speed preset.
        threads: encoder threads (0: x264's choice, about 1.5 per core; fewer leave cores to the runtime).

    Raises:
        AppError: a missing folder, a path that is not ``.mp4``, a non-positive size or rate.
    """

    def __init__(
        self,
        path: Path,
        fps: float,
        width: int,
        height: int,
        *,
        crf: int = 20,
        preset: str = "veryfast",
        threads: int = 0,
    ) -> None:
        self.path = check_output_path(Path(path))
        if self.path.suffix.lower() != ".mp4":
            raise AppError(f"video output must be .mp4, got {self.path.name}", hint="name it OUT.mp4", path=self.path)
        if width < 1 or height < 1 or not fps > 0:
            raise AppError(f"cannot write a {width}×{height} video at {fps} fps", path=self.path)
        self.fps = fps
        self.width = int(width)
        self.height = int(height)
        self.encoded_size = (self.width + self.width % 2, self.height + self.height % 2)
        self.frames = 0
        self._av = av = _av()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".partial.mp4", dir=self.path.parent)
        os.close(fd)
        self._tmp = Path(tmp)
        try:
            self._container = av.open(str(self._tmp), mode="w", format="mp4")
            self._stream = self._container.add_stream(
                "libx264",
                rate=Fraction(fps).limit_denominator(1001),
                options={"crf": str(crf), "preset": preset, "threads": str(max(0, threads))},
            )
            self._stream.width, self._stream.height = self.encoded_size
            self._stream.pix_fmt = "yuv420p"
        except (av.FFmpegError, OSError) as exc:
            self._tmp.unlink(missing_ok=True)
            raise AppError(f"cannot write {self.path}: {first_line(exc)}", path=self.path) from exc
        self._open = True
        if self.encoded_size != (self.width, self.height):
            log.info("%s: %d×%d padded to %d×%d for H.264 4:2:0", self.path, width, height, *self.encoded_size)

    def write(self, rgb: np.ndarray) -> None:
        """Encode one RGB ``uint8`` ``height×width×3`` frame.

        Raises:
            AppError: the writer is closed, or the frame has another size or type.
        """
        if not self._open:
            raise AppError(f"the video writer of {self.path} is closed", path=self.path)
        frame = np.asarray(rgb)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise AppError(
                f"a frame for {self.path} must be {self.height}×{self.width}×3 uint8, got {frame.dtype} "
                f"{list(frame.shape)}",
                path=self.path,
            )
        pad_w, pad_h = self.encoded_size[0] - self.width, self.encoded_size[1] - self.height
        if pad_w or pad_h:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        video_frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        self._container.mux(self._stream.encode(video_frame))
        self.frames += 1

    def close(self) -> Path:
        """Flush the encoder and move the finished file onto ``path`` (idempotent).

        Raises:
            AppError: no frame was written (nothing is left on disk).
        """
        if not self._open:
            return self.path
        if self.frames == 0:
            self.abort()
            raise AppError(f"no frame was written to {self.path}", path=self.path)
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._open = False
            os.chmod(self._tmp, 0o666 & ~_umask())  # mkstemp's 0600 → the mode a plain new file gets
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        log.debug("wrote %s (%d frames)", self.path, self.frames)
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the temporary file; ``path`` is left as it was."""
        if self._open:
            self._open = False
            try:
                self._container.close()
            except Exception as exc:  # the file is deleted anyway
                log.debug("closing %s after an error: %s", self._tmp, first_line(exc))
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _umask() -> int:
    """The process's umask from /proc (setting it to read it would race with other threads); 022 if unknown."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022
