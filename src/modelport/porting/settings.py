"""The search for a target's fastest verified engine settings.

Starting from ``base`` (what the target was built and verified with), the search changes one setting at a time
and keeps a change only when it is clearly faster (coordinate descent): each dimension below is tried in order,
each of its values on top of the best settings found so far. The candidates, in the order worth trying:

OpenVINO
    * INT8 artifacts: ``INFERENCE_PRECISION_HINT`` ``none`` first — an explicit hint pins the float parts of an INT8
      IR to it, while with none the plugin picks its fastest precision (measured 2× faster on an AMX CPU), then
      ``bf16`` where the CPU has bf16 (AVX512-BF16 or AMX flags); then ``PERFORMANCE_HINT`` THROUGHPUT.
    * Float artifacts: ``PERFORMANCE_HINT`` THROUGHPUT first (the plugin splits the cores into streams; for one
      request at a time LATENCY usually wins, but not for every graph), then ``INFERENCE_PRECISION_HINT`` bf16
      where the CPU has bf16 (about 2× the f32 throughput of its matrix units, at bf16's 8-bit mantissa).
    * Streams are not searched: one synchronous request runs on one stream, more only split the cores (they are
      for throughput, which ``port --batch`` measures with several requests in flight, :func:`parallel_requests`).
ONNX Runtime
    * ``threads``: all logical cores, the physical cores, half of those (hyper-threads share execution units, and
      on a busy machine fewer threads can be faster) — only when ``base.threads`` is None (a user's choice stays).
    * ``execution_mode`` parallel: runs independent branches (multi-head models, detectors' heads) at once.
LiteRT
    * ``threads`` as for ONNX Runtime (the interpreter's own default is a single thread).
    * ``xnnpack`` off: the built-in kernels, sometimes faster for tiny or int8 models.

Settings that may change the outputs (a precision hint whose executed precision differs from the base's, XNNPACK
on/off) must pass ``check`` before they are timed or chosen; without a ``check`` they are not chosen.

Timing: every candidate is timed interleaved with the best settings so far (both loaded; ``rounds`` alternating
chunks of the bench config, in A B B A order), so a change in the machine's load affects both. With :math:`m_c`
and :math:`m_b` the candidates' and the best's medians over those chunks, and :math:`p_b` the best's recorded p50,
the candidate's recorded p50 is on the base's scale:

.. math:: p_c = m_c \\cdot p_b / m_b

A candidate replaces the best only when :math:`p_c < 0.97\\,p_b` (a tie within 3 % keeps the simpler, earlier
settings), so the chosen settings satisfy :math:`0.97\\,p_{chosen} \\le p_t` for every verified trial :math:`t`.
The search stops before a candidate when the time spent plus the last trial's time exceeds ``budget_s``; the
base is always timed.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from modelport.backends import get_backend, open_runner
from modelport.backends.runner import Runner, RunnerOptions
from modelport.benchmark.timing import BenchConfig, time_callable
from modelport.errors import ModelportError, first_line
from modelport.formats import Precision
from modelport.porting.results import SettingTrial

log = logging.getLogger(__name__)

#: a candidate must be this much faster than the best so far to replace it
TIE = 0.97
#: interleaved chunks per pairwise timing
ROUNDS = 3


@dataclasses.dataclass(frozen=True)
class _Dimension:
    """One setting to vary: ``key`` is an engine setting's name or ``threads``; ``numerics``: a change may alter
    the outputs (then ``check`` must pass)."""

    key: str
    values: tuple[str, ...]
    numerics: bool = False


def search_settings(
    runtime: str,
    artifact: Path,
    precision: Precision,
    feeds: Mapping[str, np.ndarray],
    *,
    base: RunnerOptions,
    budget_s: float,
    bench: BenchConfig,
    check: Callable[[RunnerOptions], str | None] | None = None,
) -> tuple[RunnerOptions, tuple[SettingTrial, ...]]:
    """The fastest verified engine settings of ``artifact`` on ``runtime`` (see the module's docstring).

    Args:
        runtime: the backend's name or alias.
        artifact: the model file.
        precision: the artifact's precision (INT8 changes which precision hints are worth trying).
        feeds: the inputs to time with (the latency batch).
        base: the options the artifact was verified with; always timed first.
        budget_s: seconds the search may spend (loading and checking included).
        bench: how long to time each configuration.
        check: verifies a configuration whose outputs may differ; returns why it fails, or None.

    Returns:
        The chosen options (``base`` itself when nothing beats it) and every trial, in the order run.

    Raises:
        ModelportError: the base configuration cannot load or run.
    """
    name = get_backend(runtime).name
    start = time.perf_counter()
    best_runner = open_runner(name, artifact, base, runtime_config=False).__enter__()
    try:
        best_runner.infer(feeds)
        best_p50 = _median_ms(time_callable(_caller(best_runner, feeds), bench))
        base_executed = best_runner.info().executed_precision
        best, tried = base, [_effective(name, base)]
        trials = [SettingTrial(settings=settings_text(base), p50_ms=best_p50)]
        last_cost = time.perf_counter() - start
        for dim in _dimensions(name, base, precision):
            for value in dim.values:
                candidate = _change(best, dim.key, value)
                if _effective(name, candidate) in tried:
                    continue
                if time.perf_counter() - start + last_cost > budget_s:
                    log.info("settings search of %s stopped by its %.0f s budget", artifact.name, budget_s)
                    return _finish(best, trials)
                tried.append(_effective(name, candidate))
                t0 = time.perf_counter()
                trial, runner = _trial(name, artifact, candidate, feeds, bench, dim, check, base_executed,
                                       (best_runner, best_p50))  # fmt: skip
                last_cost = time.perf_counter() - t0
                trials.append(trial)
                if runner is not None and trial.p50_ms is not None and trial.p50_ms < TIE * best_p50:
                    best_runner.__exit__(None, None, None)
                    best, best_runner, best_p50 = candidate, runner, trial.p50_ms
                elif runner is not None:
                    runner.__exit__(None, None, None)
        return _finish(best, trials)
    finally:
        best_runner.__exit__(None, None, None)


def settings_text(options: RunnerOptions) -> tuple[tuple[str, str], ...]:
    """Options as the text pairs of a :class:`SettingTrial`: ``threads`` then the engine settings."""
    threads = str(options.threads) if options.threads is not None else "default"
    return (("threads", threads), *options.engine)


def _finish(best: RunnerOptions, trials: list[SettingTrial]) -> tuple[RunnerOptions, tuple[SettingTrial, ...]]:
    chosen = settings_text(best)
    marked = [dataclasses.replace(t, chosen=True) if t.settings == chosen and not t.error else t for t in trials]
    return best, tuple(marked)


def _trial(
    runtime: str,
    artifact: Path,
    options: RunnerOptions,
    feeds: Mapping[str, np.ndarray],
    bench: BenchConfig,
    dim: _Dimension,
    check: Callable[[RunnerOptions], str | None] | None,
    base_executed: str,
    best: tuple[Runner, float],
) -> tuple[SettingTrial, Runner | None]:
    """Load, check and time one candidate against the best so far; the trial and the loaded runner (None on error)."""
    text = settings_text(options)
    runner: Runner | None = None
    try:
        runner = open_runner(runtime, artifact, options, runtime_config=False).__enter__()
        runner.infer(feeds)
        numerics = dim.numerics and not (runtime == "openvino" and runner.info().executed_precision == base_executed)
        error = _verify(options, check) if numerics else None
        if error:
            runner.__exit__(None, None, None)
            return SettingTrial(settings=text, p50_ms=None, error=error), None
        p50 = _paired_p50(runner, best[0], best[1], feeds, bench)
    except (ModelportError, RuntimeError, ValueError, MemoryError) as exc:
        if runner is not None:
            runner.__exit__(None, None, None)
        log.info("settings %s failed: %s", dict(text), first_line(exc))
        return SettingTrial(settings=text, p50_ms=None, error=first_line(exc)), None
    return SettingTrial(settings=text, p50_ms=p50), runner


def _verify(options: RunnerOptions, check: Callable[[RunnerOptions], str | None] | None) -> str | None:
    if check is None:
        return "its outputs may differ and no check was given"
    error = check(options)
    return f"check failed: {error}" if error else None


def _paired_p50(
    cand: Runner, best: Runner, best_p50: float, feeds: Mapping[str, np.ndarray], bench: BenchConfig
) -> float:
    """The candidate's p50 on the best's scale, timed in interleaved chunks with the best (module docstring)."""
    chunks = _chunks(bench)
    runs = {"cand": _caller(cand, feeds), "best": _caller(best, feeds)}
    samples: dict[str, list[float]] = {"cand": [], "best": []}
    for r, chunk in enumerate(chunks):
        for who in ("best", "cand") if r % 2 == 0 else ("cand", "best"):
            samples[who] += time_callable(runs[who], chunk)
    return _median_ms(samples["cand"]) * best_p50 / _median_ms(samples["best"])


def _chunks(bench: BenchConfig) -> list[BenchConfig]:
    """``bench`` split into :data:`ROUNDS` chunks; later chunks warm up briefly (a pool that slept, caches)."""
    per_iter = math.ceil(bench.iterations / ROUNDS) if bench.iterations is not None else None
    per_min = max(1, math.ceil(bench.min_iterations / ROUNDS))
    first = BenchConfig(bench.warmup, per_iter, bench.seconds / ROUNDS, per_min)
    later = dataclasses.replace(first, warmup=min(bench.warmup, 2))
    return [first, *[later] * (ROUNDS - 1)]


def _caller(runner: Runner, feeds: Mapping[str, np.ndarray]) -> Callable[[], object]:
    run, feed_dict = runner.run_raw, dict(feeds)
    return lambda: run(feed_dict)


def _median_ms(samples: Sequence[float]) -> float:
    return float(statistics.median(samples)) * 1e3


def _change(options: RunnerOptions, key: str, value: str) -> RunnerOptions:
    if key == "threads":
        return dataclasses.replace(options, threads=int(value))
    return options.with_engine(**{key: value})


def _effective(runtime: str, options: RunnerOptions) -> tuple[tuple[str, str], ...]:
    """Options with each engine's defaults filled in, to skip a candidate that is the same as one tried."""
    defaults: dict[str, str] = {}
    if runtime == "openvino":
        hints = {Precision.FP16: "f16", Precision.BF16: "bf16"}
        defaults = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hints.get(options.precision, "f32")}
    elif runtime == "onnxruntime":
        defaults = {"execution_mode": "sequential"}
    elif runtime.startswith("litert"):
        defaults = {"xnnpack": "off" if runtime == "litert-noxnnpack" else "on"}
    merged = {**defaults, **dict(options.engine), "threads": str(options.threads)}
    return tuple(sorted(merged.items()))


def _dimensions(runtime: str, base: RunnerOptions, precision: Precision) -> list[_Dimension]:
    """The settings worth trying on ``runtime``, in order (the module docstring says why)."""
    threads = () if base.threads is not None else tuple(str(n) for n in thread_counts())
    if runtime == "openvino":
        bf16 = cpu_has_bf16()
        throughput = _Dimension("PERFORMANCE_HINT", ("THROUGHPUT",))
        if precision is Precision.INT8:
            hints = ("none", *(("bf16",) if bf16 else ()))
            return [_Dimension("INFERENCE_PRECISION_HINT", hints, numerics=True), throughput]
        return [throughput, *([_Dimension("INFERENCE_PRECISION_HINT", ("bf16",), numerics=True)] if bf16 else [])]
    if runtime == "onnxruntime":
        return [_Dimension("threads", threads), _Dimension("execution_mode", ("parallel",))]
    if runtime.startswith("litert"):
        return [_Dimension("threads", threads), _Dimension("xnnpack", ("off",), numerics=True)]
    return []


def thread_counts() -> tuple[int, ...]:
    """Thread counts worth trying: all logical cores, the physical cores, half of those (distinct, descending)."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    physical = max(1, logical // _threads_per_core())
    return tuple(sorted({logical, physical, max(1, physical // 2)}, reverse=True))


def parallel_requests() -> tuple[tuple[int, int], ...]:
    """Throughput modes worth timing: (requests in flight, threads each) with 2, 4, 8 … requests up to the logical
    cores, the cores split evenly between them (a server's way to fill the cores with small batches, where one
    request's threads stall between layers); empty on one core."""
    logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    modes = []
    requests = 2
    while requests <= min(logical, 8):
        modes.append((requests, max(1, logical // requests)))
        requests *= 2
    return tuple(modes)


def _threads_per_core() -> int:
    """Hardware threads per core from /proc/cpuinfo (``siblings`` / ``cpu cores``); 1 when unknown."""
    fields: dict[str, str] = {}
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        return max(1, int(fields["siblings"]) // int(fields["cpu cores"]))
    except (OSError, KeyError, ValueError, ZeroDivisionError):
        return 1


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16), from the environment's CPU flags."""
    from modelport.reports.environment import capture_environment

    flags = capture_environment().cpu_flags
    return "avx512_bf16" in flags or "amx_bf16" in flags
