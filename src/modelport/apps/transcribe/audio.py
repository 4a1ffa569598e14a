"""Audio decoding through PyAV (FFmpeg): any audio or video container, to 16 kHz mono float32.

The decoding mirrors ``faster_whisper.audio.decode_audio`` (signed 16-bit resampling, then scaled to
[-1, 1)), so a waveform decoded here gives the model exactly what faster-whisper would have given it, but
every way a file can be unusable becomes one typed error: missing, not a media file, no audio stream,
no samples.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import AppError, InvalidInputError, first_line, optional_import

log = logging.getLogger(__name__)

#: Whisper's sampling rate.
SAMPLE_RATE = 16_000
#: Peak amplitude below which audio counts as digital silence (about -80 dBFS).
SILENCE_PEAK = 1e-4
#: File name suffixes taken as media when a directory is expanded (explicit files are always tried).
MEDIA_SUFFIXES = frozenset(
    {
        # audio
        ".wav",
        ".flac",
        ".mp3",
        ".m4a",
        ".aac",
        ".ogg",
        ".oga",
        ".opus",
        ".wma",
        ".aif",
        ".aiff",
        ".amr",
        # video
        ".mp4",
        ".m4v",
        ".mkv",
        ".webm",
        ".mov",
        ".avi",
        ".wmv",
        ".flv",
        ".ts",
        ".mts",
        ".3gp",
        ".mpg",
        ".mpeg",
    }
)
_GROUP_SAMPLES = 500_000


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded waveform and what the container said about its audio stream.

    Attributes:
        samples: mono float32 samples at :data:`SAMPLE_RATE`.
        codec: the audio stream's codec name.
        source_rate: the stream's own sample rate (Hz).
        channels: the stream's channel count.
    """

    samples: np.ndarray
    codec: str
    source_rate: int
    channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return float(self.samples.shape[0]) / SAMPLE_RATE

    @property
    def is_silent(self) -> bool:
        """True when the audio is digital silence (peak below :data:`SILENCE_PEAK`)."""
        return self.samples.size == 0 or float(np.max(np.abs(self.samples))) < SILENCE_PEAK


def _import_av() -> Any:
    return optional_import("av", extra="whisper", what="PyAV")


def decode_audio(path: str | Path) -> DecodedAudio:
    """Decode the first audio stream of a media file to 16 kHz mono float32.

    Args:
        path: an audio or video file (wav, flac, mp3, m4a, mp4, mkv, webm …).

    Returns:
        The decoded waveform with stream metadata.

    Raises:
        InvalidInputError: the file does not exist or is a directory.
        AppError: the file is not readable media, has no audio stream, or holds no audio samples.
    """
    av = _import_av()
    p = Path(path)
    if not p.exists():
        raise InvalidInputError("file not found", path=p, hint="check the path")
    if p.is_dir():
        raise InvalidInputError("is a directory, expected an audio or video file", path=p)
    try:
        container = av.open(str(p), mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise AppError(f"cannot read media (corrupt or not an audio/video file): {first_line(exc)}", path=p) from exc
    with container:
        if not container.streams.audio:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise AppError(
                f"file has no audio stream (streams: {', '.join(kinds)})",
                path=p,
                hint="pass a file with a sound track",
            )
        stream = container.streams.audio[0]
        try:
            samples = _decode_stream(av, container, stream)
        except av.error.FFmpegError as exc:
            raise AppError(f"audio stream cannot be decoded: {first_line(exc)}", path=p) from exc
        codec = stream.codec_context.name or "unknown"
        rate = int(stream.codec_context.sample_rate or 0)
        channels = int(stream.codec_context.channels or 0)
    if samples.size == 0:
        raise AppError("file holds no audio samples (empty audio stream)", path=p)
    log.debug("decoded %s: %.2f s of %s audio", p, samples.size / SAMPLE_RATE, codec)
    return DecodedAudio(samples=samples, codec=codec, source_rate=rate, channels=channels)


def _decode_stream(av: Any, container: Any, stream: Any) -> np.ndarray:
    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    frames = _group_frames(av, _valid_frames(av, container.decode(stream)))
    for frame in frames:
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray().reshape(-1))
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1))
    # PyAV's resampler keeps FFmpeg objects alive until a collection (faster-whisper issue 390).
    del resampler
    gc.collect()
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def _valid_frames(av: Any, frames: Iterator[Any]) -> Iterator[Any]:
    """Skip frames FFmpeg reports as invalid data (a damaged packet should not lose the whole file)."""
    while True:
        try:
            yield next(frames)
        except StopIteration:
            return
        except av.error.InvalidDataError:
            continue


def _group_frames(av: Any, frames: Iterator[Any]) -> Iterator[Any]:
    fifo = av.audio.fifo.AudioFifo()
    for frame in frames:
        frame.pts = None  # timestamps of damaged streams jump; the fifo would refuse them
        fifo.write(frame)
        if fifo.samples >= _GROUP_SAMPLES:
            yield fifo.read()
    if fifo.samples > 0:
        yield fifo.read()
