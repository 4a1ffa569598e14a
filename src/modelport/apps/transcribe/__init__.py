"""Speech transcription with Whisper (faster-whisper / CTranslate2): one package, one module per concern.

- :mod:`.transcriber`: :class:`Transcriber` and the one-call :func:`transcribe`
- :mod:`.audio`: decoding with PyAV
- :mod:`.models`: resolving and loading Whisper models (local CTranslate2 dirs, Transformers checkpoints)
- :mod:`.results`: the option and result dataclasses
- :mod:`.formats`: txt/srt/vtt/json/tsv writers
- :mod:`.batch`: many files with a worker pool, resumable, with a manifest
- :mod:`.bench`: ``bench-transcribe`` (speed, memory, WER)
"""

from __future__ import annotations

from modelport.apps.transcribe.transcriber import (
    BatchManifest,
    ComputeType,
    DecodeOptions,
    Device,
    FileOutcome,
    FileStatus,
    ModelOptions,
    OutputFormat,
    Segment,
    StartInfo,
    Task,
    TranscribeListener,
    Transcriber,
    TranscriptionResult,
    Word,
    parse_formats,
    transcribe,
)

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
