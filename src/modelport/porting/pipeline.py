"""``port``: the main job — any source → ``model.onnx`` → every target → verify → benchmark → report.

Targets are (runtime, precision) pairs; with none named, the ones this machine runs fast (:mod:`.defaults`).
The source (any format ``convert`` reads) becomes ``OUT/model.onnx`` (:mod:`.source`). Each target is built,
verified against the *original* source on its own runtime with the precision's tolerance, timed, tuned (engine
settings within ``--budget``), measured for throughput and evaluated on the ``--eval`` data (:mod:`.target`), in a
child process with a timeout (:mod:`.isolate`) so that a crash or hang fails that target only. A target that fails
verification is reported and never chosen as the fastest. Ctrl-C keeps the targets finished so far: the report is
written (marked interrupted) before the interrupt goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from modelport.backends import open_runner, parse_backends
from modelport.backends.runner import RunnerOptions
from modelport.benchmark.timing import BenchConfig, time_runner
from modelport.conversion import source_format
from modelport.data import load_samples
from modelport.data.evaluate import evaluate_classifier
from modelport.data.samples import SampleSet, check_samples, fixed_batch
from modelport.errors import InvalidInputError, ModelportError
from modelport.formats import Format, Precision
from modelport.inputs import TensorSpec, default_batch, random_feeds
from modelport.model_io import load_proto, write_text
from modelport.porting.defaults import default_precisions, default_runtimes, explain
from modelport.porting.int8 import flag_slower_int8
from modelport.porting.isolate import isolation_available, run_isolated
from modelport.porting.prebuilt import Prebuilt
from modelport.porting.progress import done_message, start_message, step_message, target_steps
from modelport.porting.results import PortOptions, PortReport, TargetResult
from modelport.porting.source import prepare_source
from modelport.porting.target import TargetJob, build_target, target_dir
from modelport.reports.environment import Environment, capture_environment

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

#: ``--quick``: the timing, search and evaluation settings that keep port near a minute on small models.
QUICK_BENCH = BenchConfig(warmup=3, seconds=0.3)
QUICK_BUDGET = 3.0
QUICK_EVAL = 500
QUICK_SAMPLES = 64


def _count_nodes(path: Path) -> int:
    return len(load_proto(path, check=False, load_external_data=False).graph.node)


def choose_targets(opts: PortOptions, env: Environment) -> tuple[tuple[str, ...], tuple[Precision, ...], str]:
    """(runtimes, precisions, why): as asked, or what this machine runs fast (:mod:`.defaults`)."""
    runtimes = tuple(parse_backends(list(opts.targets))) if opts.targets else default_runtimes(env)
    precisions = tuple(opts.precisions) or default_precisions(env)
    if opts.targets and opts.precisions:
        return runtimes, precisions, "runtimes and precisions as asked"
    return runtimes, precisions, explain(env, runtimes, precisions)


def _quick(opts: PortOptions) -> PortOptions:
    return dataclasses.replace(
        opts,
        bench=QUICK_BENCH,
        budget=min(opts.budget, QUICK_BUDGET),
        eval_limit=min(opts.eval_limit or QUICK_EVAL, QUICK_EVAL),
    )


def _read_data(
    opts: PortOptions, specs: Sequence[TensorSpec], eval_set: SampleSet | None
) -> tuple[SampleSet | None, SampleSet | None, list[str]]:
    """(evaluation, calibration, warnings) from ``--eval`` / ``--calib`` (an explicit ``eval_set`` wins)."""
    warnings: list[str] = []
    if eval_set is None and opts.eval is not None:
        eval_set, w = load_samples(
            opts.eval, specs, role="evaluation", limit=opts.eval_limit, preprocess=opts.preprocess, seed=opts.seed
        )
        warnings += w
    calib = None
    if opts.calib is not None:
        limit = min(opts.samples, QUICK_SAMPLES) if opts.quick else opts.samples
        calib, w = load_samples(
            opts.calib, specs, role="calibration", limit=limit, preprocess=opts.preprocess, seed=opts.seed
        )
        warnings += w
    return eval_set, calib, warnings


def _baseline_ms(model: Path, specs: Sequence[TensorSpec], opts: PortOptions) -> float | None:
    """Median latency of the naive baseline: ONNX Runtime FP32 with its default settings, at the latency batch."""
    try:
        with open_runner("onnxruntime", model, RunnerOptions(threads=opts.threads)) as runner:
            feeds = random_feeds(runner.input_specs, dict(opts.input_shapes) or None, seed=opts.seed, batch=opts.batch)
            return time_runner(runner, feeds, opts.bench).p50_ms
    except ModelportError as exc:
        log.warning("no baseline: %s", exc)
        return None


def _run_job(job: TargetJob, opts: PortOptions, say: Progress) -> TargetResult:
    """The target in a child process with ``opts.timeout`` (when isolation is there), else in this process."""
    label = f"{job.runtime}/{job.precision.value}"

    def tell(msg: str) -> None:
        say(step_message(label, msg))

    if opts.timeout is not None and isolation_available():
        try:
            result: TargetResult = run_isolated(build_target, job, timeout_s=opts.timeout, label=label, progress=tell)
            return result
        except ModelportError as exc:  # crashed, timed out or failed outside the target's own handling
            return TargetResult(job.runtime, job.precision, "failed", reason=str(exc), route=job.source_route)
    return build_target(job, tell)


def _command(src: Path | None, out: Path, t: TargetResult, opts: PortOptions) -> str:
    """A command that rebuilds this target alone."""
    words = ["modelport", "port"] + ([str(src)] if src is not None else [])
    words += [
        "--to",
        t.runtime,
        "--precision",
        t.precision.value,
        "-o",
        str(out / "rebuild" / t.label.replace("/", "-")),
    ]
    words += [f"--input-shape={k}:{','.join(map(str, v))}" for k, v in opts.input_shapes]
    if opts.batch:
        words += ["--batch", str(opts.batch)]
    if not opts.optimize:
        words.append("--no-optimize")
    for flag, value in (("--calib", opts.calib), ("--eval", opts.eval)):
        if isinstance(value, str | Path):
            words += [flag, str(value)]
    return shlex.join(words)


def _finish(
    results: list[TargetResult], baseline: float | None, src: Path | None, out: Path, opts: PortOptions
) -> list[TargetResult]:
    if any(t.precision is Precision.INT8 for t in results):
        results = flag_slower_int8(results)  # an INT8 target slower than its FP32 sibling is never the fastest
    done = []
    for t in results:
        speedup = baseline / t.latency.p50_ms if baseline and t.latency and t.latency.p50_ms > 0 else None
        done.append(dataclasses.replace(t, speedup=speedup, command=_command(src, out, t, opts)))
    return done


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
    prebuilt: Prebuilt | None = None,
) -> PortReport:
    """Port ``model`` (any format ``convert`` reads; None: the shipped MNIST ConvNet) to every target; write the
    artifacts and reports.

    Writes only into ``out_dir``: ``model.onnx`` (the prepared source; ``source/`` holds the conversion of a
    non-ONNX source), ``targets/<runtime>-<precision>/…`` (each with ``runtime.json`` when settings were tuned) and
    ``report.json``, ``report.md``, ``report.html``. Returns the report; ``bool(report)`` is False when any target
    failed verification or conversion. ``eval_set`` (samples, e.g. from :func:`modelport.data.load_samples`)
    overrides ``options.eval``; with neither and no model, the MNIST test split evaluates. ``prebuilt``: the build
    that :func:`~modelport.porting.prebuilt.build_once` made in ``out_dir`` for this source and options — its
    prepared source and artifacts are verified and measured here, not made again (``port --cluster``).

    Raises:
        InvalidInputError: ``prebuilt`` was made from another source or with other options.
        KeyboardInterrupt: after writing the report of the targets finished so far (``interrupted``).
    """
    t0 = time.perf_counter()
    opts = options or PortOptions()
    if opts.quick:
        opts = _quick(opts)
    say = progress or (lambda _msg: None)
    env = capture_environment()
    runtimes, precisions, choice = choose_targets(opts, env)
    if not runtimes:
        raise InvalidInputError("no port runtime is installed", hint="pip install 'modelport[all]'")
    src_arg: Path | None = None
    if model is None:
        src, default_set = default_eval_set(opts.eval_limit)
        eval_set = eval_set or (default_set if opts.eval is None else None)
    else:
        src = src_arg = Path(model)
    fmt = source_format(src)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if prebuilt is None:
        say(f"preparing the source model ({fmt.value})")
        prepared = prepare_source(src, fmt, out, opts)
    else:
        prebuilt.check(src, opts, out)
        prepared = prebuilt.prepared(out, opts)
    source_nodes = _count_nodes(src if fmt is Format.ONNX else prepared.onnx)
    with open_runner("onnxruntime", prepared.onnx, RunnerOptions(threads=opts.threads)) as ref:
        specs = ref.input_specs
        batch = opts.batch or default_batch(specs)
        opts = dataclasses.replace(opts, batch=batch)
        eval_set, calib_set, warnings = _read_data(opts, specs, eval_set)
        if eval_set is not None:
            check_samples(eval_set, specs)
            feeds = eval_set.head(batch if fixed_batch(specs) else max(batch, 64))
            feeds_text = f"{len(next(iter(feeds.values())))} real samples from {eval_set.name}"
        else:
            feeds = random_feeds(specs, dict(opts.input_shapes) or None, seed=opts.seed, batch=batch)
            feeds_text = f"random, seed {opts.seed}"
        labelled = eval_set is not None and eval_set.labelled
        source_accuracy = evaluate_classifier(ref, eval_set) if labelled and eval_set is not None else None
    for w in warnings:
        log.warning("%s", w)
    baseline = _baseline_ms(src if fmt is Format.ONNX else prepared.onnx, specs, opts)
    calibration = _calibration_text(calib_set, eval_set)
    job_opts = dataclasses.replace(opts, calib=None, eval=None)  # read already; callables do not cross processes
    results: list[TargetResult] = []
    interrupted = False
    try:
        for runtime in runtimes:
            for precision in precisions:
                label = f"{runtime}/{precision.value}"
                say(start_message(label, target_steps(precision, opts.budget, len(opts.throughput_batches))))
                job = TargetJob(
                    runtime,
                    precision,
                    prepared.onnx,
                    target_dir(out, runtime, precision),
                    src,
                    fmt,
                    prepared.loader,
                    prepared.route,
                    feeds,
                    eval_set if labelled else None,
                    calib_set if calib_set is not None else eval_set,
                    job_opts,
                    prebuilt.artifact_for(runtime, precision) if prebuilt is not None else None,
                )
                results.append(_run_job(job, opts, say))
                say(done_message(label, results[-1].status))
    except KeyboardInterrupt:
        interrupted = True
    results = _finish(results, baseline, src_arg, out, opts)
    report = PortReport(
        source=str(src),
        source_format=fmt,
        source_nodes=source_nodes,
        optimization=prepared.optimization,
        batch=batch,
        feeds=feeds_text,
        source_accuracy=source_accuracy,
        targets=tuple(results),
        fastest=_fastest(results),
        environment=env,
        seconds=time.perf_counter() - t0,
        baseline_ms=baseline,
        fastest_throughput=_fastest_throughput(results),
        interrupted=interrupted,
        choice=choice,
        route=prepared.route,
        calibration=calibration,
    )
    write_reports(report, out)
    if interrupted:
        raise KeyboardInterrupt
    return report


def _calibration_text(calib: SampleSet | None, eval_set: SampleSet | None) -> str:
    if calib is not None:
        return f"INT8 calibrated on {len(calib)} samples of {calib.name}"
    if eval_set is not None:
        return f"INT8 calibrated on the evaluation data ({eval_set.name})"
    return "INT8 calibrated on random data (no --calib or --eval): judged by output agreement with FP32 only"


def _fastest_throughput(targets: Sequence[TargetResult]) -> str | None:
    """The verified, unflagged target with the most samples/s at its largest measured batch."""
    best: tuple[float, str] | None = None
    for t in targets:
        if not t.verified or t.flags or not t.throughputs:
            continue
        top = max(t.throughputs, key=lambda x: x.batch)
        if best is None or top.samples_per_s > best[0]:
            best = (top.samples_per_s, t.label)
    return best[1] if best else None


def write_reports(report: PortReport, out_dir: Path) -> None:
    """report.json, report.md and report.html in ``out_dir`` (each written atomically)."""
    from modelport.porting.render import port_html, port_markdown

    write_text(out_dir / "report.json", report.to_json())
    write_text(out_dir / "report.md", port_markdown(report))
    write_text(out_dir / "report.html", port_html(report))
