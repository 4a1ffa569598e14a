"""Benchmarking: the timing loop, latency statistics, bench() on runtimes, and configuration checks."""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import models
from modelport.benchmark.timing import (
    BenchConfig,
    BenchOptions,
    BenchReport,
    LatencyStats,
    bench,
    time_callable,
    time_parallel,
)
from modelport.errors import InvalidInputError

FAST = BenchConfig(warmup=1, iterations=5)


def fast(**fields: object) -> BenchOptions:
    """Bench options with the short timing (a few runs)."""
    return BenchOptions(timing=FAST, **fields)  # type: ignore[arg-type]


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def test_time_callable_iterations_and_warmup() -> None:
    fn = Counter()
    samples = time_callable(fn, BenchConfig(warmup=3, iterations=7))
    assert fn.calls == 10
    assert len(samples) == 7
    assert all(s >= 0 for s in samples)


def test_time_callable_no_warmup() -> None:
    fn = Counter()
    assert len(time_callable(fn, BenchConfig(warmup=0, iterations=1))) == 1
    assert fn.calls == 1


def test_time_callable_time_budget() -> None:
    fn = Counter()
    t0 = time.perf_counter()
    samples = time_callable(fn, BenchConfig(warmup=2, seconds=0.05, min_iterations=4))
    elapsed = time.perf_counter() - t0
    assert fn.calls == len(samples) + 2
    assert len(samples) >= 4
    assert elapsed >= 0.05  # the budget is spent (no upper bound: a loaded machine may stretch any timing)


def test_time_callable_min_iterations_beats_budget() -> None:
    def slow() -> None:
        time.sleep(0.002)

    samples = time_callable(slow, BenchConfig(warmup=0, seconds=0.001, min_iterations=5))
    assert len(samples) == 5
    assert min(samples) >= 0.002


def test_time_callable_measures_duration() -> None:
    samples = time_callable(lambda: time.sleep(0.01), BenchConfig(warmup=0, iterations=3))
    assert all(0.01 <= s < 0.5 for s in samples)


def test_latency_stats_known_samples() -> None:
    seconds = [0.001, 0.002, 0.003, 0.004, 0.010]
    s = LatencyStats.from_seconds(seconds)
    ms = np.array(seconds) * 1e3
    assert s.n == 5
    assert s.mean_ms == pytest.approx(4.0)
    assert s.min_ms == pytest.approx(1.0) and s.max_ms == pytest.approx(10.0)
    assert s.p50_ms == pytest.approx(3.0)
    assert s.p90_ms == pytest.approx(np.percentile(ms, 90))
    assert s.p90_ms == pytest.approx(7.6)  # linear: 4 + 0.6·(10 − 4)
    assert s.p99_ms == pytest.approx(np.percentile(ms, 99))
    assert s.stdev_ms == pytest.approx(np.std(ms, ddof=1))
    assert s.stdev_ms == pytest.approx(statistics.stdev(ms))


def test_latency_stats_single_sample() -> None:
    s = LatencyStats.from_seconds([0.005])
    assert s.n == 1 and s.stdev_ms == 0.0
    assert s.p50_ms == s.p99_ms == s.mean_ms == pytest.approx(5.0)


@pytest.fixture(scope="module")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.save(models.mlp(), tmp_path_factory.mktemp("bench") / "mlp.onnx")


def test_bench_batches_and_runtimes(mlp_path: Path) -> None:
    report = bench(mlp_path, "onnxruntime,openvino", options=fast(batches=(1, 4)))
    assert isinstance(report, BenchReport)
    assert [(r.runtime, r.batch) for r in report.results] == [
        ("onnxruntime", 1),
        ("onnxruntime", 4),
        ("openvino", 1),
        ("openvino", 4),
    ]
    for r in report.results:
        assert r.model == "mlp.onnx"
        assert r.latency.n == 5
        assert 0 < r.latency.min_ms <= r.latency.p50_ms <= r.latency.max_ms
        assert r.throughput == pytest.approx(r.batch / (r.latency.mean_ms / 1e3))
        assert r.runner.runtime == r.runtime
        assert r.runner.executed_precision == "fp32"
        assert r.label == f"{r.runtime}/fp32"
    assert dict(report.config)["iterations"] == "5"
    assert BenchReport.from_json(report.to_json()) == report


def test_bench_writes_only_through_report_write(mlp_path: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    before = set(mlp_path.parent.iterdir())
    report = bench(mlp_path, "onnxruntime", options=fast(seed=3), progress=lines.append)
    assert set(mlp_path.parent.iterdir()) == before  # bench itself writes nothing
    assert lines == ["timing onnxruntime at batch 1"]
    path = report.write(tmp_path / "out")
    assert path == tmp_path / "out" / "bench.json"
    assert BenchReport.from_json(path.read_text()) == report


def test_bench_counts_runs(mlp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelport.backends.onnxruntime import OnnxRuntimeRunner

    shapes: list[tuple[int, ...]] = []
    original = OnnxRuntimeRunner._run

    def spy(self: OnnxRuntimeRunner, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        shapes.append(feeds["x"].shape)
        return original(self, feeds)

    monkeypatch.setattr(OnnxRuntimeRunner, "_run", spy)
    bench(mlp_path, "onnxruntime", options=BenchOptions(batches=(3,), timing=BenchConfig(warmup=2, iterations=4)))
    # one checked infer, 2 warmup runs and 4 timed runs, all on batch 3
    assert shapes == [(3, 8)] * 7


def test_bench_input_shape_keeps_requested_batch(mlp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelport.backends.onnxruntime import OnnxRuntimeRunner

    shapes: set[tuple[int, ...]] = set()
    original = OnnxRuntimeRunner._run

    def spy(self: OnnxRuntimeRunner, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        shapes.add(feeds["x"].shape)
        return original(self, feeds)

    monkeypatch.setattr(OnnxRuntimeRunner, "_run", spy)
    report = bench(mlp_path, "onnxruntime", options=fast(batches=(2,), input_shapes=(("x", (1, 8)),)))
    assert shapes == {(2, 8)}
    assert report.results[0].batch == 2


def test_bench_fixed_batch_model(tmp_path: Path) -> None:
    path = models.save(models.fixed_batch_mlp(1), tmp_path / "fixed.onnx")
    assert len(bench(path, "onnxruntime", options=fast(batches=(1,))).results) == 1
    with pytest.raises(InvalidInputError, match="fixed batch of 1") as info:
        bench(path, "onnxruntime", options=fast(batches=(4,)))
    assert "cannot run batch 4" in str(info.value)


def test_bench_default_batch_is_the_models(tmp_path: Path, mlp_path: Path) -> None:
    fixed = models.save(models.fixed_batch_mlp(2), tmp_path / "fixed2.onnx")
    report = bench(fixed, "onnxruntime,openvino", options=fast())
    assert [r.batch for r in report.results] == [2, 2]
    assert [r.batch for r in bench(mlp_path, "onnxruntime", options=fast()).results] == [1]


def test_bench_bad_batches(mlp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="batch sizes must be"):
        fast(batches=(0,))
    with pytest.raises(InvalidInputError, match="batch sizes must be"):
        fast(batches=())
    with pytest.raises(InvalidInputError, match="unknown runtime"):
        bench(mlp_path, "tensorrtx", options=fast())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"warmup": -1}, "--warmup must be"),
        ({"iterations": 0}, "--iterations must be"),
        ({"seconds": 0.0}, "--seconds must be"),
        ({"seconds": -1.0}, "--seconds must be"),
    ],
)
def test_bench_config_validation(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        BenchConfig(**kwargs)  # type: ignore[arg-type]


class _FakeRunner:
    """A runner stand-in: ``run_raw`` sleeps (releasing the GIL, as engines do) and counts its calls."""

    def __init__(self, seconds: float = 0.0, fail_after: int | None = None) -> None:
        self.calls = 0
        self.seconds = seconds
        self.fail_after = fail_after

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(feeds)

    def run_raw(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("engine failed")
        time.sleep(self.seconds)
        return list(feeds.values())


def test_time_parallel_counts_every_runners_calls() -> None:
    runners = [_FakeRunner(), _FakeRunner(), _FakeRunner()]
    rate, calls = time_parallel(runners, {"x": np.zeros(2)}, BenchConfig(warmup=2, iterations=7))  # type: ignore[arg-type]
    assert calls == 21
    assert [r.calls for r in runners] == [9, 9, 9]  # warm-up + timed
    assert rate > 0


def test_time_parallel_runs_the_runners_at_once() -> None:
    """The runners' calls overlap: at some moment all four are inside ``run_raw`` (each waits 20 ms there)."""
    lock = threading.Lock()
    inside = [0]
    most = [0]

    class Tracking(_FakeRunner):
        def run_raw(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            try:
                return super().run_raw(feeds)
            finally:
                with lock:
                    inside[0] -= 1

    runners = [Tracking(0.02) for _ in range(4)]
    _, calls = time_parallel(runners, {"x": np.zeros(1)}, BenchConfig(warmup=0, iterations=4))  # type: ignore[arg-type]
    assert calls == 16
    assert most[0] == 4


def test_time_parallel_reraises_a_runners_error_and_needs_runners() -> None:
    with pytest.raises(RuntimeError, match="engine failed"):
        time_parallel(
            [_FakeRunner(), _FakeRunner(fail_after=3)], {"x": np.zeros(1)}, BenchConfig(warmup=0, iterations=5)
        )  # type: ignore[list-item]
    with pytest.raises(InvalidInputError):
        time_parallel([], {}, FAST)
