"""Options of ``quantize``: what to calibrate with, which engine settings, how to measure."""

from __future__ import annotations

import dataclasses
import enum

from modelport.benchmark.timing import BenchConfig
from modelport.errors import InvalidInputError
from modelport.formats import Precision
from modelport.inputs import ImagePreprocess
from modelport.verify.tolerance import Tolerance


class _Choice(str, enum.Enum):
    @classmethod
    def parse(cls, text: str | _Choice) -> _Choice:
        if isinstance(text, cls):
            return text
        try:
            return cls(str(text).strip().lower())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise InvalidInputError(f"unknown {cls.__name__} {text!r}", hint=f"valid: {valid}") from None


class CalibrationMethod(_Choice):
    """How activation ranges are estimated from the calibration data."""

    MINMAX = "minmax"
    ENTROPY = "entropy"
    PERCENTILE = "percentile"


class QuantTypes(_Choice):
    """Activation × weight integer types (ONNX Runtime); ``auto`` picks per CPU and measures."""

    AUTO = "auto"
    U8S8 = "u8s8"
    S8S8 = "s8s8"
    U8U8 = "u8u8"


class Mode(_Choice):
    """Static (calibrated activations) or dynamic (activations quantized at run time; ONNX Runtime only)."""

    STATIC = "static"
    DYNAMIC = "dynamic"


@dataclasses.dataclass(frozen=True)
class QuantizeOptions:
    """Options of :func:`modelport.quantization`.

    Attributes:
        samples: calibration samples (a seeded random subset when the source holds more).
        eval_samples: evaluation samples (None: the whole evaluation source).
        per_channel: per-channel weight scales (ONNX Runtime; OpenVINO/NNCF and TFLite always use them).
        method: activation range estimation (None: the engine's default — MinMax in ONNX Runtime, NNCF's own).
        types: integer types (ONNX Runtime).
        mode: static or dynamic (dynamic: ONNX Runtime, for MatMul-heavy models).
        exclude: op types or node names kept in float.
        max_drop: allowed top-1 drop in percentage points (OpenVINO: drives NNCF's accuracy control).
        preprocess: image normalisation for image and dataset sources (size/layout/channels come from the model).
        batch: batch of the latency measurement (None: the model's fixed batch, else 1).
        threads: runtime threads (None: all cores).
        bench: timing settings for FP32 vs INT8.
        fp16: add an FP16 variant to the comparison.
        int8_io: TFLite: int8 model inputs and outputs instead of float.
        seed: seed of random draws and random data.
        input_shapes: concrete dims for the model's dynamic inputs (``{"x": (1, 3, 224, 224)}`` as pairs); the
            batch dim stays the data's, the others are fixed for calibration, evaluation and timing.
        recover: when the first INT8 build fails its check, try the engine's recovery ladder (other settings,
            then the most error-adding layers kept in float; :mod:`modelport.quantization.recover`).
        recover_seconds: the ladder's time budget: no new candidate starts once this many seconds are spent on it
            (a large model judged on many samples takes minutes per candidate).
        rtol, atol: replace the int8 tolerance policy of the INT8-vs-FP32 output comparison by a plain element-wise
            bound (:meth:`~modelport.verify.tolerance.Tolerance.with_overrides`).
    """

    samples: int = 300
    eval_samples: int | None = None
    per_channel: bool = False
    method: CalibrationMethod | None = None
    types: QuantTypes = QuantTypes.AUTO
    mode: Mode = Mode.STATIC
    exclude: tuple[str, ...] = ()
    max_drop: float | None = None
    preprocess: ImagePreprocess | None = None
    batch: int | None = None
    threads: int | None = None
    bench: BenchConfig = BenchConfig(warmup=5, seconds=1.0)
    fp16: bool = False
    int8_io: bool = False
    seed: int = 0
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    rtol: float | None = None
    atol: float | None = None
    recover: bool = True
    recover_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.recover_seconds <= 0:
            raise InvalidInputError(f"the recovery budget must be > 0 seconds, got {self.recover_seconds:g}")
        if self.samples < 1:
            raise InvalidInputError(f"--samples must be ≥ 1, got {self.samples}")
        if self.eval_samples is not None and self.eval_samples < 1:
            raise InvalidInputError(f"--eval-samples must be ≥ 1, got {self.eval_samples}")
        if self.max_drop is not None and not 0 <= self.max_drop <= 100:
            raise InvalidInputError(f"--max-drop is in percentage points (0‥100), got {self.max_drop}")
        if self.batch is not None and self.batch < 1:
            raise InvalidInputError(f"--batch must be ≥ 1, got {self.batch}")
        for flag, value in (("--rtol", self.rtol), ("--atol", self.atol)):
            if value is not None and value < 0:
                raise InvalidInputError(f"{flag} must be ≥ 0, got {value}")

    @property
    def tolerance(self) -> Tolerance:
        """The INT8-vs-FP32 tolerance: the int8 policy, or the user's element-wise bound."""
        return Tolerance.for_precision(Precision.INT8).with_overrides(rtol=self.rtol, atol=self.atol)
