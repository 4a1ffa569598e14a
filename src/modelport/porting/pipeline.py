"""``port``: the main job — source → (optimize) → every target → verify → benchmark → report.

Targets are (runtime, precision) pairs. Each is converted from the source, verified against it on the same
feeds with the precision's tolerance, benchmarked, and (when the source comes with a labelled dataset, as the
shipped MNIST model does) evaluated on it. A target that fails verification is reported and never chosen as
the fastest.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from modelport.backends import get_backend, open_runner, parse_backends
from modelport.backends.runner import RunnerOptions
from modelport.benchmark.timing import time_runner
from modelport.conversion import ChainOptions, ConvertOptions, convert, verify_against_source
from modelport.conversion.base import ConversionReport
from modelport.data.evaluate import evaluate_classifier
from modelport.data.samples import SampleSet, check_samples, fixed_batch
from modelport.errors import ModelportError
from modelport.formats import Format, Precision, sniff_format
from modelport.inputs import default_batch, random_feeds, resolve_shapes
from modelport.model_io import load_proto, save_model, write_text
from modelport.passes import OptimizeOptions, optimize
from modelport.porting.int8 import flag_slower_int8, int8_target
from modelport.porting.results import OptimizationSummary, PortOptions, PortReport, TargetResult
from modelport.reports.environment import capture_environment
from modelport.verify.compare import Comparison, Tolerance

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def _count_nodes(path: Path) -> int:
    return len(load_proto(path, check=False, load_external_data=False).graph.node)


def _prepare_source(src: Path, out_dir: Path, opts: PortOptions) -> tuple[Path, OptimizationSummary | None]:
    """Copy (or optimize) the source into ``out_dir/model.onnx``: every target starts from that file.

    Every dynamic dim but the batch needs a size to verify and benchmark with: a missing one is one error naming
    the input and the ``--input-shape`` to give, before anything is written.
    """
    dst = out_dir / "model.onnx"
    proto = load_proto(src)  # onnx.checker first: a broken file is named as such, not as ORT's load error
    with open_runner("onnxruntime", src, RunnerOptions(threads=opts.threads)) as probe:
        specs = probe.input_specs
    resolve_shapes(specs, dict(opts.input_shapes), batch=opts.batch or default_batch(specs))
    if opts.optimize:
        # the optimizer fixes these dims: give it the batch the feeds and benchmarks will use
        shapes = tuple((name, (opts.batch, *dims[1:]) if opts.batch else dims) for name, dims in opts.input_shapes)
        options = OptimizeOptions(input_shapes=shapes, seed=opts.seed, threads=opts.threads)
        rep = optimize(src, options=options).write(dst)
        return dst, OptimizationSummary(
            nodes_before=rep.nodes_before,
            nodes_after=rep.nodes_after,
            passes=tuple(p.name for p in rep.passes if p.modified),
            seconds=rep.seconds,
            max_abs_error=rep.verification.max_abs if rep.verification is not None else None,
            rolled_back=tuple(name for name, _ in rep.rolled_back),
        )
    save_model(proto, dst, source=src)
    return dst, None


def _target_dir(out_dir: Path, runtime: str, precision: Precision) -> Path:
    return out_dir / "targets" / f"{runtime}-{precision.value}"


def _build_artifact(model: Path, out_dir: Path, runtime: str, precision: Precision) -> ConversionReport:
    fmt = get_backend(runtime).artifact_format
    weights = Precision.FP32 if precision is Precision.BF16 else precision  # bf16 executes fp32 weights
    # TFLite keeps the ONNX inputs' NCHW layout: the artifact takes the same feeds (and eval set) as the source
    graph = load_proto(model, check=False, load_external_data=False).graph
    nchw = [i.name for i in graph.input] if fmt is Format.TFLITE else []
    target = _target_dir(out_dir, runtime, precision)
    artifact = ConvertOptions(precision=weights, name="model", inputs_as_nchw=tuple(nchw))
    return convert(model, fmt, target, options=ChainOptions(artifact, verify=False))


def _run_target(
    runtime: str,
    precision: Precision,
    model: Path,
    out_dir: Path,
    feeds: Mapping[str, np.ndarray],
    eval_set: SampleSet | None,
    opts: PortOptions,
    reference: Path,
) -> TargetResult:
    """Build, verify (against ``reference``, the untouched source), benchmark and evaluate one target."""
    if not get_backend(runtime).supports(precision, "cpu"):
        return TargetResult(runtime, precision, "skipped", reason=f"{runtime} does not run {precision.value} on CPU")
    if precision is Precision.INT8:  # calibrated on the eval set, judged by its accuracy drop (modelport.quantization)
        return int8_target(runtime, model, _target_dir(out_dir, runtime, precision), feeds, eval_set, opts, reference)
    try:
        conv = _build_artifact(model, out_dir, runtime, precision)
    except ModelportError as exc:
        return TargetResult(runtime, precision, "failed", reason=str(exc))
    artifact = Path(conv.artifact)
    try:
        return _verify_and_measure(runtime, precision, reference, conv, feeds, eval_set, opts)
    except ModelportError as exc:  # the runtime cannot load or run the artifact: this target failed, not port
        return TargetResult(
            runtime,
            precision,
            "failed",
            reason=str(exc),
            artifact=str(artifact),
            size_bytes=conv.size_bytes,
            convert_seconds=conv.seconds,
        )


def _verify_and_measure(
    runtime: str,
    precision: Precision,
    reference: Path,
    conv: ConversionReport,
    feeds: Mapping[str, np.ndarray],
    eval_set: SampleSet | None,
    opts: PortOptions,
) -> TargetResult:
    backend = get_backend(runtime)
    fmt = backend.artifact_format
    artifact = Path(conv.artifact)
    exec_precision = backend.execution_precision(precision)
    comparison = verify_against_source(
        reference,
        artifact,
        fmt,
        feeds,
        precision=exec_precision,
        tolerance=Tolerance.for_precision(precision).with_overrides(rtol=opts.rtol, atol=opts.atol),
        threads=opts.threads,
    )
    base = TargetResult(
        runtime,
        precision,
        "verified" if comparison.passed else "mismatch",
        reason="" if comparison.passed else _mismatch_reason(comparison),
        artifact=str(artifact),
        size_bytes=conv.size_bytes,
        convert_seconds=conv.seconds,
        verification=comparison,
    )
    options = RunnerOptions(threads=opts.threads, precision=exec_precision)
    batch = opts.batch or 1  # resolved by port()
    with open_runner(runtime, artifact, options) as runner:
        bench_feeds = random_feeds(runner.input_specs, dict(opts.input_shapes) or None, seed=opts.seed, batch=batch)
        stats = time_runner(runner, bench_feeds, opts.bench)
        accuracy = evaluate_classifier(runner, eval_set) if eval_set is not None else None
        info = runner.info()
    return dataclasses.replace(
        base, runner=info, latency=stats, throughput=batch / (stats.mean_ms / 1e3), accuracy=accuracy
    )


def _mismatch_reason(c: Comparison) -> str:
    return c.reason()


#: more accurate first: a tie in speed goes to the precision that loses less.
_PRECISION_RANK = {Precision.FP32: 0, Precision.FP16: 1, Precision.BF16: 2, Precision.INT8: 3}
#: medians within this ratio of the best count as a tie (timing noise on a loaded machine is a few %).
TIE_RATIO = 1.05


def _fastest(targets: Sequence[TargetResult]) -> str | None:
    """The verified target with the lowest median latency; within 5 % of it, the most precise one wins."""
    timed = [(t, t.latency.p50_ms) for t in targets if t.verified and t.latency is not None and not t.flags]
    if not timed:
        return None
    best = min(ms for _, ms in timed)
    ties = [(t, ms) for t, ms in timed if ms <= best * TIE_RATIO]
    return min(ties, key=lambda tm: (_PRECISION_RANK[tm[0].precision], tm[1]))[0].label


def default_eval_set(limit: int | None = None) -> tuple[Path, SampleSet]:
    """The shipped MNIST ConvNet and the MNIST test split, normalised for it by its card."""
    from modelport.assets import default_model_metadata, default_model_path
    from modelport.data.datasets import load_mnist

    card = default_model_metadata()
    data = load_mnist("test", limit=limit)
    samples = SampleSet(
        "mnist-test",
        {card.input: card.normalize(data.images)},
        data.labels,
        preprocessing=f"(x · {card.scale:g} − mean {list(card.mean)}) / std {list(card.std)}, {card.layout}",
        classes=card.labels,
    )
    return default_model_path(), samples


def port(
    model: str | Path | None,
    out_dir: str | Path,
    *,
    options: PortOptions | None = None,
    eval_set: SampleSet | None = None,
    progress: Progress | None = None,
) -> PortReport:
    """Port ``model`` (None: the shipped MNIST ConvNet) to every target; write the artifacts and reports.

    Writes only into ``out_dir``: ``model.onnx`` (the prepared source), ``targets/<runtime>-<precision>/…`` and
    ``report.json``, ``report.md``, ``report.html``. Returns the report; ``bool(report)`` is False when any
    target failed verification or conversion. ``eval_set`` (labelled samples, e.g. from
    :func:`modelport.data.load_samples`; default with no model: the MNIST test split) gives each target's top-1
    and the verification feeds.
    """
    t0 = time.perf_counter()
    opts = options or PortOptions()
    say = progress or (lambda _msg: None)
    targets = parse_backends(list(opts.targets))
    if model is None:
        src, default_set = default_eval_set(opts.eval_limit)
        eval_set = eval_set or default_set
    else:
        src = Path(model)
    fmt = sniff_format(src)
    if fmt is not Format.ONNX:
        raise ModelportError(
            f"port takes ONNX models for now, this is {fmt.value}", path=src, hint="convert it to ONNX first"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source_nodes = _count_nodes(src)
    say("preparing the source model")
    prepared, optimization = _prepare_source(src, out, opts)
    with open_runner("onnxruntime", prepared, RunnerOptions(threads=opts.threads)) as ref:
        batch = opts.batch or default_batch(ref.input_specs)
        opts = dataclasses.replace(opts, batch=batch)
        if eval_set is not None:
            check_samples(eval_set, ref.input_specs)
            feeds = eval_set.head(batch if fixed_batch(ref.input_specs) else max(batch, 64))
            feeds_text = f"{len(next(iter(feeds.values())))} real samples from {eval_set.name}"
        else:
            feeds = random_feeds(ref.input_specs, dict(opts.input_shapes) or None, seed=opts.seed, batch=batch)
            feeds_text = f"random, seed {opts.seed}"
        source_accuracy = evaluate_classifier(ref, eval_set) if eval_set is not None else None
    results = []
    for runtime in targets:
        for precision in opts.precisions:
            say(f"{runtime}/{precision.value}: convert, verify, benchmark")
            results.append(_run_target(runtime, precision, prepared, out, feeds, eval_set, opts, src))
    if any(t.precision is Precision.INT8 for t in results):
        results = flag_slower_int8(results)  # an INT8 target slower than its FP32 sibling is never the fastest
    report = PortReport(
        source=str(src),
        source_format=fmt,
        source_nodes=source_nodes,
        optimization=optimization,
        batch=batch,
        feeds=feeds_text,
        source_accuracy=source_accuracy,
        targets=tuple(results),
        fastest=_fastest(results),
        environment=capture_environment(),
        seconds=time.perf_counter() - t0,
    )
    write_reports(report, out)
    return report


def write_reports(report: PortReport, out_dir: Path) -> None:
    """report.json, report.md and report.html in ``out_dir`` (each written atomically)."""
    from modelport.porting.render import port_html, port_markdown

    write_text(out_dir / "report.json", report.to_json())
    write_text(out_dir / "report.md", port_markdown(report))
    write_text(out_dir / "report.html", port_html(report))
