"""One ``port`` target, built and measured from start to end: :func:`build_target` takes a picklable
:class:`TargetJob` so it can run in a child process (:mod:`modelport.porting.isolate`) with a timeout.

Build (convert from ``OUT/model.onnx``, or copy the source when it already is the target's format at fp32, or
quantize for INT8) → verify against the *original* source on its own runtime → time at the latency batch →
search the engine settings within the budget (:mod:`modelport.porting.settings`; the fastest verified ones are
saved beside the artifact as ``runtime.json``) → throughput at the larger batches → evaluate on labelled data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.backends import get_backend, open_runner
from modelport.backends.base import LoaderOptions
from modelport.backends.runner import RunnerOptions
from modelport.backends.runtime_config import config_path, save_runtime_config
from modelport.benchmark.timing import time_parallel, time_runner
from modelport.conversion import ChainOptions, ConvertOptions, convert, verify_against_source
from modelport.conversion.base import files_size
from modelport.data.evaluate import evaluate_classifier
from modelport.data.metrics import TaskMetrics
from modelport.data.samples import SampleSet
from modelport.errors import ModelportError
from modelport.formats import Format, Precision
from modelport.inputs import random_feeds
from modelport.model_io import load_proto
from modelport.porting.int8 import FLAG
from modelport.porting.results import PREBUILT_HOP, BuiltArtifact, PortOptions, SettingTrial, TargetResult, Throughput
from modelport.porting.settings import parallel_requests, search_settings, settings_text
from modelport.porting.source import copy_source
from modelport.quantization.api import quantize, quantized_ops
from modelport.quantization.options import QuantizeOptions
from modelport.quantization.report import QuantizeReport
from modelport.verify.compare import Tolerance

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class TargetJob:
    """Everything one target needs (picklable: it crosses into the child process).

    Attributes:
        runtime, precision: the target.
        onnx: ``OUT/model.onnx``, what conversions and INT8 start from.
        target_dir: ``OUT/targets/<runtime>-<precision>``.
        source, source_format, loader: the original model, verified against on its own runtime.
        source_route: the hops from the source to ``onnx``.
        feeds: verification feeds (source input names).
        eval_set, calib_set: evaluation (labelled: top-1) and INT8 calibration samples.
        options: the port options (data sources already read: None here).
        prebuilt: the artifact built once elsewhere (:mod:`.prebuilt`), verified and measured here as is.
    """

    runtime: str
    precision: Precision
    onnx: Path
    target_dir: Path
    source: Path
    source_format: Format
    loader: LoaderOptions
    source_route: tuple[str, ...]
    feeds: Mapping[str, np.ndarray]
    eval_set: SampleSet | None
    calib_set: SampleSet | None
    options: PortOptions
    prebuilt: BuiltArtifact | None = None


def target_dir(out_dir: Path, runtime: str, precision: Precision) -> Path:
    return out_dir / "targets" / f"{runtime}-{precision.value}"


def build_target(job: TargetJob, progress: Progress | None = None) -> TargetResult:
    """Build, verify, measure (and search the engine settings of) one target; a failure is a result."""
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    runtime, precision = job.runtime, job.precision
    config_path(job.target_dir / "model").unlink(missing_ok=True)  # a stale runtime.json from an earlier port
    if not get_backend(runtime).supports(precision, "cpu"):
        return TargetResult(runtime, precision, "skipped", reason=f"{runtime} does not run {precision.value} on CPU")
    if precision is Precision.INT8 and quantized_ops(job.onnx):
        found = ", ".join(f"{n} {op}" for op, n in sorted(quantized_ops(job.onnx).items()))
        why = f"the source is already quantized ({found}): its fp32 targets run its integer weights"
        return TargetResult(runtime, precision, "skipped", reason=why, route=job.source_route)
    if precision is Precision.INT8:  # calibrated, judged by its accuracy drop or output agreement (quantize)
        say("quantizing")
        result = int8_target(job)
    else:
        result = _float_target(job, say)
    if result.status == "verified" and result.latency is not None:
        result = _tune(job, result, say)
    return dataclasses.replace(result, seconds=time.perf_counter() - t0)


def int8_target(job: TargetJob) -> TargetResult:
    """Quantize ``model.onnx`` for the runtime (calibrated on ``calib_set``, else the evaluation samples, else random
    data with a warning), then verify against the source, time and evaluate it like any target. Its status is
    quantize's verdict (top-1 drop within the limit on labelled data, else output agreement within the int8
    tolerance, after quantize's accuracy recovery when needed); the verdict and recovery go to ``details``."""
    opts = job.options
    qopts = QuantizeOptions(
        batch=opts.batch,
        threads=opts.threads,
        bench=opts.bench,
        seed=opts.seed,
        samples=min(opts.samples, 64) if opts.quick else opts.samples,
        preprocess=opts.preprocess,
        input_shapes=tuple((k, tuple(v)) for k, v in dict(opts.input_shapes).items()),  # free dims: quantize sizes them
        recover_seconds=_recover_seconds(opts),
    )
    calib = job.calib_set if job.calib_set is not None else job.eval_set
    t0 = time.perf_counter()
    try:
        rep = quantize(
            job.onnx,
            job.target_dir,
            runtime=job.runtime,
            calib=calib if calib is not None else "random",
            eval=job.eval_set,
            options=qopts,
            name="model",
        )
    except ModelportError as exc:
        return TargetResult(job.runtime, Precision.INT8, "failed", reason=str(exc), route=job.source_route)
    artifact = Path(rep.artifact)
    base = TargetResult(
        job.runtime,
        Precision.INT8,
        "verified" if rep.passed else "mismatch",
        reason="" if rep.passed else rep.reason,
        artifact=str(artifact),
        size_bytes=rep.int8.size_bytes,
        convert_seconds=time.perf_counter() - t0,
        flags=(FLAG,) if rep.slower else (),
        route=(*job.source_route, f"onnx → int8 ({rep.engine})"),
        details=int8_details(rep),
    )
    try:
        comparison = verify(job, artifact, Precision.INT8, Precision.INT8)
        timed, _ = _measure(job, artifact, RunnerOptions(threads=opts.threads, precision=Precision.INT8))
    except ModelportError as exc:
        return dataclasses.replace(base, status="failed", reason=str(exc))
    m = rep.int8.metric
    return dataclasses.replace(
        base,
        verification=comparison,
        accuracy=m if m is not None and m.top1 is not None else None,  # TaskMetrics, as every target reports
        **timed,
    )


def _recover_seconds(opts: PortOptions) -> float:
    """The INT8 accuracy-recovery ladder's budget: a minute with --quick, else a third of the target's time limit
    (at most 5 minutes), so that a ladder that cannot succeed leaves the target time to finish."""
    if opts.quick:
        return 60.0
    return min(300.0, opts.timeout / 3) if opts.timeout else 300.0


def int8_details(rep: QuantizeReport) -> str:
    """quantize's verdict, how it calibrated and what its recovery ladder tried."""
    lines = [
        f"INT8 ({rep.engine}): {rep.status}: {rep.reason}",
        f"calibration: {rep.calibration.samples} samples of "
        f"{rep.calibration.source}; evaluation: {rep.evaluation.samples} samples of {rep.evaluation.source}",
    ]
    lines += [f"recovery: {s.label}: {s.status}" for s in rep.recovery]
    return "\n".join(lines)


def _float_target(job: TargetJob, say: Progress) -> TargetResult:
    runtime, precision = job.runtime, job.precision
    fmt = get_backend(runtime).artifact_format
    try:
        say(f"building the {fmt.value} artifact" if job.prebuilt is None else f"the {fmt.value} artifact: prebuilt")
        artifact, route, convert_s, size = build_artifact(job)
    except ModelportError as exc:
        return TargetResult(runtime, precision, "failed", reason=str(exc), route=job.source_route)
    base = TargetResult(
        runtime,
        precision,
        "failed",
        artifact=str(artifact),
        size_bytes=size,
        convert_seconds=convert_s,
        route=route,
    )
    try:
        say("verifying against the source")
        return _verify_and_measure(job, base, artifact)
    except ModelportError as exc:  # the runtime cannot load or run the artifact: this target failed, not port
        return dataclasses.replace(base, reason=str(exc))


def build_artifact(job: TargetJob) -> tuple[Path, tuple[str, ...], float, int]:
    """(artifact, route, seconds, bytes) of a float target: the build made once elsewhere when the job carries one,
    the source itself when it already is this (non-ONNX) format at fp32, else a conversion from ``model.onnx``
    (for an ONNX source: the optimized model)."""
    fmt = get_backend(job.runtime).artifact_format
    if job.prebuilt is not None:
        built = job.prebuilt
        artifact = job.target_dir.parent.parent / built.artifact
        return artifact, (*built.route, PREBUILT_HOP), built.seconds, built.size_bytes
    t0 = time.perf_counter()
    if fmt is job.source_format and fmt is not Format.ONNX and job.precision is Precision.FP32:
        artifact, files = copy_source(job.source, fmt, job.target_dir)
        return artifact, ("source as is",), time.perf_counter() - t0, files_size(files)
    weights = Precision.FP32 if job.precision is Precision.BF16 else job.precision  # bf16 executes fp32 weights
    # TFLite keeps the ONNX inputs' NCHW layout: the artifact takes the same feeds (and eval set) as the source
    graph = load_proto(job.onnx, check=False, load_external_data=False).graph
    nchw = [i.name for i in graph.input] if fmt is Format.TFLITE else []
    options = ConvertOptions(precision=weights, name="model", inputs_as_nchw=tuple(nchw))
    conv = convert(job.onnx, fmt, job.target_dir, options=ChainOptions(options, verify=False))
    hop = f"onnx → {fmt.value}" if fmt is not Format.ONNX else f"onnx → onnx ({weights.value} weights)"
    hops = (*job.source_route, hop) if fmt is not Format.ONNX or weights is not Precision.FP32 else job.source_route
    return Path(conv.artifact), hops, conv.seconds, conv.size_bytes


def verify(
    job: TargetJob,
    artifact: Path,
    precision: Precision,
    exec_precision: Precision,
    options: RunnerOptions | None = None,
) -> Any:
    """The artifact (run with ``options`` when given: engine settings) against the original source on the
    verification feeds, at ``precision``'s tolerance."""
    opts = job.options
    return verify_against_source(
        job.source,
        artifact,
        get_backend(job.runtime).artifact_format,
        job.feeds,
        precision=exec_precision,
        tolerance=Tolerance.for_precision(precision).with_overrides(rtol=opts.rtol, atol=opts.atol),
        threads=opts.threads,
        source_backend=job.source_format,
        loader=job.loader,
        artifact_options=options,
    )


def _verify_and_measure(job: TargetJob, base: TargetResult, artifact: Path) -> TargetResult:
    opts = job.options
    backend = get_backend(job.runtime)
    exec_precision = backend.execution_precision(job.precision)
    comparison = verify(job, artifact, job.precision, exec_precision)
    result = dataclasses.replace(
        base,
        status="verified" if comparison.passed else "mismatch",
        reason="" if comparison.passed else comparison.reason(),
        details="" if comparison.passed else comparison.reason(),
        verification=comparison,
    )
    options = RunnerOptions(threads=opts.threads, precision=exec_precision)
    timed, accuracy = _measure(job, artifact, options, evaluate=True)
    return dataclasses.replace(result, accuracy=accuracy, **timed)


def _measure(
    job: TargetJob, artifact: Path, options: RunnerOptions, *, evaluate: bool = False
) -> tuple[dict[str, Any], TaskMetrics | None]:
    """Time the artifact at the latency batch (resolved by port()) and, with ``evaluate``, score it on the
    evaluation set: (the result's runner/latency/throughput fields, the accuracy)."""
    batch = job.options.batch or 1
    with open_runner(job.runtime, artifact, options) as runner:
        shapes = dict(job.options.input_shapes) or None
        feeds = random_feeds(runner.input_specs, shapes, seed=job.options.seed, batch=batch)
        stats = time_runner(runner, feeds, job.options.bench)
        accuracy = evaluate_classifier(runner, job.eval_set) if evaluate and job.eval_set is not None else None
        info = runner.info()
    return {"runner": info, "latency": stats, "throughput": batch / (stats.p50_ms / 1e3)}, accuracy


def _tune(job: TargetJob, result: TargetResult, say: Progress) -> TargetResult:
    """Engine settings search within the budget (latency measured again with the chosen ones), then throughput."""
    opts = job.options
    artifact = Path(result.artifact)
    exec_precision = get_backend(job.runtime).execution_precision(job.precision)
    base = RunnerOptions(threads=opts.threads, precision=exec_precision)
    chosen: RunnerOptions = base
    trials: tuple[SettingTrial, ...] = ()
    if opts.budget > 0:
        say("searching engine settings")
        chosen, trials = _search(job, artifact, base)
    if trials:
        result = dataclasses.replace(result, **_measure(job, artifact, chosen)[0])
    throughputs = _throughputs(job, artifact, chosen, say)
    return dataclasses.replace(result, settings=settings_text(chosen), trials=trials, throughputs=throughputs)


def _search(job: TargetJob, artifact: Path, base: RunnerOptions) -> tuple[RunnerOptions, tuple[SettingTrial, ...]]:

    def check(options: RunnerOptions) -> str | None:
        """The candidate settings verified like the target; a float target must still execute its precision
        (an OpenVINO fp32 target left without a precision hint runs bf16 on AMX: that is the bf16 target)."""
        if job.precision is not Precision.INT8:
            with open_runner(job.runtime, artifact, options, runtime_config=False) as runner:
                executed = runner.info().executed_precision
            if executed != base.precision.value:
                return f"executes {executed}, not {base.precision.value} (the {executed} target measures that)"
        comparison = verify(job, artifact, job.precision, options.precision, options)
        return None if comparison.passed else comparison.reason()

    with open_runner(job.runtime, artifact, base, runtime_config=False) as runner:
        shapes = dict(job.options.input_shapes) or None
        feeds = random_feeds(runner.input_specs, shapes, seed=job.options.seed, batch=job.options.batch or 1)
    try:
        chosen, trials = search_settings(
            job.runtime,
            artifact,
            job.precision,
            feeds,
            base=base,
            budget_s=job.options.budget,
            bench=job.options.bench,
            check=check,
        )
    except ModelportError as exc:
        log.warning("%s: settings search failed: %s", job.runtime, exc)
        return base, ()
    save_runtime_config(artifact, job.runtime, chosen)
    return chosen, trials


def _throughputs(job: TargetJob, artifact: Path, options: RunnerOptions, say: Progress) -> tuple[Throughput, ...]:
    """Samples per second at each larger batch the artifact accepts (a fixed batch dim skips them)."""
    found: list[Throughput] = []
    for batch in job.options.throughput_batches:
        say(f"throughput at batch {batch}")
        try:
            with open_runner(job.runtime, artifact, options) as runner:
                specs = runner.input_specs
                if any(s.shape and isinstance(s.shape[0], int) and s.shape[0] not in (batch,) for s in specs):
                    continue  # a fixed batch dim: this artifact runs one batch size
                feeds = random_feeds(specs, dict(job.options.input_shapes) or None, seed=job.options.seed, batch=batch)
                stats = time_runner(runner, feeds, job.options.bench)
        except ModelportError as exc:
            log.info("%s/%s: no throughput at batch %d: %s", job.runtime, job.precision.value, batch, exc)
            continue
        single = Throughput(batch, stats.p50_ms, batch / (stats.p50_ms / 1e3))
        found.append(max([single, *_parallel(job, artifact, options, feeds, single)], key=lambda r: r.samples_per_s))
    return tuple(found)


def _parallel(
    job: TargetJob, artifact: Path, options: RunnerOptions, feeds: Mapping[str, np.ndarray], single: Throughput
) -> list[Throughput]:
    """The batch's throughput with several requests in flight (:func:`parallel_requests`), one runner each: the
    throughput mode of every runtime (OpenVINO's streams, ORT's parallel sessions), timed the same way."""
    found = []
    for requests, threads in parallel_requests():
        each = dataclasses.replace(options, threads=threads)
        try:
            with contextlib.ExitStack() as stack:
                runners = [stack.enter_context(open_runner(job.runtime, artifact, each)) for _ in range(requests)]
                rate, _ = time_parallel(runners, feeds, job.options.bench)
        except (ModelportError, MemoryError) as exc:
            log.info("%s/%s: %d requests in flight failed: %s", job.runtime, job.precision.value, requests, exc)
            continue
        found.append(Throughput(single.batch, single.p50_ms, rate * single.batch, requests, threads))
    return found
