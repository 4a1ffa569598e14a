"""What ``port`` is asked to do and what it reports: options, per-target results, the whole report."""

from __future__ import annotations

import dataclasses
from typing import Any

from modelport.backends.runner import RunnerInfo
from modelport.benchmark.timing import BenchConfig, LatencyStats
from modelport.data.metrics import TaskMetrics
from modelport.errors import InvalidInputError
from modelport.formats import Format, Precision
from modelport.inputs import ImagePreprocess
from modelport.reports.environment import Environment
from modelport.reports.serialize import JsonReport
from modelport.verify.compare import Comparison


@dataclasses.dataclass(frozen=True)
class PortOptions:
    """Options of the port pipeline.

    Attributes:
        targets: runtime names (empty: every installed runtime with a device here, :mod:`.defaults`).
        precisions: precisions to try on each runtime (empty: the ones this hardware executes fast); unsupported
            pairs are reported as skipped.
        optimize: run ``modelport optimize`` on the (ONNX) source first.
        input_shapes: concrete shapes for dynamic dims.
        batch: latency batch, for verification feeds and benchmarks (None: the model's fixed batch, else 1).
        throughput_batches: larger batches at which each verified target's throughput is measured.
        threads: runtime threads (None: all cores).
        bench: timing settings.
        seed: seed of random feeds.
        eval_limit: cap on evaluation samples (None: the whole source).
        samples: INT8 calibration samples (a seeded random subset when the source holds more).
        calib: INT8 calibration source (what ``quantize --calib`` reads; None: the evaluation data, else random).
        eval: evaluation source (labelled: top-1/top-5 per target; None: the shipped model's MNIST test split for
            the default model, else random feeds and output agreement only).
        preprocess: image normalisation for image and dataset sources.
        inputs, outputs: tensor names of a frozen GraphDef source.
        trust_remote_code: allow unpickling whole PyTorch modules (runs code from the file).
        budget: seconds per target for the engine-settings search (0: keep each runtime's defaults).
        timeout: seconds per target in its child process (None: no child process, everything in this one).
        quick: fewer samples, shorter timing and search, for a first look in about a minute on small models.
        rtol, atol: explicit tolerance of every target's verification, over each precision's default policy
            (:meth:`~modelport.verify.tolerance.Tolerance.with_overrides`; None: the policy).
    """

    targets: tuple[str, ...] = ()
    precisions: tuple[Precision, ...] = ()
    optimize: bool = True
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    batch: int | None = None
    throughput_batches: tuple[int, ...] = ()
    threads: int | None = None
    bench: BenchConfig = BenchConfig(warmup=10, seconds=1.0)
    seed: int = 0
    eval_limit: int | None = None
    samples: int = 300
    calib: Any = None
    eval: Any = None
    preprocess: ImagePreprocess | None = None
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    trust_remote_code: bool = False
    budget: float = 10.0
    timeout: float | None = 900.0
    quick: bool = False
    rtol: float | None = None
    atol: float | None = None

    def __post_init__(self) -> None:
        if self.batch is not None and self.batch < 1:
            raise InvalidInputError(f"--batch must be ≥ 1, got {self.batch}")
        if any(b < 1 for b in self.throughput_batches):
            raise InvalidInputError(f"--batch sizes must be ≥ 1, got {list(self.throughput_batches)}")
        if self.samples < 1:
            raise InvalidInputError(f"--samples must be ≥ 1, got {self.samples}")
        if self.budget < 0:
            raise InvalidInputError(f"--budget must be ≥ 0 seconds, got {self.budget}")
        if self.timeout is not None and self.timeout <= 0:
            raise InvalidInputError(f"--timeout must be > 0 seconds, got {self.timeout}")


@dataclasses.dataclass(frozen=True)
class OptimizationSummary(JsonReport):
    """What the optimizer did to the source before conversion."""

    nodes_before: int
    nodes_after: int
    passes: tuple[str, ...]
    seconds: float
    max_abs_error: float | None
    rolled_back: tuple[str, ...] = ()  # passes whose result failed the checks: optimized again without them


@dataclasses.dataclass(frozen=True)
class SettingTrial(JsonReport):
    """One set of engine settings timed while searching a target's fastest configuration.

    Attributes:
        settings: the engine settings (``RunnerOptions.engine`` pairs, plus ``threads``), as text pairs.
        p50_ms: median latency at the latency batch.
        chosen: the fastest verified configuration, saved as the target's runtime config.
        error: why this configuration could not run (then no timing).
    """

    settings: tuple[tuple[str, str], ...]
    p50_ms: float | None
    chosen: bool = False
    error: str = ""


@dataclasses.dataclass(frozen=True)
class Throughput(JsonReport):
    """Throughput at one batch size: one request at a time (samples per second from the median latency of the
    whole batch), or the best of several requests in flight at once (``requests`` > 1, ``threads`` each: samples
    finished over wall time; ``p50_ms`` is then the single request's, for reference)."""

    batch: int
    p50_ms: float
    samples_per_s: float
    requests: int = 1
    threads: int | None = None

    @property
    def mode(self) -> str:
        """``batch 8`` or ``batch 8, 2 requests × 1 thread``."""
        if self.requests == 1:
            return f"batch {self.batch}"
        return f"batch {self.batch}, {self.requests} requests × {self.threads} thread{'s' if self.threads != 1 else ''}"


#: the route hop that marks an artifact the measuring machine did not convert itself (:mod:`.prebuilt`).
PREBUILT_HOP = "built once elsewhere (prebuilt.json)"


@dataclasses.dataclass(frozen=True)
class BuiltArtifact(JsonReport):
    """One target's artifact from the build.

    Attributes:
        runtime, precision: the target.
        artifact: the model file, relative to the build folder.
        route: the conversion hops from the source.
        seconds: the conversion's wall time on the building machine.
        size_bytes: the artifact's files.
    """

    runtime: str
    precision: Precision
    artifact: str
    route: tuple[str, ...]
    seconds: float
    size_bytes: int

    @property
    def label(self) -> str:
        return f"{self.runtime}/{self.precision.value}"


@dataclasses.dataclass(frozen=True)
class TargetResult(JsonReport):
    """One (runtime, precision) target: its artifact, verification, speed and accuracy.

    Beyond the measurements: ``route`` (the conversion hops, e.g. ``("tflite → onnx", "onnx → openvino")``),
    ``settings``/``trials`` (the engine settings kept and every configuration timed), ``throughputs`` at the
    larger batches, ``speedup`` (median latency of the naive baseline — ONNX Runtime FP32 with default settings
    — over this target's), ``command`` (a command that rebuilds this target alone) and ``details`` (long text
    that does not belong in a table cell, e.g. an INT8 verdict and its recovery attempts).
    """

    runtime: str
    precision: Precision
    status: str  # "verified", "mismatch", "failed", "skipped"
    reason: str = ""
    artifact: str = ""
    size_bytes: int = 0
    convert_seconds: float = 0.0
    runner: RunnerInfo | None = None
    verification: Comparison | None = None
    latency: LatencyStats | None = None
    throughput: float | None = None
    accuracy: TaskMetrics | None = None
    flags: tuple[str, ...] = ()  # e.g. "slower-than-fp32": an INT8 target never chosen as the fastest
    route: tuple[str, ...] = ()
    settings: tuple[tuple[str, str], ...] = ()
    trials: tuple[SettingTrial, ...] = ()
    throughputs: tuple[Throughput, ...] = ()
    speedup: float | None = None
    command: str = ""
    details: str = ""
    seconds: float = 0.0  # wall time spent on this target (build, verify, search, measure)

    @property
    def label(self) -> str:
        return f"{self.runtime}/{self.precision.value}"

    @property
    def verified(self) -> bool:
        return self.status == "verified"


@dataclasses.dataclass(frozen=True)
class PortReport(JsonReport):
    """Everything ``port`` did."""

    source: str
    source_format: Format
    source_nodes: int
    optimization: OptimizationSummary | None
    batch: int
    feeds: str
    source_accuracy: TaskMetrics | None
    targets: tuple[TargetResult, ...]
    fastest: str | None
    environment: Environment
    seconds: float
    baseline_ms: float | None = None  # naive baseline: ONNX Runtime FP32, default settings, latency batch
    choice: str = ""  # why these runtimes and precisions (chosen for this machine, or as asked)
    route: tuple[str, ...] = ()  # the source's hops to ONNX (non-ONNX sources)
    calibration: str = ""  # what INT8 targets calibrated on
    fastest_throughput: str | None = None  # the verified target with the most samples/s at the largest batch
    interrupted: bool = False  # Ctrl-C: the targets finished so far

    @property
    def passed(self) -> bool:
        return all(t.status in ("verified", "skipped") for t in self.targets)

    def __bool__(self) -> bool:
        return self.passed
