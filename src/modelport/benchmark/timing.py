"""Latency and throughput measurement.

Feeds are built and checked once, outside the timed region. The loop times each call with
``time.perf_counter_ns`` and does nothing else, so its overhead is one clock read and one list append per
iteration. Percentiles use linear interpolation (numpy's default).

Isolation (``BenchOptions.timeout``, the CLI's ``--timeout``): each runtime may be measured in a child process of
its own (:func:`~modelport.backends.isolation.call_isolated`). The child opens the runner and runs the same loop,
so the child's start-up, its engine import and the model's load are outside the timed region, and the numbers are
those of an in-process run. A runtime that raises, aborts, segfaults or hangs becomes a
:class:`~modelport.backends.isolation.RuntimeFailure` in the report (and loses its rows) while every other runtime
is still measured; when every runtime failed, the first one's error is raised.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeAlias

import numpy as np

from modelport.backends import get_backend, open_runner, parse_backends
from modelport.backends.base import Backend, LoaderOptions
from modelport.backends.isolation import RuntimeFailure, call_isolated
from modelport.backends.runner import Runner, RunnerInfo, RunnerOptions
from modelport.errors import InvalidInputError, ModelportError
from modelport.inputs import default_batch, random_feeds
from modelport.reports.serialize import JsonReport

log = logging.getLogger(__name__)

#: receives one line per step (for a progress display)
Progress: TypeAlias = Callable[[str], None]
#: the file :meth:`BenchReport.write` writes
REPORT_NAME = "bench.json"


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
    """Every (runtime, batch) measured for one model; ``failures``: the runtimes that crashed, timed out or raised
    (they have no results)."""

    model: str
    config: tuple[tuple[str, str], ...]
    results: tuple[BenchResult, ...]
    failures: tuple[RuntimeFailure, ...] = ()

    def write(self, out_dir: str | Path) -> Path:
        """Write ``bench.json`` into ``out_dir`` (created if needed) atomically; returns its path."""
        from modelport.model_io import write_text

        return write_text(Path(out_dir) / REPORT_NAME, self.to_json() + "\n")


@dataclasses.dataclass(frozen=True)
class BenchOptions:
    """Options of :func:`bench`.

    Attributes:
        batches: batch sizes, the leading dim of every input (a dynamic or equal batch dim is needed); None: the
            model's own batch (its fixed leading dim, else 1).
        runner: threads, device and precision of every runtime.
        timing: warmup, iterations or time budget.
        input_shapes: concrete shapes for dynamic dims other than the batch.
        seed: seed of the random feeds.
        loader: how to open sources that need more than a path (TF GraphDef tensors, PyTorch trust).
        timeout: seconds per runtime, each measured in a child process of its own (a crash or hang fails that
            runtime only); None measures them all in this process (a raising runtime is still reported alone).
    """

    batches: tuple[int, ...] | None = None
    runner: RunnerOptions = RunnerOptions()
    timing: BenchConfig = BenchConfig()
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    seed: int = 0
    loader: LoaderOptions = LoaderOptions()
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.batches is not None and (not self.batches or any(b < 1 for b in self.batches)):
            raise InvalidInputError(f"batch sizes must be ≥ 1, got {list(self.batches)}")
        if self.timeout is not None and self.timeout <= 0:
            raise InvalidInputError(
                f"timeout must be > 0 seconds, got {self.timeout:g}", hint="None runs every runtime in this process"
            )


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


def time_parallel(runners: Sequence[Runner], feeds: Mapping[str, np.ndarray], config: BenchConfig) -> tuple[float, int]:
    """Throughput of several runners of one model running at once, each in its own thread (the engines release the
    GIL while they compute): (calls per second over all runners, calls timed).

    Each runner is checked once with ``infer`` and warmed up; then all start together (a barrier) and each runs
    ``config.iterations`` calls, or calls until ``config.seconds`` have passed (at least ``config.min_iterations``).
    The rate is the calls finished divided by the wall time from the start to the last runner's end: what a
    server with that many requests in flight gets. Multiply by the batch for samples per second.
    """
    if not runners:
        raise InvalidInputError("time_parallel needs at least one runner")
    feed_dict = dict(feeds)
    for runner in runners:
        runner.infer(feed_dict)
        for _ in range(config.warmup):
            runner.run_raw(feed_dict)
    start = threading.Barrier(len(runners) + 1)
    counts = [0] * len(runners)
    errors: list[BaseException] = []

    def work(i: int, run: Callable[[dict[str, np.ndarray]], object]) -> None:
        try:
            start.wait()
            deadline = time.perf_counter() + config.seconds
            n = 0
            while (
                (n < config.iterations)
                if config.iterations is not None
                else (time.perf_counter() < deadline or n < config.min_iterations)
            ):
                run(feed_dict)
                n += 1
            counts[i] = n
        except BaseException as exc:  # re-raised in the caller
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, r.run_raw), daemon=True) for i, r in enumerate(runners)]
    for thread in threads:
        thread.start()
    start.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(counts) / wall, sum(counts)


def bench(
    model: str | Path,
    runtimes: Sequence[str] | str = ("onnxruntime",),
    *,
    options: BenchOptions | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    """Measure latency and throughput of ``model`` on each runtime and batch size.

    Args:
        model: model file (any format a chosen runtime reads).
        runtimes: runtime names or aliases (``"onnxruntime,openvino"`` or a list).
        options: batches, runner settings, timing, input shapes, seed, loader options, the per-runtime timeout.
        progress: called with a line per (runtime, batch) as it starts.

    Returns:
        The report; nothing is written (``report.write(out_dir)`` does). A runtime that failed while others were
        measured is in ``report.failures``.

    Raises:
        InvalidInputError: unknown runtime. When every runtime failed, the first one's error: InvalidInputError
            (bad batch or input shape), ModelLoadError, RuntimeUnavailable (see
            :func:`modelport.backends.open_runner`), or ChildCrashed / ChildTimedOut / ChildFailed from its child.
    """
    names = parse_backends(runtimes if isinstance(runtimes, str) else list(runtimes))
    opts = options or BenchOptions()
    results: list[BenchResult] = []
    failures: list[RuntimeFailure] = []
    errors: list[Exception] = []
    for name in names:
        backend = get_backend(name)
        try:
            results += call_isolated(
                _bench_runtime,
                backend,
                str(model),
                opts,
                timeout_s=opts.timeout,
                label=name,
                progress=progress,
                preload=(__name__,),
            )
        except Exception as exc:  # this runtime's failure (ChildFailed, an engine's error …): the others go on
            log.info("%s failed: %s", name, exc, exc_info=not isinstance(exc, ModelportError))
            failures.append(RuntimeFailure.from_error(exc, runtime=name, label=name))
            errors.append(exc)
    if errors and not results:
        raise errors[0]
    cfg_items = tuple((k, str(v)) for k, v in dataclasses.asdict(opts.timing).items())
    return BenchReport(model=str(model), config=cfg_items, results=tuple(results), failures=tuple(failures))


def _bench_runtime(
    backend: Backend, model: str, opts: BenchOptions, progress: Progress | None = None
) -> tuple[BenchResult, ...]:
    """Every batch of ``opts`` on one runtime (what a child process runs: module-level, picklable arguments)."""
    say = progress or (lambda message: None)
    shapes = dict(opts.input_shapes) or None
    results = []
    with open_runner(backend, model, opts.runner, opts.loader) as runner:
        for b in opts.batches if opts.batches is not None else (default_batch(runner.input_specs),):
            feeds = random_feeds(runner.input_specs, shapes, seed=opts.seed, batch=b)
            log.info("timing %s batch %d", backend.name, b)
            say(f"timing {backend.name} at batch {b}")
            stats = time_runner(runner, feeds, opts.timing)
            results.append(
                BenchResult(
                    model=Path(model).name,
                    runtime=backend.name,
                    batch=b,
                    latency=stats,
                    throughput=b / (stats.mean_ms / 1e3),
                    runner=runner.info(),
                )
            )
    return tuple(results)
