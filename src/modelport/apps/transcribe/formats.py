"""Transcript renderers (txt, srt, vtt, tsv, json) and their atomic writer.

Subtitle cues keep the segments' order; a cue never starts before the previous one, and never ends
before it starts (faster-whisper's batched pipeline can round a chunk's last segment past the next
chunk's start), so the times in srt and vtt files are monotonic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from modelport.apps.transcribe.results import OutputFormat, Segment, TranscriptionResult


def format_timestamp(seconds: float, marker: str = ",") -> str:
    """``HH:MM:SS,mmm`` (srt; ``marker="."`` gives vtt's ``HH:MM:SS.mmm``); negative times clamp to 0."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{marker}{millis:03d}"


def _cues(segments: Sequence[Segment]) -> Iterator[tuple[float, float, str]]:
    """Monotonic (start, end, text) cues of the non-empty segments."""
    last_start = 0.0
    for seg in segments:
        text = seg.text.strip()
        if not text:
            continue
        start = max(seg.start, last_start)
        end = max(seg.end, start)
        last_start = start
        yield start, end, text


def render_txt(result: TranscriptionResult) -> str:
    """One line per segment."""
    return "".join(f"{s.text.strip()}\n" for s in result.segments if s.text.strip())


def render_srt(result: TranscriptionResult) -> str:
    """SubRip subtitles."""
    blocks = [
        f"{i}\n{format_timestamp(start)} --> {format_timestamp(end)}\n{text}\n"
        for i, (start, end, text) in enumerate(_cues(result.segments), start=1)
    ]
    return "\n".join(blocks)


def render_vtt(result: TranscriptionResult) -> str:
    """WebVTT subtitles."""
    blocks = [
        f"{format_timestamp(start, '.')} --> {format_timestamp(end, '.')}\n{text}\n"
        for start, end, text in _cues(result.segments)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def render_tsv(result: TranscriptionResult) -> str:
    """Tab-separated ``start end text`` with integer milliseconds (as openai-whisper writes it)."""
    lines = ["start\tend\ttext"]
    for seg in result.segments:
        text = seg.text.strip().replace("\t", " ")
        if text:
            lines.append(f"{round(seg.start * 1000)}\t{round(seg.end * 1000)}\t{text}")
    return "\n".join(lines) + "\n"


def render_json(result: TranscriptionResult) -> str:
    """The full :class:`TranscriptionResult` as JSON."""
    return result.to_json() + "\n"


RENDERERS: dict[OutputFormat, Callable[[TranscriptionResult], str]] = {
    OutputFormat.TXT: render_txt,
    OutputFormat.SRT: render_srt,
    OutputFormat.VTT: render_vtt,
    OutputFormat.TSV: render_tsv,
    OutputFormat.JSON: render_json,
}


def output_paths(base: Path, formats: Sequence[OutputFormat]) -> list[Path]:
    """The file each format is written to: ``base`` with the format as suffix (``talk`` → ``talk.srt``)."""
    return [base.with_name(f"{base.name}.{fmt.value}") for fmt in formats]


def write_outputs(result: TranscriptionResult, base: Path, formats: Sequence[OutputFormat]) -> list[Path]:
    """Write each format atomically; returns the paths written."""
    from modelport.model_io import write_text  # imports onnx: keep `import modelport.apps.transcribe` light

    return [
        write_text(path, RENDERERS[fmt](result)) for fmt, path in zip(formats, output_paths(base, formats), strict=True)
    ]
