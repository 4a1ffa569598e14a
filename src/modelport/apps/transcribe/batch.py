"""Transcribing many files with one loaded model: worker pool, resumable outputs, manifest.

Each input's transcripts go to ``out_dir`` under the input's name (files found in a directory keep their
path below it). An input whose every requested output exists and is newer than the input is skipped, so
re-running a batch resumes it. One file failing is recorded in the manifest and the others go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from modelport.apps.transcribe import TranscribeListener, Transcriber
from modelport.apps.transcribe.audio import MEDIA_SUFFIXES
from modelport.apps.transcribe.formats import output_paths, write_outputs
from modelport.apps.transcribe.results import (
    BatchManifest,
    DecodeOptions,
    FileOutcome,
    FileStatus,
    OutputFormat,
    TranscriptionResult,
)
from modelport.errors import InvalidInputError, ModelportError

log = logging.getLogger(__name__)

#: The manifest's file name in the output directory.
MANIFEST_NAME = "transcribe-manifest.json"


@dataclass(frozen=True)
class PlannedInput:
    """One input file and the base path of its outputs (None when no outputs are written)."""

    path: Path
    out_base: Path | None


def plan_inputs(inputs: Sequence[str | Path], out_dir: Path | None) -> list[PlannedInput]:
    """Expand directories (recursively, media files only, sorted) and name each file's outputs.

    Files keep the order given; a path that does not exist is kept so that it fails in its turn. Two inputs
    that would share an output name (``talk.mp4`` and ``talk.wav``) keep their suffix in it
    (``talk.mp4.srt``, ``talk.wav.srt``).

    Raises:
        InvalidInputError: no inputs, or a directory without media files.
    """
    if not inputs:
        raise InvalidInputError("no input files given")
    found: list[tuple[Path, Path]] = []  # (file, name relative to the output directory)
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES)
            if not files:
                raise InvalidInputError("directory holds no audio or video files", path=p)
            pairs = [(f, f.relative_to(p)) for f in files]
        else:
            pairs = [(p, Path(p.name))]
        for f, rel in pairs:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                found.append((f, rel))
    if out_dir is None:
        return [PlannedInput(f, None) for f, _ in found]
    stems = [rel.with_suffix("") for _, rel in found]
    clashes = {s for s in stems if stems.count(s) > 1}
    return [
        PlannedInput(f, out_dir / (rel if stem in clashes else stem))
        for (f, rel), stem in zip(found, stems, strict=True)
    ]


def existing_outputs(item: PlannedInput, formats: Sequence[OutputFormat]) -> list[Path] | None:
    """The outputs when all exist and none is older than the input; else None."""
    if item.out_base is None or not formats or not item.path.is_file():
        return None
    paths = output_paths(item.out_base, formats)
    src_mtime = item.path.stat().st_mtime
    if all(p.is_file() and p.stat().st_mtime >= src_mtime for p in paths):
        return paths
    return None


class _Batch:
    """State shared by the workers of one batch run."""

    def __init__(
        self,
        transcriber: Transcriber,
        options: DecodeOptions,
        formats: tuple[OutputFormat, ...],
        overwrite: bool,
        listener: TranscribeListener,
    ) -> None:
        self.transcriber = transcriber
        self.options = options
        self.formats = formats
        self.overwrite = overwrite
        self.listener = listener
        self.lock = threading.Lock()

    def run_one(self, item: PlannedInput) -> FileOutcome:
        source = str(item.path)
        existing = None if self.overwrite else existing_outputs(item, self.formats)
        if existing is not None:
            self.listener.on_skip(source, existing)
            return FileOutcome(source, FileStatus.SKIPPED, outputs=tuple(map(str, existing)))
        try:
            result = self.transcriber.transcribe_file(item.path, self.options, self.listener)
            written = write_outputs(result, item.out_base, self.formats) if item.out_base is not None else []
        except Exception as exc:  # one file's failure, whatever it is, must not stop the batch
            if not isinstance(exc, ModelportError):
                log.debug("unexpected failure on %s", source, exc_info=True)
            self.listener.on_error(source, exc)
            return FileOutcome(source, FileStatus.FAILED, error=str(exc), error_type=type(exc).__name__)
        self.listener.on_done(source, result, written)
        return done_outcome(result, written, source)


def done_outcome(result: TranscriptionResult, written: Sequence[Path], source: str | None = None) -> FileOutcome:
    """The manifest entry of a transcribed file (its outputs, language, durations)."""
    return FileOutcome(
        source or result.source,
        FileStatus.DONE,
        outputs=tuple(map(str, written)),
        language=result.language,
        duration=round(result.duration, 3),
        elapsed=round(result.elapsed, 3),
        segments=len(result.segments),
    )


def transcribe_files(
    inputs: Sequence[str | Path],
    transcriber: Transcriber,
    options: DecodeOptions | None = None,
    *,
    out_dir: str | Path | None = None,
    formats: Sequence[OutputFormat] = (),
    overwrite: bool = False,
    listener: TranscribeListener | None = None,
) -> BatchManifest:
    """Transcribe files and directories with one model and ``transcriber.workers`` concurrent workers.

    Args:
        inputs: files and directories (searched recursively for media files).
        transcriber: the loaded model.
        options: decoding options, the same for every file.
        out_dir: where transcripts and the manifest go; None writes nothing.
        formats: transcript formats to write (needs ``out_dir``).
        overwrite: transcribe again even when the outputs exist.
        listener: receives progress events (from worker threads when there are several workers).

    Returns:
        The manifest (also written to ``out_dir/transcribe-manifest.json``); ``manifest.ok`` is False when
        any file failed.

    Raises:
        InvalidInputError: bad options (checked before any file is decoded), or nothing to transcribe.
    """
    started = time.perf_counter()
    options = options or DecodeOptions()
    transcriber.check_options(options)
    if formats and out_dir is None:
        raise InvalidInputError("output formats were given without an output directory")
    out = Path(out_dir) if out_dir is not None else None
    batch = _Batch(transcriber, options, tuple(formats), overwrite, listener or TranscribeListener())
    planned = plan_inputs(inputs, out)
    if transcriber.workers == 1:
        outcomes = [batch.run_one(item) for item in planned]
    else:
        with ThreadPoolExecutor(max_workers=transcriber.workers, thread_name_prefix="transcribe") as pool:
            outcomes = list(pool.map(batch.run_one, planned))
    manifest = BatchManifest(
        model=transcriber.model_name,
        device=transcriber.device,
        compute_type=transcriber.compute_type,
        out_dir=str(out) if out is not None else None,
        formats=tuple(formats),
        files=tuple(outcomes),
        elapsed=round(time.perf_counter() - started + transcriber.load_seconds, 3),
        load_seconds=round(transcriber.load_seconds, 3),
    )
    if out is not None:
        from modelport.model_io import write_text

        write_text(out / MANIFEST_NAME, manifest.to_json() + "\n")
    return manifest
