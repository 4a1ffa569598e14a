"""Accuracy recovery: when the first INT8 build fails its check, try the engine's next settings, then keep the
layers that add the most quantization error in float, until the result verifies or the attempts run out.

Random or narrow calibration data, outlier weights folded into one per-tensor scale, and a few layers whose
activations span a huge range (the last projection before a softmax, an attention score) are the usual reasons a
quantized model disagrees with its source. Raw engines hand the user that model and let them find out. Here each
engine module may provide

``recover(job: Job, work: Path, built: Built) -> Iterator[tuple[str, Callable[[], tuple[Built, tuple[str, ...]]]]]``

yielding candidates in the order to try — a label and a function that builds it, returning the candidate (its
files under ``work``, never in the output directory) and the names kept in float — each a little further from
"all INT8" than the last. A candidate that fails to build is recorded and the next one is tried (ONNX Runtime:
per-channel weight scales, then the most error-adding nodes ranked with ORT's QDQ debugger; OpenVINO: NNCF's
mixed preset, then its accuracy-control ranking driven by agreement with FP32). :func:`recover` judges each one on
the evaluation samples with the same verdict as the first build (top-1 drop on labelled data, else the int8
tolerance of the one comparator), stops at the first that verifies and copies its files over the artifact; when
none does, the first build stays and every attempt is in the report. The engine bounds its own attempts
(:data:`MAX_ATTEMPTS` at most are judged), and ``QuantizeOptions.recover_seconds`` the time they may take.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from modelport.errors import ModelportError, first_line
from modelport.model_io import atomic_files
from modelport.quantization.engine import Built, Job
from modelport.quantization.report import RecoveryStep, VariantResult

log = logging.getLogger(__name__)

#: candidates judged at most, whatever an engine yields.
MAX_ATTEMPTS = 8  # ONNX Runtime: per-channel, five float steps, dynamic

Candidate = Callable[[], tuple[Built, tuple[str, ...]]]
Candidates = Iterator[tuple[str, Candidate]]
Verdict = Callable[[Sequence[VariantResult]], tuple[float | None, str, str]]
Evaluate = Callable[[Built], VariantResult]


def recover(
    job: Job,
    work: Path,
    built: Built,
    candidates: Callable[[Job, Path, Built], Candidates],
    evaluate: Evaluate,
    fp32: VariantResult,
    verdict: Verdict,
    budget_s: float = float("inf"),
) -> tuple[Built | None, tuple[RecoveryStep, ...]]:
    """Judge the engine's candidates in order; (the accepted one with its files in the output directory, steps).

    ``evaluate`` runs a candidate on the evaluation samples (metrics and error against FP32, no timing);
    ``verdict`` is the quantize verdict on ``(fp32, candidate)``. No candidate starts once ``budget_s`` seconds are
    spent; the next one is then recorded as ``skipped``.
    """
    steps: list[RecoveryStep] = []
    iterator = candidates(job, work, built)
    start = time.perf_counter()
    for label, make in iterator:
        if len(steps) >= MAX_ATTEMPTS:
            break
        spent = time.perf_counter() - start
        if spent >= budget_s:  # the next candidate would start past the budget: say so in the report
            why = f"not tried: the recovery budget of {budget_s:g} s was spent ({spent:.0f} s)"
            steps.append(RecoveryStep(label, "skipped", why, (), 0.0))
            break
        t0 = time.perf_counter()
        job.say(f"accuracy recovery: {label}")
        kept: tuple[str, ...] = ()
        try:
            cand, kept = make()
            variant = evaluate(cand)
        except ModelportError as exc:  # this candidate could not be built or run: record it, try the next
            steps.append(RecoveryStep(label, "failed", first_line(exc), kept, time.perf_counter() - t0))
            continue
        _, status, reason = verdict((fp32, variant))
        steps.append(RecoveryStep(label, status, reason, kept, time.perf_counter() - t0))
        log.info("%s: recovery %s: %s (%s)", job.src.name, label, status, reason)
        if status == "verified":
            return _adopt(job, built, cand), tuple(steps)
    return None, tuple(steps)


def _adopt(job: Job, built: Built, cand: Built) -> Built:
    """``cand`` with its files copied over the first build's in the output directory (all at once)."""
    names = {f.name: f for f in cand.files}
    with atomic_files(job.out_dir) as staging:
        for target in built.files:
            source = names.get(target.name) or _same_suffix(cand.files, target)
            shutil.copyfile(source, staging / target.name)
    return dataclasses.replace(cand, artifact=built.artifact, files=built.files)


def _same_suffix(files: Sequence[Path], target: Path) -> Path:
    found = [f for f in files if f.suffix == target.suffix]
    if len(found) != 1:
        raise ModelportError(f"recovery candidate has no single {target.suffix} file to replace {target.name}")
    return found[0]
