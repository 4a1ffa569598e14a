"""Measuring transcription: real-time factor, peak memory and word error rate.

Word error rate is the word-level Levenshtein distance between reference and hypothesis over the number
of reference words, ``WER = (S + D + I) / N``, after both are normalized the same way (lower case,
punctuation removed, whitespace collapsed). It can exceed 1 when the hypothesis has many insertions.

Peak memory is the process's resident set size sampled every few milliseconds while the runs are going
(``/proc/self/statm`` on Linux), so it is the peak of this process during the measurement — model
included — not of the whole program's life.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import statistics
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from modelport.apps.transcribe import Transcriber
from modelport.apps.transcribe.audio import decode_audio
from modelport.apps.transcribe.results import DecodeOptions, ModelOptions, TranscriptionResult
from modelport.errors import InvalidInputError
from modelport.reports.serialize import JsonReport

log = logging.getLogger(__name__)

_PUNCT = re.compile(r"[^\w\s']|_")


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes inside words kept), Unicode NFKC."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    text = _PUNCT.sub(" ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference`` after :func:`normalize_words`.

    Raises:
        InvalidInputError: the reference has no words.
    """
    ref = normalize_words(reference)
    hyp = normalize_words(hypothesis)
    if not ref:
        raise InvalidInputError("the reference text has no words")
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1] / len(ref)


def current_rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        scale = 1 if platform.system() == "Darwin" else 1024
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


class PeakRssSampler:
    """Context manager sampling this process's resident memory in a thread; ``peak`` is in bytes."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, current_rss_bytes())
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRssSampler:
        self.peak = current_rss_bytes()
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, current_rss_bytes())


@dataclass(frozen=True)
class TranscribeBenchReport(JsonReport):
    """Timings of transcribing one file several times with one configuration.

    Attributes:
        source: the audio file.
        model: the model as given.
        device: the device used.
        compute_type: the compute type used.
        batch_size: 1 for the sequential pipeline.
        beam_size: beam search width.
        vad: whether VAD was used.
        threads: CPU threads.
        duration: audio length (s).
        load_seconds: model load time (s).
        seconds: wall time of each measured run (decoding the file included).
        median: median of ``seconds``.
        rtf: ``median / duration``.
        peak_rss_mb: peak resident memory of the process during load and runs (MiB).
        language: detected language of the last run.
        text: transcript of the last run.
        wer: word error rate against the reference, when one was given.
        machine: CPU model and core count.
    """

    source: str
    model: str
    device: str
    compute_type: str
    batch_size: int
    beam_size: int
    vad: bool
    threads: int
    duration: float
    load_seconds: float
    seconds: tuple[float, ...]
    median: float
    rtf: float
    peak_rss_mb: float
    language: str | None
    text: str
    wer: float | None
    machine: str


def machine_description() -> str:
    """``<CPU model>, <n> cores`` (Linux reads /proc/cpuinfo)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def bench_transcribe(
    audio: str | Path,
    model_options: ModelOptions | None = None,
    decode_options: DecodeOptions | None = None,
    *,
    runs: int = 3,
    warmup: int = 1,
    reference: str | None = None,
) -> TranscribeBenchReport:
    """Load the model once, transcribe ``audio`` ``warmup + runs`` times, and report the measured runs.

    Args:
        audio: the audio or video file.
        model_options: the model and how to load it.
        decode_options: decoding options.
        runs: measured runs (the median is reported).
        warmup: unmeasured runs first.
        reference: the spoken text, for the word error rate.

    Raises:
        InvalidInputError: runs < 1 or warmup < 0; see also :meth:`Transcriber.transcribe_file`.
    """
    if runs < 1 or warmup < 0:
        raise InvalidInputError(f"need runs ≥ 1 and warmup ≥ 0, got runs={runs}, warmup={warmup}")
    decode_options = decode_options or DecodeOptions()
    decode_audio(audio)  # fail on a bad file before loading the model
    seconds: list[float] = []
    with PeakRssSampler() as rss, Transcriber(model_options) as transcriber:
        result: TranscriptionResult | None = None
        for i in range(warmup + runs):
            started = time.perf_counter()
            result = transcriber.transcribe_file(audio, decode_options)
            if i >= warmup:
                seconds.append(time.perf_counter() - started)
            log.info("run %d: %.3f s", i, time.perf_counter() - started)
    assert result is not None
    median = statistics.median(seconds)
    return TranscribeBenchReport(
        source=str(audio),
        model=transcriber.model_name,
        device=transcriber.device,
        compute_type=transcriber.compute_type,
        batch_size=decode_options.batch_size,
        beam_size=decode_options.beam_size,
        vad=result.vad,
        threads=transcriber.threads,
        duration=round(result.duration, 3),
        load_seconds=round(transcriber.load_seconds, 3),
        seconds=tuple(round(s, 4) for s in seconds),
        median=round(median, 4),
        rtf=round(median / result.duration, 5),
        peak_rss_mb=round(rss.peak / 2**20, 1),
        language=result.language,
        text=result.text,
        wer=round(word_error_rate(reference, result.text), 4) if reference is not None else None,
        machine=machine_description(),
    )
