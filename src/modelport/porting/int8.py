"""INT8 targets of ``port``: built with :func:`~modelport.quantization.api.quantize`, judged by accuracy, never chosen
when slower than FP32.

``port`` calibrates an INT8 target on a seeded random 300 samples of its evaluation set (random data with a
warning when it has none) and evaluates on the whole set. The target is *verified* when quantize's verdict is
(top-1 drop within :data:`~modelport.quantization.api.DEFAULT_MAX_DROP` points, or output cosine ≥ 0.99 without
labels); the element-wise comparison against the source with the int8 tolerance is recorded as for every target.
An INT8 target whose median latency is above its FP32 sibling's on the same runtime (or that quantize measured as
not faster) is flagged and excluded from the fastest pick.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from modelport.backends import get_backend, open_runner
from modelport.backends.runner import RunnerOptions
from modelport.benchmark.timing import time_runner
from modelport.conversion import verify_against_source
from modelport.data.samples import SampleSet
from modelport.errors import ModelportError
from modelport.formats import Precision
from modelport.inputs import random_feeds
from modelport.porting.results import PortOptions, TargetResult
from modelport.quantization.api import quantize
from modelport.quantization.options import QuantizeOptions
from modelport.verify.compare import Tolerance

FLAG = "slower-than-fp32"


def int8_target(
    runtime: str,
    model: Path,
    target_dir: Path,
    feeds: Mapping[str, np.ndarray],
    eval_set: SampleSet | None,
    opts: PortOptions,
    reference: Path | None = None,
) -> TargetResult:
    """Quantize ``model`` for ``runtime`` into ``target_dir``; verify (against ``reference``, default ``model``),
    benchmark and evaluate it like any target."""
    qopts = QuantizeOptions(
        batch=opts.batch,
        threads=opts.threads,
        bench=opts.bench,
        seed=opts.seed,
        input_shapes=tuple((k, tuple(v)) for k, v in dict(opts.input_shapes).items()),  # free dims: quantize sizes them
    )
    t0 = time.perf_counter()
    try:
        rep = quantize(
            model,
            target_dir,
            runtime=runtime,
            calib=eval_set if eval_set is not None else "random",
            eval=eval_set,
            options=qopts,
            name="model",
        )
    except ModelportError as exc:
        return TargetResult(runtime, Precision.INT8, "failed", reason=str(exc))
    seconds = time.perf_counter() - t0
    artifact = Path(rep.artifact)
    base = TargetResult(
        runtime,
        Precision.INT8,
        "verified" if rep.passed else "mismatch",
        reason=rep.reason,
        artifact=str(artifact),
        size_bytes=rep.int8.size_bytes,
        convert_seconds=seconds,
        flags=(FLAG,) if rep.slower else (),
    )
    try:
        comparison = verify_against_source(
            reference or model,
            artifact,
            get_backend(runtime).artifact_format,
            feeds,
            precision=Precision.INT8,
            tolerance=Tolerance.for_precision(Precision.INT8).with_overrides(rtol=opts.rtol, atol=opts.atol),
            threads=opts.threads,
        )
        with open_runner(runtime, artifact, RunnerOptions(threads=opts.threads, precision=Precision.INT8)) as runner:
            batch = opts.batch or 1
            bench = random_feeds(runner.input_specs, dict(opts.input_shapes) or None, seed=opts.seed, batch=batch)
            stats = time_runner(runner, bench, opts.bench)
            info = runner.info()
    except ModelportError as exc:
        return dataclasses.replace(base, status="failed", reason=str(exc))
    m = rep.int8.metric
    accuracy = m if m is not None and m.top1 is not None else None  # TaskMetrics, as every target reports
    return dataclasses.replace(
        base,
        runner=info,
        verification=comparison,
        latency=stats,
        throughput=batch / (stats.mean_ms / 1e3),
        accuracy=accuracy,
    )


def slower_than_fp32(target: TargetResult, targets: Sequence[TargetResult]) -> bool:
    """An INT8 target flagged by quantize, or with a higher median latency than its FP32 sibling."""
    if target.precision is not Precision.INT8:
        return False
    if FLAG in target.flags:
        return True
    sibling = next(
        (t for t in targets if t.runtime == target.runtime and t.precision is Precision.FP32 and t.latency), None
    )
    return bool(sibling and sibling.latency and target.latency and target.latency.p50_ms >= sibling.latency.p50_ms)


def flag_slower_int8(targets: Sequence[TargetResult]) -> list[TargetResult]:
    """Mark INT8 targets slower than their FP32 sibling (flag + reason); they are never chosen as fastest."""
    flagged = []
    for t in targets:
        if slower_than_fp32(t, targets):
            sibling = next((s for s in targets if s.runtime == t.runtime and s.precision is Precision.FP32), None)
            times = (
                f" (p50 {t.latency.p50_ms:.3f} ms vs {sibling.latency.p50_ms:.3f} ms)"
                if t.latency and sibling is not None and sibling.latency
                else ""
            )
            note = f"flagged: INT8 not faster than {t.runtime}/fp32{times}, never chosen"
            t = dataclasses.replace(t, flags=tuple(dict.fromkeys((*t.flags, FLAG))), reason=f"{note}; {t.reason}")
        flagged.append(t)
    return flagged
