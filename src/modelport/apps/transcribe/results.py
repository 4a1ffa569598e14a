"""Options, results and manifests of speech transcription: frozen dataclasses and enums.

Every report here round-trips through JSON (``from_json(r.to_json()) == r``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from modelport.errors import InvalidInputError
from modelport.reports.serialize import JsonReport

#: The model used when none is given (resolved through the local Hugging Face cache or the hub).
DEFAULT_MODEL = "small"
#: Audio longer than this (seconds) is transcribed with voice activity detection when VAD is "auto".
VAD_AUTO_SECONDS = 30.0


class Device(str, enum.Enum):
    """Where CTranslate2 runs the model."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class ComputeType(str, enum.Enum):
    """CTranslate2 compute type. AUTO is int8 on CPU and float16 on CUDA."""

    AUTO = "auto"
    INT8 = "int8"
    INT8_FLOAT16 = "int8_float16"
    INT8_FLOAT32 = "int8_float32"
    FLOAT16 = "float16"
    FLOAT32 = "float32"


class Task(str, enum.Enum):
    """Whisper's task: transcribe in the spoken language, or translate to English."""

    TRANSCRIBE = "transcribe"
    TRANSLATE = "translate"


class OutputFormat(str, enum.Enum):
    """A transcript file format."""

    TXT = "txt"
    SRT = "srt"
    VTT = "vtt"
    JSON = "json"
    TSV = "tsv"


class FileStatus(str, enum.Enum):
    """What happened to one input of a batch."""

    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


def parse_formats(text: str | None) -> tuple[OutputFormat, ...]:
    """Parse ``"txt,srt"`` (or ``"all"``) into output formats, in the given order, without duplicates.

    Raises:
        InvalidInputError: an unknown format name.
    """
    if not text:
        return ()
    if text.strip().lower() == "all":
        return tuple(OutputFormat)
    out: list[OutputFormat] = []
    for name in (part.strip().lower() for part in text.split(",")):
        if not name:
            continue
        try:
            fmt = OutputFormat(name)
        except ValueError:
            known = ", ".join(f.value for f in OutputFormat)
            raise InvalidInputError(f"unknown output format {name!r}", hint=f"choose from {known}, all") from None
        if fmt not in out:
            out.append(fmt)
    return tuple(out)


@dataclass(frozen=True)
class ModelOptions:
    """How the Whisper model is found and loaded.

    Attributes:
        model: a CTranslate2 directory, a Transformers Whisper checkpoint directory, or a model name
            (``tiny`` … ``large-v3``, ``distil-*``, or a hub id ``org/name``).
        device: cpu, cuda or auto (cuda when CTranslate2 sees a CUDA device).
        compute_type: CTranslate2 compute type; auto is int8 on CPU, float16 on CUDA.
        threads: CPU threads per worker (0: the available cores divided among the workers).
        workers: model replicas able to decode files concurrently.
        cache_dir: where converted Transformers checkpoints are cached (default: the user cache).
        offline: never contact the hub, even to resolve a name missing from the local cache.
    """

    model: str | Path = DEFAULT_MODEL
    device: Device = Device.AUTO
    compute_type: ComputeType = ComputeType.AUTO
    threads: int = 0
    workers: int = 1
    cache_dir: Path | None = None
    offline: bool = False

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise InvalidInputError(f"threads must be ≥ 0, got {self.threads}")
        if self.workers < 1:
            raise InvalidInputError(f"workers must be ≥ 1, got {self.workers}")


@dataclass(frozen=True)
class DecodeOptions:
    """How each file is decoded.

    Attributes:
        language: an ISO 639-1 code (``en``, ``de`` …), or None to detect it.
        task: transcribe, or translate into English.
        vad: voice activity detection on/off; None turns it on for audio longer than 30 s.
        batch_size: > 1 uses faster-whisper's batched pipeline (speech chunks found by VAD, decoded together);
            it cannot run with VAD off.
        beam_size: beam search width.
        word_timestamps: align each word and record its start, end and probability.
    """

    language: str | None = None
    task: Task = Task.TRANSCRIBE
    vad: bool | None = None
    batch_size: int = 1
    beam_size: int = 5
    word_timestamps: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InvalidInputError(f"batch size must be ≥ 1, got {self.batch_size}")
        if self.beam_size < 1:
            raise InvalidInputError(f"beam size must be ≥ 1, got {self.beam_size}")
        if self.batch_size > 1 and self.vad is False:
            raise InvalidInputError(
                "the batched pipeline cuts the audio at the pauses voice activity detection finds",
                hint="drop --no-vad, or use --batch-size 1",
            )
        if self.language is not None:
            code = self.language.strip().lower()
            object.__setattr__(self, "language", None if code in ("", "auto") else code)

    def use_vad(self, duration: float) -> bool:
        """Whether VAD is used for audio of ``duration`` seconds."""
        return self.vad if self.vad is not None else duration > VAD_AUTO_SECONDS


@dataclass(frozen=True)
class Word(JsonReport):
    """A word with its time span (seconds) and probability."""

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment(JsonReport):
    """One decoded segment: its time span in seconds from the start of the file, and its text."""

    id: int
    start: float
    end: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class TranscriptionResult(JsonReport):
    """The transcript of one file and how it was made.

    Attributes:
        source: the input file (or ``<array>``).
        language: the spoken (or given) language code; None when the audio is silent.
        language_probability: the detector's probability (1.0 when the language was given).
        duration: audio length (s).
        duration_after_vad: speech kept by VAD (s); equals ``duration`` without VAD.
        segments: the decoded segments, in time order.
        elapsed: wall time of decoding the file and transcribing it (s), model load excluded.
        model: the model as given.
        device: the device used.
        compute_type: the compute type used.
        task: transcribe or translate.
        batch_size: 1 for the sequential pipeline.
        vad: whether VAD was used.
        note: a remark for the user (e.g. the audio is silent); empty when none.
    """

    source: str
    language: str | None
    language_probability: float
    duration: float
    duration_after_vad: float
    segments: tuple[Segment, ...]
    elapsed: float
    model: str
    device: str
    compute_type: str
    task: Task = Task.TRANSCRIBE
    batch_size: int = 1
    vad: bool = False
    note: str = ""

    @property
    def text(self) -> str:
        """The whole transcript, segments joined by spaces."""
        return " ".join(s.text for s in self.segments if s.text)

    @property
    def rtf(self) -> float:
        """Real-time factor: elapsed time over audio duration (below 1 is faster than real time)."""
        return self.elapsed / self.duration if self.duration > 0 else float("nan")


@dataclass(frozen=True)
class FileOutcome(JsonReport):
    """One input's entry in a batch manifest.

    Attributes:
        source: the input path as given (or found in a directory).
        status: done, skipped (outputs already there) or failed.
        outputs: the files written (or found, when skipped).
        error: the error message when failed.
        error_type: the error's class name when failed.
        language: the detected language when done.
        duration: audio length (s) when done.
        elapsed: transcription wall time (s) when done.
        segments: number of segments when done.
    """

    source: str
    status: FileStatus
    outputs: tuple[str, ...] = ()
    error: str | None = None
    error_type: str | None = None
    language: str | None = None
    duration: float = 0.0
    elapsed: float = 0.0
    segments: int = 0


@dataclass(frozen=True)
class BatchManifest(JsonReport):
    """Results and failures of transcribing many files with one model.

    Attributes:
        model: the model as given.
        device: the device used.
        compute_type: the compute type used.
        out_dir: where transcripts were written (None: none were).
        formats: the formats written.
        files: one outcome per input, in input order.
        elapsed: total wall time (s), model load included.
        load_seconds: model load time (s).
    """

    model: str
    device: str
    compute_type: str
    out_dir: str | None
    formats: tuple[OutputFormat, ...]
    files: tuple[FileOutcome, ...] = field(default_factory=tuple)
    elapsed: float = 0.0
    load_seconds: float = 0.0

    def count(self, status: FileStatus) -> int:
        """How many inputs ended with ``status``."""
        return sum(1 for f in self.files if f.status is status)

    @property
    def ok(self) -> bool:
        """True when no input failed."""
        return self.count(FileStatus.FAILED) == 0
