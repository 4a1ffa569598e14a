"""``modelport.quantization``: INT8 for one runtime, calibrated on real data, measured against its FP32 source.

The job: read the calibration (and evaluation) data for the model's inputs → build the INT8 artifact with the
runtime's own engine (ONNX Runtime static/dynamic, NNCF for OpenVINO, LiteRT full-integer) → time FP32 and INT8
on the same runtime in interleaved rounds → evaluate both on the evaluation data → write the report.

The result is *verified* when the top-1 drop (percentage points) is within ``max_drop`` (default
:data:`DEFAULT_MAX_DROP`) on labelled data, or, without labels, when the INT8 outputs agree with the FP32 outputs
on the same samples within the int8 tolerance of the one comparator
(:meth:`~modelport.verify.tolerance.Tolerance.for_precision`: each element within a tenth of the output's peak
plus 5 %, and a relative L2 error ≤ 0.15, i.e. cosine ≥ 0.99, where the output stands above noise). When the first
build fails that check, the engine's recovery ladder runs (:mod:`modelport.quantization.recover`). An INT8 variant
that is not faster than FP32 is flagged: ``port`` never picks it.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from modelport.backends import Backend, backends, get_backend, open_runner
from modelport.backends.runner import Runner, RunnerOptions
from modelport.data import SampleSet, load_samples, run_samples, task_metrics
from modelport.data.samples import fixed_batch
from modelport.errors import InvalidInputError
from modelport.formats import Format, Precision, sniff_format
from modelport.inputs import TensorSpec, default_batch, verification_shapes, with_shapes
from modelport.model_guard import all_nodes
from modelport.model_io import external_data_files, load_proto, write_text
from modelport.quantization.engine import Built, Job, Progress, speedup
from modelport.quantization.feeds import run_whole, whole_feed_reason, whole_feed_samples
from modelport.quantization.measure import bench_feeds, error_against_fp32, interleaved_latency
from modelport.quantization.options import Mode, QuantizeOptions
from modelport.quantization.recover import recover
from modelport.quantization.report import (
    SLOWER_FLAG,
    DataInfo,
    LayerSummary,
    QuantizeReport,
    RecoveryStep,
    VariantResult,
)
from modelport.reports.environment import capture_environment

log = logging.getLogger(__name__)

#: allowed top-1 drop in percentage points when labelled evaluation data is given and no --max-drop.
DEFAULT_MAX_DROP = 1.0
#: with no evaluation data, sets of at least this many calibration samples lend a fifth of them to the check.
HOLD_OUT_MIN = 5


def quantizable_backends() -> list[Backend]:
    """The registered backends that have an INT8 quantizer."""
    return [b for b in backends() if b.quantizer is not None]


def _backend(name: str) -> Backend:
    backend = get_backend(name)
    if backend.quantizer is None:
        names = ", ".join(b.name for b in quantizable_backends())
        raise InvalidInputError(
            f"quantize builds INT8 for {names}, not {backend.name}", hint="pick one of those runtimes with --runtime"
        )
    return backend


def _engine(backend: Backend) -> ModuleType:
    assert backend.quantizer is not None
    return importlib.import_module(backend.quantizer)


#: ops that only a quantized model holds (ONNX standard and ONNX Runtime contrib).
QUANTIZED_OPS = frozenset(
    {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "QGemm"}
    | {"MatMulIntegerToFloat", "MatMulNBits", "QAttention"}
)
QUANTIZED_PREFIXES = ("QLinear", "DynamicQuantize", "QOrdered")


def quantized_ops(src: Path) -> dict[str, int]:
    """Quantized ops of an ONNX model by type (empty for a float model), subgraphs included."""
    counts: dict[str, int] = {}
    for node in all_nodes(load_proto(src, check=False, load_external_data=False).graph):
        if node.op_type in QUANTIZED_OPS or node.op_type.startswith(QUANTIZED_PREFIXES):
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def _refuse_quantized(src: Path, backend: Backend) -> None:
    """Quantizing an INT8 model again is refused: its ranges are fixed, the engines fail or double-quantize."""
    ops = quantized_ops(src)
    if not ops:
        return
    held = ", ".join(f"{n} {op}" for op, n in sorted(ops.items(), key=lambda kv: -kv[1]))
    convert = "" if backend.name == "onnxruntime" else f"; `modelport convert --to {backend.name}` keeps them"
    raise InvalidInputError(
        f"the model is already quantized ({held}): it runs in integer precision as it is",
        path=src,
        hint=f"run it as it is (ONNX Runtime executes its int8 ops{convert}), or quantize its float model",
    )


def _check_combination(src: Path, backend: Backend, options: QuantizeOptions) -> Format:
    fmt = sniff_format(src)
    accepted = backend.quantize_sources
    if fmt not in accepted:
        raise InvalidInputError(
            f"{backend.name} quantization takes {' or '.join(f.value for f in accepted)} models, this is {fmt.value}",
            path=src,
            hint="convert it first with `modelport convert`",
        )
    if fmt is Format.ONNX:
        _refuse_quantized(src, backend)
    modes = getattr(_engine(backend), "MODES", (Mode.STATIC,))
    if options.mode not in modes:
        able = ", ".join(b.name for b in quantizable_backends() if options.mode in getattr(_engine(b), "MODES", ()))
        raise InvalidInputError(
            f"{options.mode.value} quantization is not a mode of {backend.name} (it quantizes statically)",
            hint=f"use --runtime {able or 'onnxruntime'}, or drop --mode {options.mode.value}",
        )
    return fmt


def _data_info(samples: SampleSet, requested: int | None, warnings: Sequence[str]) -> DataInfo:
    return DataInfo(
        source=samples.name,
        samples=len(samples),
        requested=requested,
        labelled=samples.labelled,
        synthetic=samples.synthetic,
        preprocessing=samples.preprocessing,
        warnings=tuple(warnings),
    )


def _specs(src: Path, backend: Backend, threads: int | None) -> tuple[TensorSpec, ...]:
    source_specs = getattr(_engine(backend), "source_specs", None)
    if source_specs is not None:  # the engine reads sources its runtime cannot run (LiteRT from a SavedModel)
        return tuple(source_specs(src, threads))
    with open_runner(backend, src, RunnerOptions(threads=threads)) as runner:
        specs = tuple(runner.input_specs)
    if backend.name == "onnxruntime" or sniff_format(src) is not Format.ONNX:
        return specs
    # OpenVINO reads symbolic dims as "?": take their names from the ONNX file (same inputs, same order), since they
    # decide the sizes of free dims and whether the inputs share a sample axis; the names of the inputs stay the
    # runtime's own (OpenVINO may name an input after a tensor behind it)
    with open_runner("onnxruntime", src, RunnerOptions(threads=threads)) as runner:
        named = runner.input_specs
    if len(named) != len(specs):
        return specs
    return tuple(_with_dim_names(s, n) for s, n in zip(specs, named, strict=True))


def _with_dim_names(spec: TensorSpec, named: TensorSpec) -> TensorSpec:
    """``spec`` with each free dim replaced by ``named``'s dim at the same axis (same rank only)."""
    if spec.shape is None or named.shape is None or len(spec.shape) != len(named.shape):
        return spec
    dims = tuple(d if isinstance(d, int) and d >= 0 else n for d, n in zip(spec.shape, named.shape, strict=True))
    return dataclasses.replace(spec, shape=dims)


def _needs_sizes(source: Any) -> bool:
    """Whether a data source takes its tensor sizes from the model (random data, images, datasets), not its own."""
    if isinstance(source, SampleSet | np.ndarray | Mapping) or callable(source):
        return False
    return Path(str(source)).suffix.lower() not in (".npy", ".npz")


def sized_specs(specs: Sequence[TensorSpec]) -> tuple[tuple[TensorSpec, ...], str]:
    """``specs`` with every free dim but a dynamic batch given a size, and a sentence saying which (or "").

    The sizes are the first set of :func:`~modelport.inputs.verification_shapes`, the sizes ``convert`` verifies
    a dynamic artifact at (told from the dim's name, position and the input's layout; a shared symbolic name gets
    one size), so a dynamic model quantizes with no ``--input-shape``. The batch dim stays the data's.
    """
    free = [s for s in specs if s.shape is not None and any(not (isinstance(d, int) and d >= 0) for d in s.shape[1:])]
    if not free:
        return tuple(specs), ""
    first = verification_shapes(specs)[0]
    sized = with_shapes(specs, {s.name: first[s.name] for s in free})
    text = "; ".join(f"{s.name} {s.shape_text()} → {list(first[s.name][1:])} per sample" for s in free)
    return sized, (
        f"dynamic dims sized for calibration and timing: {text} (the artifact keeps them dynamic; "
        "--input-shape sets other sizes)"
    )


def held_out(samples: SampleSet, seed: int) -> tuple[SampleSet, SampleSet, DataInfo]:
    """(calibration, evaluation, its info) when no evaluation data is given.

    A model quantized on some samples and judged on the same ones is judged where its ranges were measured: the
    check says little about the next input. From :data:`HOLD_OUT_MIN` samples on, a seeded fifth of them (at least
    two) is held out of calibration, and the result is judged on every sample — those it never saw included; with
    fewer, the calibration samples judge it, and the report says so.
    """
    n = len(samples)
    if n < HOLD_OUT_MIN:
        info = _data_info(samples, None, ())
        why = "no --eval data: the error is measured on the calibration samples (too few to hold some out)"
        return samples, samples, dataclasses.replace(info, warnings=(why,))
    k = max(2, n // 5)
    order = np.random.default_rng(seed + 1).permutation(n)
    cal = samples.subset(np.sort(order[k:]))
    info = _data_info(samples, None, ())
    why = f"no --eval data: judged on all {n} samples, {k} of them held out of calibration"
    return cal, samples, dataclasses.replace(info, warnings=(why,))


def prepare(
    src: Path,
    runtime: str,
    out_dir: Path,
    calib: Any,
    evaluation: Any,
    options: QuantizeOptions,
    name: str | None,
    say: Progress,
) -> Job:
    """Resolve the runtime, check the model, read the calibration and evaluation data."""
    backend = _backend(runtime)
    _check_combination(src, backend, options)
    declared = with_shapes(_specs(src, backend, options.threads), dict(options.input_shapes))
    sized, chosen = sized_specs(declared)
    say(f"reading calibration data ({options.samples} samples)")
    whole = whole_feed_reason(declared)
    if whole:
        return _whole_feed_job(src, backend, out_dir, calib, evaluation, options, name, say, declared, whole)
    specs = sized if _needs_sizes(calib) else declared
    cal, cal_warn = load_samples(
        calib, specs, role="calibration", limit=options.samples, preprocess=options.preprocess, seed=options.seed
    )
    if chosen and specs is sized:
        cal_warn = [*cal_warn, chosen]
        log.info("%s", chosen)
    if evaluation is not None:
        ev_specs = sized if _needs_sizes(evaluation) else declared
        ev, ev_warn = load_samples(
            evaluation, ev_specs, role="evaluation", limit=options.eval_samples, preprocess=options.preprocess
        )
        ev_info = _data_info(ev, options.eval_samples, ev_warn)
    else:
        cal, ev, ev_info = held_out(cal, options.seed)
    if options.max_drop is not None and (evaluation is None or not ev.labelled):
        raise InvalidInputError(
            "--max-drop needs labelled evaluation data to measure a top-1 drop",
            hint="give labelled --eval data: mnist:test, an image folder of class sub-folders, an .npz with 'labels'",
        )
    return Job(
        src=src,
        runtime=runtime,
        out_dir=out_dir,
        name=name or src.stem,
        options=options,
        env=capture_environment(),
        specs=specs,
        batch=options.batch or default_batch(list(specs)),
        fixed=fixed_batch(specs) is not None,
        calib=cal,
        calib_info=_data_info(cal, options.samples, cal_warn),
        evaluation=ev,
        eval_info=ev_info,
        say=say,
    )


def _whole_feed_job(
    src: Path,
    backend: Backend,
    out_dir: Path,
    calib: Any,
    evaluation: Any,
    options: QuantizeOptions,
    name: str | None,
    say: Progress,
    specs: tuple[TensorSpec, ...],
    why: str,
) -> Job:
    """A job whose samples are whole feeds: the model's inputs share no sample axis (``why``)."""
    log.info("%s: %s; each calibration sample is one whole feed", src.name, why)
    if options.max_drop is not None:
        raise InvalidInputError(f"--max-drop needs batched labelled data; {why}", hint="drop --max-drop")
    cal, warn = whole_feed_samples(calib, specs, limit=options.samples, seed=options.seed)
    if evaluation is None:
        cal, ev, ev_info = held_out(cal, options.seed)
    else:
        ev, ev_warn = whole_feed_samples(evaluation, specs, limit=options.eval_samples or len(cal), seed=options.seed)
        ev_info = _data_info(ev, options.eval_samples, ev_warn)
    return Job(
        src=src,
        runtime=backend.name,
        out_dir=out_dir,
        name=name or src.stem,
        options=options,
        env=capture_environment(),
        specs=specs,
        batch=1,
        fixed=True,
        calib=cal,
        calib_info=_data_info(cal, options.samples, [*warn, why]),
        evaluation=ev,
        eval_info=ev_info,
        say=say,
        whole=True,
    )


# ----------------------------------------------------------------------------------------------------
# Engines


def _runner(runtime: str, path: Path, precision: Precision, threads: int | None) -> Runner:
    """A runner for an FP32/INT8 artifact: the quantizer's own when it has one (TFLite with float I/O)."""
    backend = get_backend(runtime)
    own = getattr(_engine(backend), "runner", None)
    if own is not None:
        runner: Runner = own(path, precision, threads)
        return runner
    return open_runner(backend, path, RunnerOptions(threads=threads, precision=precision))


# ----------------------------------------------------------------------------------------------------
# Measuring


def _size(path: Path) -> int:
    files = [path]
    if path.suffix == ".xml":
        files.append(path.with_suffix(".bin"))
    elif path.suffix == ".onnx":
        files += [path.parent / f for f in external_data_files(path)]
    return sum(f.stat().st_size for f in files if f.is_file())


def _fp16_variant(job: Job, built: Built) -> Path | None:
    if built.fp16 is not None:
        return built.fp16
    if sniff_format(job.src) is not Format.ONNX:
        log.warning("no fp16 variant: the source is not ONNX")
        return None
    from modelport.conversion import ChainOptions, ConvertOptions, convert

    fmt = get_backend(job.runtime).artifact_format
    options = ChainOptions(ConvertOptions(precision=Precision.FP16, name=f"{job.name}.fp16"), verify=False)
    rep = convert(job.src, fmt, job.out_dir, options=options)
    return Path(rep.artifact)


def _layers(job: Job, artifact: Path) -> LayerSummary:
    summary: LayerSummary = _engine(get_backend(job.runtime)).layer_summary(artifact, job.options.threads)
    return summary


def measure(job: Job, built: Built) -> tuple[VariantResult, ...]:
    """Time FP32, INT8 (and FP16) in interleaved rounds; evaluate each; summarise INT8's layers."""
    paths = [(Precision.FP32, built.reference or job.src), (Precision.INT8, built.artifact)]
    if job.options.fp16:
        fp16 = _fp16_variant(job, built)
        if fp16 is not None:
            paths.append((Precision.FP16, fp16))
    runners = [_runner(job.runtime, p, prec, job.options.threads) for prec, p in paths]
    for r in runners:
        r.__enter__()
    try:
        job.say("timing " + " vs ".join(p.value for p, _ in paths))
        stats = interleaved_latency(runners, bench_feeds(job.calib, job.batch, job.whole), job.options.bench)
        job.say(f"evaluating on {job.evaluation.name} ({len(job.evaluation)} samples)")
        run = run_whole if job.whole else run_samples  # port evaluates with the same loop
        outputs = [run(r, job.evaluation) for r in runners]
        infos = [r.info() for r in runners]
    finally:
        for r in runners:
            r.__exit__(None, None, None)
    variants = []
    for i, (prec, path) in enumerate(paths):
        speed = speedup(stats[0].p50_ms, stats[i].p50_ms)
        flags = (SLOWER_FLAG,) if prec is Precision.INT8 and speed <= 1.0 else ()
        variants.append(
            VariantResult(
                name=prec.value,
                precision=prec,
                artifact=str(path),
                size_bytes=_size(path),
                latency=stats[i],
                speedup=speed,
                metric=task_metrics(outputs[i], job.evaluation, None if i == 0 else outputs[0]),
                error=None if i == 0 else error_against_fp32(outputs[0], outputs[i], job.options.tolerance),
                layers=_layers(job, path) if prec is Precision.INT8 else None,
                runner=infos[i],
                flags=flags,
            )
        )
    return tuple(variants)


def _evaluator(job: Job) -> Callable[[Built], VariantResult]:
    """Judge a recovery candidate on the evaluation samples against FP32's outputs (run once), without timing."""
    run = run_whole if job.whole else run_samples
    reference_path = job.src
    cache: dict[str, Any] = {}

    def evaluate(cand: Built) -> VariantResult:
        if "fp32" not in cache or cache["path"] != (cand.reference or reference_path):
            cache["path"] = cand.reference or reference_path
            with _runner(job.runtime, cache["path"], Precision.FP32, job.options.threads) as f32:
                cache["fp32"] = run(f32, job.evaluation)
        with _runner(job.runtime, cand.artifact, Precision.INT8, job.options.threads) as q:
            outputs = run(q, job.evaluation)
            info = q.info()
        return VariantResult(
            name="int8",
            precision=Precision.INT8,
            artifact=str(cand.artifact),
            size_bytes=_size(cand.artifact),
            metric=task_metrics(outputs, job.evaluation, cache["fp32"]),
            error=error_against_fp32(cache["fp32"], outputs, job.options.tolerance),
            runner=info,
        )

    return evaluate


def verdict(job: Job, variants: Sequence[VariantResult]) -> tuple[float | None, str, str]:
    """(drop in points, status, reason) from the FP32 and INT8 metrics."""
    fp32 = variants[0].metric
    int8 = next(v for v in variants if v.precision is Precision.INT8)
    q = int8.metric
    assert fp32 is not None and q is not None
    if fp32.top1 is not None and q.top1 is not None:
        drop = 100.0 * (fp32.top1 - q.top1)
        limit = job.options.max_drop if job.options.max_drop is not None else DEFAULT_MAX_DROP
        text = (
            f"INT8 top-1 {q.top1:.2%} vs FP32 {fp32.top1:.2%} on {q.samples} samples of {q.dataset}: "
            f"drop {drop:.2f} points (allowed {limit:g})"
        )
        return drop, ("verified" if drop <= limit + 1e-9 else "drop-exceeded"), text
    error = int8.error
    assert error is not None
    cosine = min((o.cosine for o in error.outputs), default=1.0)
    text = (
        f"INT8 outputs vs FP32 on {q.samples} samples of {q.dataset}: "
        + ("within" if error.passed else "beyond")
        + f" {error.tolerance}; max abs {error.max_abs:.3g}, cosine similarity {cosine:.5f}, "
        f"mean abs {max((o.mean_abs for o in error.outputs), default=0.0):.3g}"
    )
    if not error.passed:
        text += f" — {error.reason()}"
    return None, ("verified" if error.passed else "mismatch"), text


def quantize(
    model: str | Path,
    out_dir: str | Path,
    *,
    runtime: str = "onnxruntime",
    calib: Any = "random",
    eval: Any = None,
    options: QuantizeOptions | None = None,
    name: str | None = None,
    progress: Progress | None = None,
) -> QuantizeReport:
    """Quantize ``model`` to INT8 for ``runtime``, measure it against FP32 and write the report.

    Args:
        model: ONNX (any runtime), OpenVINO IR (openvino), SavedModel/Keras (litert).
        out_dir: where ``<name>.int8.*``, ``quantize.json`` and ``quantize.md`` go (nothing is written elsewhere).
        runtime: "onnxruntime", "openvino" or "litert" (alias "tflite").
        calib: calibration source (see :mod:`modelport.data.readers`); "random" warns.
        eval: evaluation source; labelled data gives top-1/top-5 and the drop (None: the calibration samples).
        options: see :class:`~modelport.quantization.options.QuantizeOptions`.
        name: base name of the artifacts (default: the model's file stem).
        progress: called with a line per step.

    Returns:
        The report; ``bool(report)`` is False when the drop exceeds the limit or the outputs mismatch
        (``report.require()`` raises AccuracyDropError with the measured drop).
    """
    t0 = time.perf_counter()
    opts = options or QuantizeOptions()
    say = progress or (lambda _msg: None)
    src = Path(model)
    backend = _backend(runtime)
    rt = backend.name
    out = Path(out_dir)
    job = prepare(src, rt, out, calib, eval, opts, name, say)
    out.mkdir(parents=True, exist_ok=True)
    engine = _engine(backend)
    steps: tuple[RecoveryStep, ...] = ()
    with tempfile.TemporaryDirectory(prefix="modelport-quantize-") as tmp:
        built: Built = engine.build(job, Path(tmp))
        variants = measure(job, built)
        drop, status, reason = verdict(job, variants)
        candidates = getattr(engine, "recover", None)
        if status != "verified" and opts.recover and candidates is not None:
            say(f"INT8 failed its check ({reason}); trying to recover accuracy")
            accepted, steps = recover(
                job,
                Path(tmp),
                built,
                candidates,
                _evaluator(job),
                variants[0],
                lambda vs: verdict(job, vs),
                budget_s=opts.recover_seconds,
            )
            if accepted is not None:
                built = accepted
                variants = measure(job, built)
                drop, status, reason = verdict(job, variants)
                reason = f"{reason} (after {steps[-1].label})"
    if SLOWER_FLAG in variants[1].flags:
        log.warning("%s: INT8 is not faster than FP32 on %s (flagged)", src.name, rt)
    report = QuantizeReport(
        source=str(src),
        runtime=rt,
        engine=built.engine,
        settings=built.settings,
        choice=built.choice,
        trials=built.trials,
        calibration=job.calib_info,
        evaluation=job.eval_info,
        variants=variants,
        batch=job.batch,
        drop=drop,
        max_drop=opts.max_drop,
        status=status,
        reason=reason,
        environment=job.env,
        seconds=time.perf_counter() - t0,
        recovery=steps,
    )
    from modelport.quantization.render import quantize_markdown

    write_text(out / "quantize.json", report.to_json())
    write_text(out / "quantize.md", quantize_markdown(report))
    return report
