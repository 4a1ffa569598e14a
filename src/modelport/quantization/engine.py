"""What every INT8 engine module under :mod:`modelport.quantization` implements, and the job it is handed.

A backend names its quantizer module in its descriptor (``Backend.quantizer``, e.g.
``"modelport.quantization.ort"``). The module provides:

- ``build(job: Job, work: Path) -> Built`` — make the INT8 artifact in ``job.out_dir`` (``work`` is scratch space);
- ``layer_summary(artifact: Path, threads: int | None = None) -> LayerSummary`` — which layers run in integer;
- optionally ``runner(path, precision, threads) -> Runner`` — how to run its FP32/INT8 artifacts when the plain
  backend runner is not enough (full-integer TFLite with float I/O), and ``source_specs(src, threads)`` — the
  model's inputs when the source is not a format the backend runs (a SavedModel quantized for LiteRT).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from modelport.data.samples import SampleSet
from modelport.inputs import TensorSpec
from modelport.quantization.options import QuantizeOptions
from modelport.quantization.report import DataInfo, Trial
from modelport.reports.environment import Environment

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Job:
    """Everything the engines need, resolved once."""

    src: Path
    runtime: str
    out_dir: Path
    name: str
    options: QuantizeOptions
    env: Environment
    specs: tuple[TensorSpec, ...]
    batch: int
    fixed: bool
    calib: SampleSet
    calib_info: DataInfo
    evaluation: SampleSet
    eval_info: DataInfo
    say: Progress
    whole: bool = False  # each sample is one whole feed (:mod:`modelport.quantization.feeds`)


@dataclasses.dataclass(frozen=True)
class Built:
    """An engine's result: the INT8 artifact and how it was made."""

    artifact: Path
    files: tuple[Path, ...]
    engine: str
    settings: tuple[tuple[str, str], ...]
    choice: str
    trials: tuple[Trial, ...] = ()
    reference: Path | None = None  # the FP32 model on this runtime when it is not the source (TFLite)
    fp16: Path | None = None  # an FP16 model the engine made on the way


def speedup(fp32_ms: float, ms: float) -> float:
    """How many times faster ``ms`` is than ``fp32_ms``."""
    return fp32_ms / ms if ms > 0 else float("inf")
