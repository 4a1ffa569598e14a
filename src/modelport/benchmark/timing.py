"""Latency and throughput measurement.

Feeds are built and checked once, outside the timed region. The loop times each call with
``time.perf_counter_ns`` and does nothing else, so its overhead is one clock read and one list append per
iteration. Percentiles use linear interpolation (numpy's default).
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from modelport.backends import open_runner, parse_backends
from modelport.backends.runner import Runner, RunnerInfo, RunnerOptions
from modelport.errors import InvalidInputError
from modelport.inputs import default_batch, random_feeds
from modelport.reports.serialize import JsonReport

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """How long to measure.

    Attributes:
        warmup: untimed runs first (caches, lazy kernel selection).
        iterations: timed runs; when None, run for ``seconds``.
        seconds: time budget when ``iterations`` is None.
        min_iterations: lower bound on timed runs under a time budget.
    """

    warmup: int = 10
    iterations: int | None = None
    seconds: float = 2.0
    min_iterations: int = 10

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise InvalidInputError("--warmup must be ≥ 0")
        if self.iterations is not None and self.iterations < 1:
            raise InvalidInputError("--iterations must be ≥ 1")
        if self.seconds <= 0:
            raise InvalidInputError("--seconds must be > 0")


@dataclasses.dataclass(frozen=True)
class LatencyStats(JsonReport):
    """Latency statistics in milliseconds over ``n`` timed runs."""

    n: int
    mean_ms: float
    stdev_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def from_seconds(cls, samples: Sequence[float]) -> LatencyStats:
        ms = np.asarray(samples, dtype=np.float64) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(
            n=len(ms),
            mean_ms=float(ms.mean()),
            stdev_ms=float(statistics.stdev(ms)) if len(ms) > 1 else 0.0,
            min_ms=float(ms.min()),
            p50_ms=float(p50),
            p90_ms=float(p90),
            p99_ms=float(p99),
            max_ms=float(ms.max()),
        )


@dataclasses.dataclass(frozen=True)
class BenchResult(JsonReport):
    """One model on one runtime at one batch size."""

    model: str
    runtime: str
    batch: int
    latency: LatencyStats
    throughput: float  # samples per second = batch / mean latency
    runner: RunnerInfo

    @property
    def label(self) -> str:
        return f"{self.runtime}/{self.runner.executed_precision}"


@dataclasses.dataclass(frozen=True)
class BenchReport(JsonReport):
    """Every (runtime, batch) measured for one model."""

    model: str
    config: tuple[tuple[str, str], ...]
    results: tuple[BenchResult, ...]


def time_callable(fn: Callable[[], object], config: BenchConfig) -> list[float]:
    """Run ``fn`` ``config.warmup`` times untimed, then time it; returns per-call seconds."""
    for _ in range(config.warmup):
        fn()
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    if config.iterations is not None:
        for _ in range(config.iterations):
            t0 = clock()
            fn()
            append(clock() - t0)
    else:
        deadline = clock() + int(config.seconds * 1e9)
        while clock() < deadline or len(samples) < config.min_iterations:
            t0 = clock()
            fn()
            append(clock() - t0)
    return [s * 1e-9 for s in samples]


def time_runner(runner: Runner, feeds: Mapping[str, np.ndarray], config: BenchConfig) -> LatencyStats:
    """Check the feeds once with ``infer``, then time ``run_raw`` (no per-call checks)."""
    runner.infer(feeds)
    run = runner.run_raw
    feed_dict = dict(feeds)
    return LatencyStats.from_seconds(time_callable(lambda: run(feed_dict), config))


def bench(
    model: str | Path,
    runtimes: Sequence[str] | str = ("onnxruntime",),
    *,
    batches: Sequence[int] | None = None,
    options: RunnerOptions | None = None,
    config: BenchConfig | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
) -> BenchReport:
    """Measure latency and throughput of ``model`` on each runtime and batch size.

    Args:
        model: model file.
        runtimes: runtime names.
        batches: batch sizes (the leading dim of every input; needs a dynamic or matching batch dim); None: the
            model's own batch (its fixed leading dim, else 1).
        options: threads, device, precision.
        config: warmup / iterations / seconds.
        input_shapes: shapes for dynamic dims other than the batch.
        seed: seed of the random feeds.
    """
    names = parse_backends(runtimes if isinstance(runtimes, str) else list(runtimes))
    if batches is not None and (not batches or any(b < 1 for b in batches)):
        raise InvalidInputError("batch sizes must be ≥ 1")
    cfg = config or BenchConfig()
    opts = options or RunnerOptions()
    results = []
    for name in names:
        with open_runner(name, model, opts) as runner:
            for b in batches if batches is not None else [default_batch(runner.input_specs)]:
                feeds = random_feeds(runner.input_specs, input_shapes, seed=seed, batch=b)
                log.info("timing %s batch %d", name, b)
                stats = time_runner(runner, feeds, cfg)
                results.append(
                    BenchResult(
                        model=Path(model).name,
                        runtime=name,
                        batch=b,
                        latency=stats,
                        throughput=b / (stats.mean_ms / 1e3),
                        runner=runner.info(),
                    )
                )
    cfg_items = tuple((k, str(v)) for k, v in dataclasses.asdict(cfg).items())
    return BenchReport(model=str(model), config=cfg_items, results=tuple(results))
