"""Speech transcription with Whisper through faster-whisper (CTranslate2).

:func:`transcribe` is the one-call API for one file or waveform. :class:`Transcriber` keeps a loaded model
for many files; :func:`modelport.apps.transcribe.batch.transcribe_files` runs it over a batch with a worker
pool, resumable outputs and a manifest. Segments are handed to a :class:`TranscribeListener` as they are
decoded, so a caller can show them while the rest of the file is still being transcribed.

Audio is decoded here (PyAV), so every unusable input becomes one typed error before the model runs;
digital silence is reported as such instead of being decoded (Whisper tends to invent words in silence).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from modelport.apps.transcribe.audio import SAMPLE_RATE, DecodedAudio, decode_audio
from modelport.apps.transcribe.models import (
    import_faster_whisper,
    load_whisper,
    model_language_ids,
    resolve_compute_type,
    resolve_device,
    resolve_model,
)
from modelport.apps.transcribe.results import (
    DEFAULT_MODEL,
    BatchManifest,
    ComputeType,
    DecodeOptions,
    Device,
    FileOutcome,
    FileStatus,
    ModelOptions,
    OutputFormat,
    Segment,
    Task,
    TranscriptionResult,
    Word,
    parse_formats,
)
from modelport.errors import InferenceError, InvalidInputError

__all__ = [
    "BatchManifest",
    "ComputeType",
    "DecodeOptions",
    "Device",
    "FileOutcome",
    "FileStatus",
    "ModelOptions",
    "OutputFormat",
    "Segment",
    "StartInfo",
    "Task",
    "TranscribeListener",
    "Transcriber",
    "TranscriptionResult",
    "Word",
    "parse_formats",
    "transcribe",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartInfo:
    """What is known about a file once its language is settled, before the first segment."""

    language: str | None
    language_probability: float
    duration: float
    vad: bool
    silent: bool


class TranscribeListener:
    """Receives progress events; every method does nothing by default.

    With several workers the methods are called from worker threads, concurrently for different files.
    """

    def on_start(self, source: str, info: StartInfo) -> None:
        """A file was decoded and its language detected."""

    def on_segment(self, source: str, segment: Segment) -> None:
        """A segment was decoded."""

    def on_done(self, source: str, result: TranscriptionResult, outputs: list[Path]) -> None:
        """A file is transcribed and its outputs written."""

    def on_skip(self, source: str, outputs: list[Path]) -> None:
        """A file was skipped because its outputs already exist."""

    def on_error(self, source: str, error: Exception) -> None:
        """A file failed; the batch goes on."""


class _Callback(TranscribeListener):
    def __init__(self, on_segment: Callable[[Segment], None]) -> None:
        self._on_segment = on_segment

    def on_segment(self, source: str, segment: Segment) -> None:
        self._on_segment(segment)


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Transcriber:
    """A loaded Whisper model, ready to transcribe files one after another or from several threads.

    Args:
        options: which model, where, at which precision, with how many threads and workers.

    Raises:
        ModelLoadError, InvalidInputError, RuntimeUnavailable: see :mod:`modelport.apps.transcribe.models`.
    """

    def __init__(self, options: ModelOptions | None = None) -> None:
        self.options = options or ModelOptions()
        started = time.perf_counter()
        self.resolved = resolve_model(
            self.options.model, cache_dir=self.options.cache_dir, offline=self.options.offline
        )
        self.device = resolve_device(self.options.device)
        self.compute_type = resolve_compute_type(self.options.compute_type, self.device)
        self.threads = self.options.threads or max(1, _available_cores() // self.options.workers)
        self.model: Any = load_whisper(
            self.resolved, self.device, self.compute_type, self.threads, self.options.workers
        )
        self._language_ids = model_language_ids(self.resolved)
        self.load_seconds = time.perf_counter() - started
        self._closed = threading.Event()
        log.info(
            "loaded %s (%s) on %s/%s in %.2f s",
            self.model_name,
            self.resolved.source.value,
            self.device,
            self.compute_type,
            self.load_seconds,
        )

    @property
    def model_name(self) -> str:
        """The model as the user gave it."""
        return self.resolved.given

    @property
    def is_multilingual(self) -> bool:
        """False for English-only models (``*.en``)."""
        return bool(self.model.model.is_multilingual)

    @property
    def workers(self) -> int:
        """How many files may be transcribed concurrently."""
        return self.options.workers

    def __enter__(self) -> Transcriber:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the model (its memory is freed when the last reference goes)."""
        self._closed.set()
        self.model = None

    def check_options(self, options: DecodeOptions) -> None:
        """Reject options this model cannot honour (before any file is decoded).

        Raises:
            InvalidInputError: a language the model does not know, an English-only model asked for
                another language or for translation, or a model without language tokens asked to detect.
        """
        if self.model is None:
            raise InvalidInputError("the transcriber is closed")
        lang = options.language
        if not self.is_multilingual:
            if lang not in (None, "en"):
                raise InvalidInputError(
                    f"model {self.model_name} is English-only; it cannot transcribe language {lang!r}",
                    hint="use a multilingual model (tiny, base, small …) or --language en",
                )
            if options.task is Task.TRANSLATE:
                raise InvalidInputError(
                    f"model {self.model_name} is English-only; it cannot translate",
                    hint="use a multilingual model",
                )
            return
        if lang is not None and lang not in self.model.supported_languages:
            raise InvalidInputError(f"unknown language code {lang!r}", hint="use an ISO 639-1 code: en, de, ja …")
        if lang is None and not self._language_ids:
            raise InvalidInputError(
                f"model {self.model_name} records no language tokens, so it cannot detect the language",
                hint="pass --language",
            )

    def transcribe_file(
        self,
        path: str | Path,
        options: DecodeOptions | None = None,
        listener: TranscribeListener | None = None,
    ) -> TranscriptionResult:
        """Decode ``path``'s first audio stream and transcribe it; the elapsed time includes decoding.

        Raises:
            InvalidInputError, AppError: the file is missing or unusable (see :func:`decode_audio`).
            InferenceError: the engine failed while decoding.
        """
        options = options or DecodeOptions()
        self.check_options(options)
        started = time.perf_counter()
        audio = decode_audio(path)
        return self._run(audio, options, str(path), started, listener or TranscribeListener())

    def transcribe_audio(
        self,
        samples: np.ndarray,
        options: DecodeOptions | None = None,
        listener: TranscribeListener | None = None,
        source: str = "<array>",
    ) -> TranscriptionResult:
        """Transcribe a mono float32 waveform sampled at 16 kHz."""
        options = options or DecodeOptions()
        self.check_options(options)
        arr = np.ascontiguousarray(samples, dtype=np.float32)
        if arr.ndim != 1 or arr.size == 0:
            raise InvalidInputError(f"expected a non-empty 1-D waveform, got shape {arr.shape}")
        audio = DecodedAudio(samples=arr, codec="pcm_f32", source_rate=SAMPLE_RATE, channels=1)
        return self._run(audio, options, source, time.perf_counter(), listener or TranscribeListener())

    def _run(
        self,
        audio: DecodedAudio,
        options: DecodeOptions,
        source: str,
        started: float,
        listener: TranscribeListener,
    ) -> TranscriptionResult:
        vad = options.use_vad(audio.duration)
        if audio.is_silent:
            listener.on_start(source, StartInfo(None, 0.0, audio.duration, vad, silent=True))
            return self._result(source, audio, options, (), started, info=None, vad=vad)
        try:
            raw_segments, info = self._engine_transcribe(audio, options, vad)
            listener.on_start(
                source,
                StartInfo(info.language, float(info.language_probability), audio.duration, vad, silent=False),
            )
            segments = tuple(self._collect(raw_segments, source, listener))
        except (RuntimeError, ValueError, IndexError) as exc:  # CTranslate2 and faster-whisper failures
            raise InferenceError(f"transcription failed: {exc}", path=source) from exc
        return self._result(source, audio, options, segments, started, info=info, vad=vad)

    def _engine_transcribe(self, audio: DecodedAudio, options: DecodeOptions, vad: bool) -> tuple[Any, Any]:
        common: dict[str, Any] = {
            "language": options.language,
            "task": options.task.value,
            "beam_size": options.beam_size,
            "word_timestamps": options.word_timestamps,
            "vad_filter": vad,
        }
        if options.batch_size == 1:
            return self.model.transcribe(audio.samples, **common)
        pipeline = import_faster_whisper().BatchedInferencePipeline(self.model)
        # without_timestamps stays at its default (True): with timestamps on, faster-whisper 1.2's batched
        # pipeline can drop a chunk's last sentence when the window ends before its closing timestamp
        # (seen here; faster-whisper issue 1427). A batched segment is therefore one VAD chunk (≤ 30 s).
        return pipeline.transcribe(audio.samples, batch_size=options.batch_size, **common)

    def _collect(self, raw_segments: Iterable[Any], source: str, listener: TranscribeListener) -> Iterable[Segment]:
        for index, raw in enumerate(raw_segments):
            if self._closed.is_set():
                raise InferenceError("the transcriber was closed during transcription", path=source)
            segment = _segment(index, raw)
            listener.on_segment(source, segment)
            yield segment

    def _result(
        self,
        source: str,
        audio: DecodedAudio,
        options: DecodeOptions,
        segments: tuple[Segment, ...],
        started: float,
        *,
        info: Any,
        vad: bool,
    ) -> TranscriptionResult:
        return TranscriptionResult(
            source=source,
            language=info.language if info is not None else None,
            language_probability=float(info.language_probability) if info is not None else 0.0,
            duration=audio.duration,
            duration_after_vad=float(info.duration_after_vad) if info is not None else 0.0,
            segments=segments,
            elapsed=time.perf_counter() - started,
            model=self.model_name,
            device=self.device,
            compute_type=self.compute_type,
            task=options.task,
            batch_size=options.batch_size,
            vad=vad,
            note="no speech: the audio is silent" if info is None else "",
        )


def _segment(index: int, raw: Any) -> Segment:
    words = tuple(
        Word(
            start=round(float(w.start), 3),
            end=round(float(w.end), 3),
            word=str(w.word),
            probability=round(float(w.probability), 4),
        )
        for w in (raw.words or ())
    )
    return Segment(
        id=index,
        start=round(float(raw.start), 3),
        end=round(float(raw.end), 3),
        text=str(raw.text).strip(),
        avg_logprob=float(raw.avg_logprob),
        no_speech_prob=float(raw.no_speech_prob),
        compression_ratio=float(raw.compression_ratio),
        words=words,
    )


def transcribe(
    audio: str | Path | np.ndarray,
    model: str | Path | ModelOptions = DEFAULT_MODEL,
    *,
    options: DecodeOptions | None = None,
    progress: TranscribeListener | Callable[[Segment], None] | None = None,
    out_dir: str | Path | None = None,
) -> TranscriptionResult:
    """Transcribe one audio or video file (or a 16 kHz mono waveform) with Whisper.

    Args:
        audio: a media file path, or a float32 waveform at 16 kHz.
        model: a CTranslate2 directory, a Transformers Whisper checkpoint directory or a Whisper name; or
            :class:`ModelOptions` to choose the device, compute type and threads as well.
        options: how to decode (language, task, VAD, batch size, beam size, word timestamps).
        progress: a :class:`TranscribeListener`, or a callable given each segment as soon as it is decoded.
        out_dir: when given, the transcript is written there in every format (txt, srt, vtt, json, tsv),
            named after the audio file (``transcript`` for a waveform); nothing is written otherwise.

    Returns:
        The typed transcript.

    Example:
        >>> result = modelport.transcribe("talk.mp4", "models/whisper-base-ct2", options=DecodeOptions(language="en"))
        >>> for seg in result.segments:
        ...     print(f"[{seg.start:.2f}s -> {seg.end:.2f}s] {seg.text}")
    """
    model_options = model if isinstance(model, ModelOptions) else ModelOptions(model=model)
    decode_options = options or DecodeOptions()
    listener = progress if isinstance(progress, TranscribeListener) or progress is None else _Callback(progress)
    with Transcriber(model_options) as transcriber:
        if isinstance(audio, np.ndarray):
            result = transcriber.transcribe_audio(audio, decode_options, listener)
        else:
            result = transcriber.transcribe_file(audio, decode_options, listener)
    if out_dir is not None:
        from modelport.apps.transcribe.formats import write_outputs

        stem = "transcript" if isinstance(audio, np.ndarray) else Path(audio).stem
        write_outputs(result, Path(out_dir) / stem, tuple(OutputFormat))
    return result
