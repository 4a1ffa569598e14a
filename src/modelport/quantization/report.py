"""What ``quantize`` reports: per variant its size, latency, task metrics, error against FP32 and float layers.

The accuracy drop is measured in percentage points of top-1 accuracy: ``drop = 100 · (top1_fp32 − top1_int8)``.
Each variant's task metrics (:class:`~modelport.data.metrics.TaskMetrics`, the type ``port`` reports too) hold
top-1/top-5 on labelled data and, for classifiers, the top-1 agreement with FP32; its ``error`` is its outputs
compared with FP32's on the same samples (max/mean absolute error, cosine similarity …), which judges the variant
when there are no labels.
"""

from __future__ import annotations

import dataclasses

from modelport.backends.runner import RunnerInfo
from modelport.benchmark.timing import LatencyStats
from modelport.data.metrics import TaskMetrics
from modelport.errors import VerificationError
from modelport.formats import Precision
from modelport.reports.environment import Environment
from modelport.reports.serialize import JsonReport
from modelport.verify.compare import Comparison

#: an INT8 variant at most this much faster than FP32 (median ratio) is flagged as "not faster".
SLOWER_FLAG = "slower-than-fp32"


class AccuracyDropError(VerificationError):
    """The quantized model lost more accuracy than allowed (exit code 1, like any verification failure)."""


@dataclasses.dataclass(frozen=True)
class DataInfo(JsonReport):
    """The calibration or evaluation data actually used."""

    source: str
    samples: int
    requested: int | None
    labelled: bool
    synthetic: bool
    preprocessing: str
    warnings: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class LayerSummary(JsonReport):
    """How the runtime executes a model after its own fusions.

    Attributes:
        int8_ops: operations running integer kernels (QLinearConv, QGemm … in ONNX Runtime's optimized graph;
            u8/i8 primitives in OpenVINO's executed graph; int8 ops in a TFLite flatbuffer).
        float_layers: compute layers (convolutions, matrix products) still running in floating point,
            as ``op_type:name``.
        quant_nodes: quantization nodes in the artifact itself (QuantizeLinear/DequantizeLinear, FakeQuantize).
        op_counts: executed op types and how many of each.
    """

    int8_ops: int
    float_layers: tuple[str, ...]
    quant_nodes: int
    op_counts: tuple[tuple[str, int], ...] = ()

    @property
    def quantized(self) -> bool:
        return self.int8_ops > 0 or self.quant_nodes > 0


@dataclasses.dataclass(frozen=True)
class VariantResult(JsonReport):
    """One model variant (fp32 source, int8, fp16) on the runtime.

    Attributes:
        metric: task metrics on the evaluation data (top-1/top-5 with labels; agreement with FP32's top-1).
        error: the outputs against FP32's on the same samples, with the int8 tolerance (None for FP32 itself).
    """

    name: str
    precision: Precision
    artifact: str
    size_bytes: int
    latency: LatencyStats | None = None
    speedup: float | None = None
    metric: TaskMetrics | None = None
    error: Comparison | None = None
    layers: LayerSummary | None = None
    runner: RunnerInfo | None = None
    flags: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Trial(JsonReport):
    """One quantization setting that was built and timed against FP32 while choosing."""

    setting: str
    p50_ms: float
    speedup: float
    int8_ops: int
    float_layers: int
    chosen: bool


@dataclasses.dataclass(frozen=True)
class RecoveryStep(JsonReport):
    """One accuracy-recovery attempt after the first INT8 build failed its check (see :mod:`.recover`).

    Attributes:
        label: what changed ("per-channel weight scales", "kept in float: 3 most sensitive layers" …).
        status: the attempt's verdict ("verified", "mismatch", "drop-exceeded", "failed" when it did not build).
        reason: the verdict's sentence, or why the attempt failed.
        kept_float: the nodes/layers kept in float in this attempt (engine names).
        seconds: time to build and check it.
    """

    label: str
    status: str
    reason: str
    kept_float: tuple[str, ...] = ()
    seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class QuantizeReport(JsonReport):
    """Everything ``quantize`` did and measured.

    ``status`` is "verified" (accuracy drop within ``max_drop``, or outputs within the int8 tolerance when the
    evaluation data has no labels), "drop-exceeded" or "mismatch".
    """

    source: str
    runtime: str
    engine: str
    settings: tuple[tuple[str, str], ...]
    choice: str
    trials: tuple[Trial, ...]
    calibration: DataInfo
    evaluation: DataInfo
    variants: tuple[VariantResult, ...]
    batch: int
    drop: float | None
    max_drop: float | None
    status: str
    reason: str
    environment: Environment
    seconds: float
    recovery: tuple[RecoveryStep, ...] = ()

    @property
    def int8(self) -> VariantResult:
        return next(v for v in self.variants if v.precision is Precision.INT8)

    @property
    def fp32(self) -> VariantResult:
        return next(v for v in self.variants if v.precision is Precision.FP32)

    @property
    def artifact(self) -> str:
        return self.int8.artifact

    @property
    def slower(self) -> bool:
        """True when the INT8 variant is not faster than its FP32 source on this runtime (flagged)."""
        return SLOWER_FLAG in self.int8.flags

    @property
    def passed(self) -> bool:
        return self.status == "verified"

    def __bool__(self) -> bool:
        return self.passed

    def require(self) -> QuantizeReport:
        """Raise AccuracyDropError (or VerificationError) with the measured figures unless verified."""
        if self.status == "drop-exceeded":
            raise AccuracyDropError(
                self.reason, hint="raise --max-drop, calibrate on more real data, or --exclude layers"
            )
        if self.status != "verified":
            raise VerificationError(self.reason)
        return self
