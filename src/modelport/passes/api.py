"""``optimize``: choose passes, run them to a fixed point, check and verify the result.

The pipeline has three phases (see :class:`~modelport.passes.base.Phase`): PREPARE passes run once
(``convert-opset``, ``fix-dims``), LOOP passes run in an onnx-ir ``PassManager`` until none changes the graph
(or ``max_iterations``), FINISH passes run once. Within a phase passes run in registration order.

``optimize`` writes nothing: ``optimize(path, options=…).write(dst)`` saves the optimized model.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import onnx
import onnx_ir as ir
import onnx_ir.passes.common as common

from modelport.backends import open_runner
from modelport.backends.runner import RunnerOptions
from modelport.errors import (
    InferenceError,
    InvalidInputError,
    ModelLoadError,
    PassError,
    VerificationError,
    first_line,
)
from modelport.inputs import TensorSpec, random_feeds, search_shapes, verification_shapes
from modelport.model_io import (
    check_proto,
    default_opset,
    external_data_files,
    load_proto,
    save_model,
    serialized_size,
    to_proto,
)
from modelport.passes.base import (
    InstrumentedPass,
    ModelportPass,
    PassFailed,
    PassOptions,
    PassStats,
    Phase,
    count_nodes,
    merge_stats,
    pass_spec,
    registry,
)
from modelport.passes.opset import ConvertOpsetOptions
from modelport.passes.report import OptimizeReport, op_histogram
from modelport.passes.shapes import FixDimsOptions, check_fix_dims
from modelport.verify.comparator import Comparison, check, infer, worst_of
from modelport.verify.precision import model_precision
from modelport.verify.tolerance import Tolerance

log = logging.getLogger(__name__)

#: Upper bound on fixed-point iterations of the loop phase.
MAX_ITERATIONS = 8
#: receives one line per step (for a progress display)
Progress: TypeAlias = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class OptimizeOptions:
    """Options of :func:`optimize`.

    Attributes:
        passes: pass names to run (``"default"`` stands for the default pipeline); None: the default pipeline.
        skip: pass names to leave out.
        input_shapes: ``(input name, shape)`` pairs to fix (the ``fix-dims`` pass); also the verification feeds'.
        batch: leading dim for every input whose leading dim is dynamic.
        opset: convert the default-domain opset to this version first (``convert-opset``).
        verify: compare original and optimized outputs in ONNX Runtime (its graph optimizations disabled).
        tolerance: pass/fail bound (default: the fp32 policy of :mod:`modelport.verify.tolerance`, raised to the
            model's own precision when it is fp16 or int8).
        seed: seed of the random verification feeds.
        threads: ONNX Runtime threads for the verification (None: its default, normally every core).
        pass_options: ``(pass name, options dataclass)`` pairs; they override the ones built from the fields
            above (``fix-dims`` from ``input_shapes``/``batch``, ``convert-opset`` from ``opset``).
        max_iterations: bound on fixed-point iterations of the loop phase.
    """

    passes: tuple[str, ...] | None = None
    skip: tuple[str, ...] = ()
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    batch: int | None = None
    opset: int | None = None
    verify: bool = True
    tolerance: Tolerance | None = None
    seed: int = 0
    threads: int | None = None
    pass_options: tuple[tuple[str, PassOptions], ...] = ()
    max_iterations: int = MAX_ITERATIONS

    def __post_init__(self) -> None:
        if self.max_iterations < 1:
            raise InvalidInputError(f"max_iterations must be ≥ 1, got {self.max_iterations}")


@dataclasses.dataclass(frozen=True)
class OptimizeResult:
    """The optimized model (onnx-ir) and the report; :meth:`write` saves the model."""

    model: ir.Model
    report: OptimizeReport

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON (the model is not serialised: :meth:`write` saves it)."""
        return self.report.to_json(indent)

    def write(self, path: str | Path) -> OptimizeReport:
        """Save the optimized model to ``path`` atomically (external data beside it when it needs some).

        Returns:
            The report with the sizes of the files on disk (the source's and the written model's).

        Raises:
            InvalidInputError: ``path`` is the source file (inputs are never modified).
        """
        dst = Path(path)
        source = Path(self.report.source) if self.report.source != IN_MEMORY else None
        refuse_overwrite(onnx_outputs(dst), [source] if source is not None else [])
        save_model(self.model, dst, source=source)
        before = source.stat().st_size if source is not None and source.is_file() else self.report.size_before
        return self.report.with_sizes(before, dst.stat().st_size)


def onnx_outputs(dst: Path) -> list[Path]:
    """The files saving an ONNX model at ``dst`` may write: the model and its external data (``dst.data``)."""
    return [dst, dst.with_name(dst.name + ".data")]


def input_files(source: str | Path) -> list[Path]:
    """The files a model reads: the model itself, an ONNX model's external data files, an OpenVINO IR's ``.bin``."""
    path = Path(source)
    found = [path]
    if path.suffix.lower() == ".xml":
        found.append(path.with_suffix(".bin"))
    elif path.is_file() and path.suffix.lower() == ".onnx":
        try:
            found += [path.parent / name for name in external_data_files(path)]
        except Exception as exc:  # an unreadable source fails where it is read, with its own error
            log.debug("cannot list the external data of %s: %s", path, exc)
    return found


def refuse_overwrite(outputs: Sequence[Path], sources: Sequence[str | Path], *, noun: str = "the input model") -> None:
    """Refuse to write any of ``outputs`` over a file one of ``sources`` reads (inputs are never modified).

    Two paths are the same file when they name the same inode: a symlink to the input and a hard link to it count, as
    does the input's external data (``a.onnx`` whose tensors live in ``b.onnx.data`` is broken by writing ``b.onnx``
    with external data). ``noun`` names the source in the message (an edit with several says "an input model").

    Raises:
        InvalidInputError: an output is the input or one of its files.
    """
    existing = [out for out in outputs if out.exists()]
    if not existing:
        return
    for source in sources:
        for used in input_files(source):
            for out in existing:
                if used.exists() and os.path.samefile(out, used):
                    what = noun if used == Path(source) else f"{used.name}, a file of the input {source}"
                    raise InvalidInputError(
                        f"refusing to overwrite {what}", path=out, hint="choose another output path"
                    )


def default_passes() -> list[str]:
    """Names of the passes that run when ``passes`` is not given, in pipeline order."""
    return [s.name for s in _ordered(registry().values()) if s.default]


def _ordered(specs: Any) -> list[Any]:
    names = list(registry())
    return sorted(specs, key=lambda s: names.index(s.name))


def resolve_passes(passes: Sequence[str] | None = None, skip: Sequence[str] = ()) -> list[str]:
    """The pass names to run, in pipeline order.

    ``passes`` may contain ``"default"`` (the default pipeline) next to opt-in names. Unknown names raise
    PassError listing the valid ones.
    """
    wanted: list[str] = []
    for name in default_passes() if passes is None else passes:
        name = name.strip()
        if not name:
            continue
        wanted.extend(default_passes() if name == "default" else [pass_spec(name).name])
    skipped = {pass_spec(n).name for n in skip if n.strip()}
    chosen = {n for n in wanted if n not in skipped}
    return [s.name for s in _ordered(pass_spec(n) for n in chosen)]


def run_passes(
    model: ir.Model,
    names: Sequence[str],
    options: Mapping[str, PassOptions] | None = None,
    max_iterations: int = MAX_ITERATIONS,
) -> tuple[tuple[PassStats, ...], int]:
    """Run the named passes on ``model`` in place; returns merged per-pass stats and loop iterations."""
    options = dict(options or {})
    records: list[PassStats] = []
    phases: dict[Phase, list[ModelportPass[Any]]] = {p: [] for p in Phase}
    for name in names:
        spec = pass_spec(name)
        opts = options.get(name)
        if opts is not None and not isinstance(opts, spec.options):
            raise PassError(f"options for {name!r} must be {spec.options.__name__}, got {type(opts).__name__}")
        phases[spec.phase].append(spec.cls(opts))
    iterations = 0
    for phase, passes in phases.items():
        if not passes:
            continue
        wrapped = [InstrumentedPass(p, records) for p in passes]
        if phase is Phase.LOOP:
            manager = ir.passes.PassManager(wrapped, steps=max_iterations, early_stop=True)
            start = len(records)
            _run_unwrapped(manager, model)
            iterations = (len(records) - start) // len(wrapped)
        else:
            _run_unwrapped(ir.passes.Sequential(*wrapped), model)
    return merge_stats(records), iterations


def _run_unwrapped(manager: ir.passes.PassBase, model: ir.Model) -> None:
    """Run a manager, re-raising the modelport error a pass raised (onnx-ir wraps it in its PassError)."""
    try:
        manager(model)
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, PassError | InvalidInputError):
                raise cause from exc
            cause = cause.__cause__
        raise PassError(f"optimization failed: {type(exc).__name__}: {exc}") from exc


def graph_input_specs(graph: ir.Graph) -> list[TensorSpec]:
    """The graph's inputs (initializers excluded) as TensorSpecs. Symbolic dim names are kept: dims that share one get
    one size across inputs (silero's input and state batch); a negative dim (an exporter's "dynamic") is free."""
    specs = []
    for v in graph.inputs:
        if v.name in graph.initializers:
            continue
        dtype = v.dtype.numpy().name if v.dtype is not None else "float32"
        shape = None if v.shape is None else tuple(_spec_dim(d) for d in v.shape.dims)
        specs.append(TensorSpec(v.name or "", dtype, shape))
    return specs


def _spec_dim(dim: int | ir.SymbolicDim) -> int | str | None:
    if isinstance(dim, int):
        return dim if dim >= 0 else None
    return dim.value or None


def verification_feeds(
    graph: ir.Graph, input_shapes: Mapping[str, Sequence[int]] | None, batch: int | None, seed: int
) -> list[dict[str, np.ndarray]]:
    """Seeded random feeds for the optimized model's inputs: one set per shape set of
    :func:`~modelport.inputs.verification_shapes` (two when a dim is still free: the optimized model must stay
    right at any size, not just one)."""
    specs = graph_input_specs(graph)
    return [
        random_feeds(specs, shapes, seed=seed + i)
        for i, shapes in enumerate(verification_shapes(specs, input_shapes, batch))
    ]


def verify_models(
    original: onnx.ModelProto,
    optimized: onnx.ModelProto,
    feed_sets: Sequence[Mapping[str, np.ndarray]],
    tolerance: Tolerance,
    threads: int | None = None,
) -> Comparison:
    """Run both models in ONNX Runtime (its graph optimizations off, so we test *our* passes) on each feed set
    through the comparator; returns the worst comparison.

    Raises:
        InferenceError: the original refuses a feed set (the caller then searches sizes it accepts).
        CandidateFailed: the optimized model fails to load or run where the original ran.
    """
    options = RunnerOptions(threads=threads, graph_optimization=False)
    results: list[Comparison] = []
    with tempfile.TemporaryDirectory(prefix="modelport-verify-") as tmp:
        paths = []
        for label, proto in (("original", original), ("optimized", optimized)):
            path = Path(tmp) / f"{label}.onnx"
            save_model(proto, path)
            paths.append(path)
        precision = model_precision(paths[0])  # an fp16 or int8 model is judged at its own precision
        with open_runner("onnxruntime", paths[0], options) as ref:
            before = [infer(ref, feeds, "original", precision) for feeds in feed_sets]
        try:
            with open_runner("onnxruntime", paths[1], options) as cand:
                for feeds, ran in zip(feed_sets, before, strict=True):
                    results.append(check(ran, infer(cand, feeds, "optimized", precision), tolerance))
        except (InferenceError, ModelLoadError) as exc:
            raise CandidateFailed(f"the optimized model fails where the original runs: {exc.message}") from exc
    return worst_of(results)


class CandidateFailed(VerificationError):
    """The optimized model cannot load or run on feeds the original runs on."""


def searched_feed_sets(
    original: onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]] | None,
    batch: int | None,
    seed: int,
    threads: int | None = None,
) -> list[dict[str, np.ndarray]]:
    """Feeds at sizes the original accepts, walking :func:`~modelport.inputs.search_shapes`'s ladder (for a model
    that refuses the default verification sizes, e.g. a text recognizer that needs a height of 48).

    Raises:
        InferenceError: the original refuses every size tried (the message lists them and suggests --input-shape).
    """
    specs = graph_input_specs(ir.serde.deserialize_model(original).graph)
    options = RunnerOptions(threads=threads, graph_optimization=False)
    with tempfile.TemporaryDirectory(prefix="modelport-verify-") as tmp:
        path = Path(tmp) / "original.onnx"
        save_model(original, path)
        with open_runner("onnxruntime", path, options) as ref:

            def run(shapes: Mapping[str, Sequence[int]], role: int) -> dict[str, np.ndarray]:
                feeds = random_feeds(specs, shapes, seed=seed + role)
                infer(ref, feeds, "original")
                return feeds

            return list(search_shapes(specs, run, input_shapes, batch).results)


#: the report's ``source`` for a model given in memory
IN_MEMORY = "<model>"


def _load(model: str | Path | ir.Model | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, ir.Model):
        proto = to_proto(model)
        check_proto(proto)
        return proto, IN_MEMORY
    if isinstance(model, onnx.ModelProto):
        check_proto(model)
        return model, IN_MEMORY
    return load_proto(model), str(model)


def optimize(
    model: str | Path | ir.Model,
    *,
    options: OptimizeOptions | None = None,
    feeds: Mapping[str, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> OptimizeResult:
    """Optimize an ONNX model and verify it against the original in ONNX Runtime.

    Args:
        model: an .onnx path or an onnx-ir model (not modified: the passes work on a copy).
        options: which passes, the shapes to fix, the opset, verification (tolerance, seed, threads), per-pass
            options; see :class:`OptimizeOptions`.
        feeds: inputs to verify on, in addition to seeded random ones.
        progress: called with a line per step.

    Returns:
        The optimized model and its report; nothing is written (``result.write(path)`` saves the model).

    Raises:
        ModelLoadError: the model cannot be read or fails onnx.checker.
        PassError: an unknown pass name, a failing pass, or an optimized model that fails onnx.checker.
        InvalidInputError: an ``input_shapes`` entry naming an unknown input or of the wrong rank.
        VerificationError: the optimized model's outputs differ beyond the tolerance.
    """
    start = time.perf_counter()
    opts = options or OptimizeOptions()
    say = progress or (lambda _msg: None)
    shapes = dict(opts.input_shapes) or None
    names, pass_opts = _plan(resolve_passes(opts.passes, opts.skip), shapes, opts.batch, opts.opset)
    pass_opts.update(dict(opts.pass_options))
    original, source = _load(model)
    try:
        before = ir.serde.deserialize_model(original)
    except ir.serde.SerdeError as exc:  # e.g. an initializer of a data type ONNX does not define
        raise ModelLoadError(f"cannot read the graph: {first_line(exc.__cause__ or exc)}", path=source) from exc
    nodes_before, ops_before = count_nodes(before), op_histogram(before)
    say(f"running {len(names)} passes")
    job = _Job(original, pass_opts, opts, shapes, feeds, say)
    try:
        run = _attempt(job, names)
        rolled_back: tuple[tuple[str, str], ...] = ()
    except (PassError, VerificationError) as exc:
        run, rolled_back = _roll_back(job, names, exc)
    work, stats, iterations, optimized, comparison = run
    report = OptimizeReport(
        source=source,
        nodes_before=nodes_before,
        nodes_after=count_nodes(work),
        ops_before=ops_before,
        ops_after=op_histogram(work),
        passes=stats,
        iterations=iterations,
        verification=comparison,
        seconds=time.perf_counter() - start,
        size_before=serialized_size(original),
        size_after=serialized_size(optimized),
        opset_before=default_opset(original),
        opset_after=default_opset(optimized),
        rolled_back=rolled_back,
    )
    log.info("optimized %s: %d → %d nodes", source, report.nodes_before, report.nodes_after)
    return OptimizeResult(work, report)


_Run = tuple[ir.Model, tuple[PassStats, ...], int, onnx.ModelProto, Comparison | None]


@dataclasses.dataclass(frozen=True)
class _Job:
    """One optimize call: the model, the options, and how to run the passes on it."""

    original: onnx.ModelProto
    pass_opts: Mapping[str, PassOptions]
    opts: OptimizeOptions
    shapes: Mapping[str, Sequence[int]] | None
    feeds: Mapping[str, np.ndarray] | None
    say: Progress


def _attempt(job: _Job, names: Sequence[str]) -> _Run:
    """Run the passes on a copy of the model, check the result with onnx.checker and verify it."""
    original, pass_opts, opts = job.original, job.pass_opts, job.opts
    work = ir.serde.deserialize_model(original)
    check_fix_dims(work.graph, pass_opts.get("fix-dims", FixDimsOptions()))  # type: ignore[arg-type]
    stats, iterations = run_passes(work, names, pass_opts, opts.max_iterations)
    if any(v.shape is None for v in work.graph.outputs):
        common.ShapeInferencePass(strict_mode=False)(work)  # graph outputs need a shape to pass the checker
    optimized = ir.serde.serialize_model(work)
    try:
        check_proto(optimized)
    except ModelLoadError as exc:
        raise _BrokenResult(f"the optimized model fails onnx.checker: {exc.message}", stats, numerics=False) from exc
    comparison = _verify(job, work, optimized, stats) if opts.verify else None
    return work, stats, iterations, optimized, comparison


def _verify(job: _Job, work: ir.Model, optimized: onnx.ModelProto, stats: Sequence[PassStats]) -> Comparison:
    """Compare the optimized model with the original at the default sizes, or at sizes the original accepts when
    it refuses those (or on the user's feeds alone); a mismatch or a candidate that cannot run is a _BrokenResult."""
    original, opts, shapes, feeds = job.original, job.opts, job.shapes, job.feeds
    job.say("verifying the optimized model against the original in ONNX Runtime")
    feed_sets: list[Mapping[str, np.ndarray]] = [*verification_feeds(work.graph, shapes, opts.batch, opts.seed)]
    if feeds is not None:
        feed_sets.append(feeds)
    tolerance = opts.tolerance or Tolerance.for_precision("fp32")
    try:
        try:
            comparison = verify_models(original, optimized, feed_sets, tolerance, opts.threads)
        except InferenceError:  # the original refuses the default sizes: use sizes it accepts
            try:
                feed_sets = [*searched_feed_sets(original, shapes, opts.batch, opts.seed, opts.threads)]
            except InferenceError:
                if feeds is None:
                    raise
                feed_sets = []  # the user's feeds alone
            if feeds is not None:
                feed_sets.append(feeds)
            comparison = verify_models(original, optimized, feed_sets, tolerance, opts.threads)
    except CandidateFailed as exc:
        raise _BrokenResult(exc.message, stats, numerics=True) from exc
    if not comparison:
        reason = f"{comparison.candidate} differs from the original: {comparison.reason()}"
        raise _BrokenResult(reason, stats, numerics=True)
    return comparison


class _BrokenResult(PassError):
    """The passes ran but their result fails the checker or the verification (the stats say which passes acted)."""

    def __init__(self, message: str, stats: Sequence[PassStats], *, numerics: bool) -> None:
        super().__init__(message)
        self.stats = tuple(stats)
        self.numerics = numerics


def _roll_back(
    job: _Job, names: Sequence[str], failure: PassError | VerificationError
) -> tuple[_Run, tuple[tuple[str, str], ...]]:
    """The optimizer must never hand back a broken model: drop the passes that acted, the latest first, one at a
    time, until the result checks and verifies; say which pass was dropped and why.

    Raises:
        VerificationError: no single pass explains a numerical difference (exit code 1, like any mismatch).
        PassError: no single pass explains an invalid result.
    """
    if isinstance(failure, PassFailed):
        return _without_crashed(job, names, failure)
    if not isinstance(failure, _BrokenResult):
        raise failure
    acted = [p.name for p in failure.stats if p.modified]
    for name in reversed(acted):
        job.say(f"the result {failure.message}; retrying without {name}")
        log.warning("%s; retrying without the pass %s", failure.message, name)
        try:
            run = _attempt(job, [n for n in names if n != name])
        except _BrokenResult:
            continue
        return run, ((name, failure.message),)
    hint = f"passes that changed the model: {', '.join(acted) or 'none'}; skip them with --skip and report the model"
    if failure.numerics:
        raise VerificationError(failure.message, hint=hint) from failure
    raise PassError(failure.message, hint=hint) from failure


def _without_crashed(job: _Job, names: Sequence[str], failure: PassFailed) -> tuple[_Run, tuple[tuple[str, str], ...]]:
    """A pass raised (a bug, or a graph it does not support): run again without it, and without each further pass
    that raises; a result that then fails the checker or the verification goes through :func:`_roll_back`."""
    current = list(names)
    dropped: list[tuple[str, str]] = []
    error: PassError | VerificationError = failure
    while isinstance(error, PassFailed) and error.pass_name in current:
        job.say(f"{error.message}; retrying without it")
        log.warning("%s; retrying without it", error.message)
        current.remove(error.pass_name)
        dropped.append((error.pass_name, error.message))
        try:
            return _attempt(job, current), tuple(dropped)
        except (PassError, VerificationError) as exc:
            error = exc
    if isinstance(error, _BrokenResult):
        run, more = _roll_back(job, current, error)
        return run, (*dropped, *more)
    raise error


def _plan(
    names: list[str], input_shapes: Mapping[str, Sequence[int]] | None, batch: int | None, opset: int | None
) -> tuple[list[str], dict[str, PassOptions]]:
    """Add fix-dims / convert-opset with their options when the arguments ask for them."""
    opts: dict[str, PassOptions] = {}
    if input_shapes or batch is not None:
        shapes = tuple((k, tuple(int(d) for d in v)) for k, v in (input_shapes or {}).items())
        opts["fix-dims"] = FixDimsOptions(input_shapes=shapes, batch=batch)
        names = resolve_passes([*names, "fix-dims"])
    if opset is not None:
        opts["convert-opset"] = ConvertOpsetOptions(target=opset)
        names = resolve_passes([*names, "convert-opset"])
    return names, opts
