"""Conversion chains: source → (via formats) → targets, every hop verified.

Planning: the registered converters form a graph of formats. ``via`` formats are visited in order, then each
target; a stop already produced is reused, anything else is reached by the cheapest path (1 per hop; ONNX →
TFLite through onnx2tf counts 1.5) from the most recently produced format that reaches it (so
``.pb --via saved_model,tflite --to onnx,openvino,tflite`` runs
pb → saved_model → tflite → onnx → openvino, and the TFLite target is the via artifact). When a hop fails (the
engine, the artifact's runtime, or the verification), the next-cheapest route to the same stop from the same
artifact is tried (:func:`alternative_routes`: at most :data:`MAX_ROUTES`, none costing more than one hop beyond
the cheapest) after removing what the failed one wrote; the hop reaching the stop notes the routes that failed.

Verification goes through the comparator (:mod:`modelport.verify.comparator`): the source runs once per feed set
on seeded feeds at sizes it accepts (:func:`source_runs`: the size ladder of :func:`modelport.inputs.search_shapes`
for free dims; a second set at other sizes when a dim is free), or on the given feeds. Every artifact runs on the
same feeds, renamed and transposed to its inputs, and its outputs, paired by name/order/shape and transposed back
to the source's names and layouts, are compared with the previous artifact's (the hop) and with the source's (the
drift). A hop is compared with the previous artifact within the tolerance of its precision, and with the source
within the loosest tolerance of the hops so far (the drift the chain allows); both are raised to the precision of
the model files themselves (an int8 or fp16 source is judged at its own precision). A hop outside tolerance fails
its route with a VerificationError; every file the chain wrote is removed on any failure that ends the chain, so
nothing half-written remains.

Precision: intermediate hops are fp32; the requested precision applies to the hops that produce a target.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from modelport.backends import LoaderOptions, backend_for_format, open_runner
from modelport.backends.runner import Runner, RunnerOptions
from modelport.conversion.base import ConversionReport, ConvertOptions, get_converter
from modelport.conversion.routes import MAX_ROUTES, alternative_routes, plan_segments, route_text
from modelport.errors import (
    ConversionError,
    InferenceError,
    InvalidInputError,
    ModelLoadError,
    ModelportError,
    RuntimeUnavailable,
    VerificationError,
    first_line,
)
from modelport.formats import Format, Precision
from modelport.inputs import ShapeSearch, TensorSpec, random_feeds, search_shapes, verification_shapes
from modelport.inspection.onnx_model import tensor_spec
from modelport.model_io import load_proto
from modelport.reports.serialize import JsonReport
from modelport.verify.comparator import Comparison, RunResult, Subject, align, check, infer
from modelport.verify.comparator import run as run_subject
from modelport.verify.precision import model_precision
from modelport.verify.tolerance import Tolerance

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class HopReport(JsonReport):
    """One hop of a chain: what it produced and how it compares with the previous artifact and the source."""

    conversion: ConversionReport
    runtime: str
    target: bool
    against_previous: Comparison | None = None
    against_source: Comparison | None = None
    #: a dynamic artifact against the source at other sizes of its free dims (None: static, or no free dim)
    against_source_other_sizes: Comparison | None = None

    @property
    def passed(self) -> bool:
        comparisons = (self.against_previous, self.against_source, self.against_source_other_sizes)
        return all(c is None or c.passed for c in comparisons)

    @property
    def label(self) -> str:
        c = self.conversion
        return f"{c.source_format.value} → {c.target_format.value}"


@dataclasses.dataclass(frozen=True)
class ChainReport(JsonReport):
    """A whole conversion chain: the source, the feeds, every hop, the requested targets' artifacts."""

    source: str
    source_format: Format
    source_runtime: str
    feeds: tuple[tuple[str, tuple[int, ...], str], ...]
    hops: tuple[HopReport, ...]
    targets: tuple[tuple[Format, str], ...]
    seconds: float
    #: what the chain did beyond the plan: sizes the source refused and where it was verified, routes that failed
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(h.passed for h in self.hops)

    def __bool__(self) -> bool:
        return self.passed

    def artifact(self, fmt: Format) -> str:
        """The artifact produced for target ``fmt``."""
        return dict(self.targets)[fmt]


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """How to open the source model: its path (or ``module:factory``), format and its backend's loader options."""

    path: Path
    format: Format
    loader: LoaderOptions = LoaderOptions()

    @property
    def input_shapes(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return self.loader.input_shapes

    @property
    def default_name(self) -> str:
        """The artifacts' base name when none is given: the file's stem, or the factory of ``module:factory``."""
        if self.format is Format.TORCH and not self.path.exists():
            return str(self.path).split(":")[-1]
        return self.path.stem


@dataclasses.dataclass(frozen=True)
class ChainOptions:
    """Options of ``convert`` and ``convert_chain``: what every artifact looks like, and what the chain does with them.

    Attributes:
        convert: what shapes each artifact (precision, base name, tensor names, input shapes, opset …): the one
            thing each converter receives. An empty ``convert.name`` names the artifacts after the source.
        via: formats (or their names, or a runtime's name) to pass through first, in order.
        verify: run and compare every hop (False: convert only).
        seed: seed of the random verification feeds.
        tolerance: override the precision's default tolerance for every comparison.
        threads: runtime threads for verification.
        optimize: run modelport's optimizer on every ONNX artifact converted from another format.
    """

    convert: ConvertOptions = ConvertOptions()
    via: tuple[Format | str, ...] = ()
    verify: bool = True
    seed: int = 0
    tolerance: Tolerance | None = None
    threads: int | None = None
    optimize: bool = False


def runtime_for(fmt: Format) -> str:
    """The runtime that runs ``fmt`` natively (from the backend registry)."""
    return backend_for_format(fmt).name


def open_artifact(fmt: Format, path: Path, options: RunnerOptions, source: SourceSpec | None = None) -> Runner:
    """A runner for an artifact on the backend that runs its format (the source carries its loader options)."""
    return open_runner(fmt, path, options, source.loader if source is not None else None)


def _run_artifact(
    fmt: Format,
    path: Path,
    precision: Precision,
    feeds: Mapping[str, np.ndarray],
    threads: int | None,
    source: SourceSpec | None = None,
    label: str = "",
) -> RunResult:
    """Run an artifact (or the source, with its loader options) on ``feeds`` through the comparator."""
    backend = backend_for_format(fmt)
    options = RunnerOptions(threads=threads, precision=backend.execution_precision(precision))
    loader = source.loader if source is not None else LoaderOptions()
    return run_subject(Subject(path, fmt, options, loader, label), feeds)


def source_runs(
    source: SourceSpec,
    input_shapes: Mapping[str, Sequence[int]] | None,
    seed: int,
    threads: int | None = None,
) -> ShapeSearch[RunResult]:
    """Run the source on seeded random feeds at sizes it accepts (:func:`~modelport.inputs.search_shapes`):
    ``input_shapes`` as given, every other free dim down the size ladder until the source runs, then a second set
    at other sizes (a dynamic artifact is shown to stay right at any size). Each accepted set runs once; its
    :class:`RunResult` is what the hops are compared with. After a refusal the runner is reopened (a runtime may
    keep a failed state).

    Raises:
        InferenceError: the source refused every size tried (lists them, with its error for each).
    """
    backend = backend_for_format(source.format)
    options = RunnerOptions(threads=threads, precision=backend.execution_precision(Precision.FP32))
    runner = open_artifact(source.format, source.path, options, source)
    label = f"{source.path.name}@{backend.name}"
    precision = model_precision(source.path) if source.path.exists() else None
    loaded = [False]

    def attempt(shapes: Mapping[str, tuple[int, ...]], role: int) -> RunResult:
        if not loaded[0]:
            runner.__enter__()
            loaded[0] = True
        try:
            return infer(runner, random_feeds(runner.input_specs, shapes, seed=seed + role), label, precision)
        except BaseException:
            runner.__exit__(None, None, None)
            loaded[0] = False
            raise

    runner.__enter__()
    loaded[0] = True
    try:
        specs = runner.input_specs
        return search_shapes(specs, attempt, input_shapes, path=source.path)
    finally:
        if loaded[0]:
            runner.__exit__(None, None, None)


Shapes = tuple[tuple[str, tuple[int, ...]], ...]


def _onnx_default_shapes(path: Path, given: Shapes, accepted: Mapping[str, tuple[int, ...]] | None = None) -> Shapes:
    """For an ONNX source: ``given`` plus, for every other input with a free dim besides the batch, the sizes the
    source ran at (``accepted``: the size ladder's first set), else the first verification sizes — for the
    converters that need fixed dims (onnx2tf, TensorRT profiles); a free batch alone is left to them (onnx2tf keeps
    it dynamic), and formats that keep dims dynamic ignore these shapes."""
    graph = load_proto(path, check=False, load_external_data=False).graph
    init = {t.name for t in graph.initializer}
    specs = [tensor_spec(i) for i in graph.input if i.name not in init]
    try:
        first = dict(accepted) if accepted else verification_shapes(specs, dict(given))[0]
    except InvalidInputError:
        return tuple(given)  # an unknown rank: the converter says what it needs
    names = dict(given)

    def free_beyond_batch(spec: TensorSpec) -> bool:
        return any(not (isinstance(d, int) and d >= 0) for d in (spec.shape or ())[1:])

    return tuple(given) + tuple(
        (s.name, first[s.name]) for s in specs if s.name not in names and s.name in first and free_beyond_batch(s)
    )


def _dynamic_shapes(
    specs: Sequence[TensorSpec], feeds: Mapping[str, np.ndarray]
) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Concrete shapes (from the feeds) of the inputs whose dims are not all fixed: what a hop may need fixed."""
    return tuple(
        (s.name, tuple(int(d) for d in feeds[s.name].shape)) for s in specs if not s.is_static and s.name in feeds
    )


def run_chain(
    source: SourceSpec,
    targets: Sequence[Format],
    out_dir: Path,
    options: ChainOptions,
    *,
    feeds: Mapping[str, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> ChainReport:
    """Plan and run a chain; see the module docstring. Removes everything it wrote when it fails.

    An empty ``options.convert.name`` becomes the source's (:meth:`SourceSpec.default_name`). ``options.optimize``
    runs modelport's optimizer on every ONNX artifact converted from another format (the seeds'
    ``… → ONNX → optimize → OpenVINO``), before it is verified and converted on.
    """
    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    if not options.convert.name:
        options = dataclasses.replace(options, convert=dataclasses.replace(options.convert, name=source.default_name))
    segments = plan_segments(source.format, targets, parse_formats(list(options.via)) if options.via else [])
    hops = [hop for segment in segments for hop in segment]
    if not hops:
        raise ConversionError(
            f"nothing to convert: the source is already {', '.join(t.value for t in targets)}",
            hint="name another target format with --to",
        )
    for pair in hops:
        get_converter(*pair)  # fail before writing anything
    written: list[Path] = []
    existed = out_dir.exists()
    with tempfile.TemporaryDirectory(prefix="modelport-chain-") as tmp:
        cut, cut_note = _cut_onnx_source(source, Path(tmp))
        try:
            state = _State(cut, options, written, latest={cut.format: (cut.path, None)})
            if cut_note:
                state.notes.append(cut_note)
            report = _run(state, targets, out_dir, segments, feeds, say, t0)
        except BaseException:
            _remove(written)
            if not existed and out_dir.is_dir() and not any(out_dir.iterdir()):
                out_dir.rmdir()  # the folder the chain created for its artifacts: not left behind empty
            raise
    return dataclasses.replace(report, source=str(source.path)) if cut is not source else report


def _cut_onnx_source(source: SourceSpec, work_dir: Path) -> tuple[SourceSpec, str]:
    """An ONNX source cut at ``--inputs``/``--outputs`` (a private copy through ``onnx.utils.extract_model``; the
    user's file is never touched): the part before an op no engine converts goes through on its own. Other
    formats read the names themselves (TF GraphDef), so they are returned as they are."""
    loader = source.loader
    if source.format is not Format.ONNX or not (loader.inputs or loader.outputs):
        return source, ""
    import onnx.utils

    graph = load_proto(source.path, check=False, load_external_data=False).graph
    init = {t.name for t in graph.initializer}
    inputs = list(loader.inputs) or [i.name for i in graph.input if i.name not in init]
    outputs = list(loader.outputs) or [o.name for o in graph.output]
    cut = work_dir / source.path.name
    try:
        onnx.utils.extract_model(str(source.path), str(cut), inputs, outputs, check_model=False)
    except Exception as exc:  # onnx raises ValueError/KeyError/its own types for names it cannot find
        raise InvalidInputError(
            f"cannot cut the model at inputs {inputs} and outputs {outputs}: {first_line(exc)}",
            path=source.path,
            hint="name tensors that exist in the graph (`modelport inspect MODEL` lists inputs and outputs)",
        ) from exc
    plain = dataclasses.replace(loader, inputs=(), outputs=())
    note = f"source cut at inputs {', '.join(inputs)} → outputs {', '.join(outputs)} (--inputs/--outputs)"
    return dataclasses.replace(source, path=cut, loader=plain), note


@dataclasses.dataclass
class _State:
    """What a running chain knows: the source's run and feeds, the latest artifact per format, what it wrote."""

    source: SourceSpec
    options: ChainOptions
    written: list[Path]
    src_run: RunResult | None = None
    feeds: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    #: the second feed set (other sizes for the free dims) and the source's run on it, when a dim was free
    alt_feeds: dict[str, np.ndarray] | None = None
    src_alt_run: RunResult | None = None
    #: the latest artifact per format and its run (outputs in the source's names and layouts)
    latest: dict[Format, tuple[Path, RunResult | None]] = dataclasses.field(default_factory=dict)
    #: the loosest tolerance of the hops so far: an artifact is compared with the source within the drift its
    #: chain allows (an fp32 hop after an fp16 one still carries the fp16 rounding)
    drift: Tolerance | None = None
    #: the sizes the source refused and where it was verified ("" when the first sizes ran)
    size_note: str = ""
    #: the routes that failed before one reached a stop
    notes: list[str] = dataclasses.field(default_factory=list)
    #: the source itself failed to run (no other route can help)
    source_failed: bool = False


def _convert_hop(state: _State, a: Format, b: Format, precision: Precision, out_dir: Path) -> ConversionReport:
    """Run one converter from the latest ``a`` artifact; record every file it wrote."""
    prev_path, prev_run = state.latest[a]
    from_source = prev_path == state.source.path
    hints: Shapes = ()
    if from_source:
        shapes = state.options.convert.input_shapes
        if a is Format.ONNX:
            accepted = {k: tuple(int(d) for d in v.shape) for k, v in state.feeds.items()} if state.src_run else None
            chosen = _onnx_default_shapes(prev_path, shapes, accepted)
            if b is Format.TFLITE:  # onnx2tf may keep dims dynamic: the chosen sizes are hints for its static rungs
                hints = tuple(item for item in chosen if item[0] not in dict(shapes))
            else:
                shapes = chosen
    else:  # the shapes this artifact ran with; tensor names (GraphDef cuts) belong to the source
        shapes = _dynamic_shapes(prev_run.input_specs, prev_run.feeds) if prev_run else ()
    opts = dataclasses.replace(
        state.options.convert,
        precision=precision,
        input_shapes=shapes,
        size_hints=hints,
        check_attempts=state.options.convert.check_attempts and state.options.verify,
    )
    if not from_source:
        opts = dataclasses.replace(opts, inputs=(), outputs=())
    before = set(out_dir.iterdir()) if out_dir.exists() else set()
    conversion = get_converter(a, b)(prev_path, out_dir, opts)
    state.written.extend(Path(f) for f in conversion.files)
    after = set(out_dir.iterdir()) if out_dir.exists() else set()
    state.written.extend(p for p in after - before if p not in state.written)
    if state.options.optimize and b is Format.ONNX and a is not Format.ONNX:
        conversion = _optimize_onnx(conversion)
    return conversion


def _optimize_onnx(conversion: ConversionReport) -> ConversionReport:
    """Run modelport's optimizer on a converted ONNX artifact in place (the hop's verification then covers it)."""
    from modelport.model_io import save_model
    from modelport.passes import OptimizeOptions, optimize

    t0 = time.perf_counter()
    path = Path(conversion.artifact)
    result = optimize(path, options=OptimizeOptions(verify=False))
    save_model(result.model, path)
    rep = result.report
    changed = ", ".join(p.name for p in rep.passes if p.modified) or "nothing to do"
    note = f"optimized by modelport: {rep.nodes_before} → {rep.nodes_after} nodes ({changed})"
    return dataclasses.replace(
        conversion,
        size_bytes=path.stat().st_size,
        seconds=conversion.seconds + time.perf_counter() - t0,
        notes=(*conversion.notes, note),
    )


def _run_source(state: _State, feeds: Mapping[str, np.ndarray] | None, say: Progress) -> RunResult:
    """Run the source once per feed set (the given feeds, or sizes it accepts: :func:`source_runs`)."""
    source, threads = state.source, state.options.threads
    say(f"running the source {source.path.name}")
    try:
        if feeds is not None:
            label = f"{source.path.name}@{runtime_for(source.format)}"
            state.feeds = dict(feeds)
            run = _run_artifact(source.format, source.path, Precision.FP32, state.feeds, threads, source, label)
        else:
            search = source_runs(source, dict(source.input_shapes) or None, state.options.seed, threads)
            run = search.results[0]
            state.feeds = dict(run.feeds)
            if len(search.results) > 1:
                state.src_alt_run = search.results[1]
                state.alt_feeds = dict(search.results[1].feeds)
            state.size_note = search.note()
    except BaseException:
        state.source_failed = True
        raise
    state.latest[source.format] = (source.path, run)
    return run


def _verify_hop(state: _State, hop: HopReport, a: Format, precision: Precision) -> tuple[HopReport, RunResult]:
    """Run the hop's artifact; compare it with the previous artifact and the source; raise on a mismatch."""
    assert state.src_run is not None
    prev_path, prev_run = state.latest[a]
    assert prev_run is not None
    b = hop.conversion.target_format
    run = _run_artifact(b, Path(hop.conversion.artifact), precision, state.feeds, state.options.threads)
    tol = state.options.tolerance or Tolerance.for_precision(precision)
    drift = tol if state.drift is None else state.drift.looser(tol)
    state.drift = drift.at_least(state.src_run.precision, run.precision)
    vs_prev = check(prev_run, run, tol) if prev_path != state.source.path else None
    vs_src = check(state.src_run, run, state.drift)
    hop = dataclasses.replace(hop, against_previous=vs_prev, against_source=vs_src)
    _require(hop)
    hop = _verify_other_sizes(state, hop, b, precision, run)
    return hop, align(run, state.src_run)  # in the source's names and layouts, as later hops compare with it


def _verify_other_sizes(state: _State, hop: HopReport, fmt: Format, precision: Precision, run: RunResult) -> HopReport:
    """A dynamic artifact runs the second feed set too (other sizes for every free dim) and is compared with the
    source there; a static one (the converter fixed the dims) says at which shapes it was verified."""
    if state.alt_feeds is None or state.drift is None:
        return hop
    if all(spec.is_static for spec in run.input_specs):
        shapes = ", ".join(f"{s.name}{list(s.shape or ())}" for s in run.input_specs)
        note = f"static artifact: the converter fixed the dims ({shapes})"
        return dataclasses.replace(
            hop, conversion=dataclasses.replace(hop.conversion, notes=(*hop.conversion.notes, note))
        )
    if state.src_alt_run is None:
        source, threads = state.source, state.options.threads
        label = f"{source.path.name}@{runtime_for(source.format)}"
        state.src_alt_run = _run_artifact(
            source.format, source.path, Precision.FP32, state.alt_feeds, threads, source, label
        )
    try:
        alt = _run_artifact(fmt, Path(hop.conversion.artifact), precision, state.alt_feeds, state.options.threads)
    except InvalidInputError as exc:  # the converter fixed some dims (OpenVINO's sized attempt): they stay fixed
        shapes = ", ".join(f"{s.name}{list(s.shape or ())}" for s in run.input_specs)
        note = f"partly static artifact ({shapes}): the other sizes do not fit it ({first_line(exc, limit=160)})"
        return dataclasses.replace(
            hop, conversion=dataclasses.replace(hop.conversion, notes=(*hop.conversion.notes, note))
        )
    other = check(state.src_alt_run, alt, state.drift)
    extra = ""
    if not other.passed:
        other, extra = _against_samples_one_by_one(state, alt, other)
    hop = dataclasses.replace(hop, against_source_other_sizes=other)
    _require(hop)
    shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in state.alt_feeds.items())
    note = f"dynamic artifact: also verified at {shapes} (max abs error {other.max_abs:.3g}){extra}"
    conversion = dataclasses.replace(hop.conversion, notes=(*hop.conversion.notes, note))
    return dataclasses.replace(hop, conversion=conversion)


def _against_samples_one_by_one(state: _State, alt: RunResult, failed: Comparison) -> tuple[Comparison, str]:
    """When a batched artifact differs from the source at the second sizes, ask whether the *source's runtime*
    agrees with itself: run the source on each sample of the batch alone and stack the outputs. If the source's
    batched result differs from its own per-sample results beyond the tolerance while the artifact matches the
    per-sample ones, the reference runtime is the one that moved (measured: ONNX Runtime 1.32 on magika's model
    gives a row of a batch of 2 0.003 away from the same row run alone; OpenVINO gives identical rows), and the
    artifact is judged against the per-sample reference, with a note saying so. Otherwise ``failed`` stands."""
    assert state.alt_feeds is not None and state.src_alt_run is not None and state.drift is not None
    sizes = {int(v.shape[0]) for v in state.alt_feeds.values() if v.ndim > 0}
    batched = state.src_alt_run.tensors
    if len(sizes) != 1 or (n := sizes.pop()) < 2 or any(np.ndim(t) == 0 or len(t) != n for t in batched.values()):
        return failed, ""
    source = state.source
    rows = [
        _run_artifact(
            source.format,
            source.path,
            Precision.FP32,
            {k: v[i : i + 1] for k, v in state.alt_feeds.items()},
            state.options.threads,
            source,
            f"{source.path.name}@{runtime_for(source.format)}",
        )
        for i in range(n)
    ]
    stacked = {k: np.concatenate([np.asarray(r.tensors[k]) for r in rows]) for k in batched}
    per_sample = dataclasses.replace(state.src_alt_run, tensors=stacked)
    self_check = check(state.src_alt_run, per_sample, state.drift)
    if self_check.passed:
        return failed, ""  # the source agrees with itself: the artifact is what differs
    against = check(per_sample, alt, state.drift)
    if not against.passed:
        return failed, ""
    return against, (
        f"; judged against the source run one sample at a time: its runtime's batch of {n} differs from its own "
        f"per-sample results by {self_check.max_abs:.3g} (beyond tolerance), the artifact does not"
    )


def _run(
    state: _State,
    targets: Sequence[Format],
    out_dir: Path,
    segments: list[list[tuple[Format, Format]]],
    feeds: Mapping[str, np.ndarray] | None,
    say: Progress,
    t0: float,
) -> ChainReport:
    source = state.source
    reports: list[HopReport] = []
    produced: dict[Format, str] = {}
    for i, segment in enumerate(segments):
        before = [h for seg in segments[:i] for h in seg]
        after = [h for seg in segments[i + 1 :] for h in seg]
        for hop in _run_segment(state, segment, before, after, targets, out_dir, feeds, say):
            reports.append(hop)
            if hop.target:
                produced[hop.conversion.target_format] = hop.conversion.artifact
    if state.size_note and reports:  # on the first hop: it is the one verified on the sizes the source accepted
        first = reports[0].conversion
        reports[0] = dataclasses.replace(
            reports[0], conversion=dataclasses.replace(first, notes=(state.size_note, *first.notes))
        )
    return ChainReport(
        source=str(source.path),
        source_format=source.format,
        source_runtime=runtime_for(source.format),
        feeds=tuple((k, tuple(int(s) for s in v.shape), str(v.dtype)) for k, v in state.feeds.items()),
        hops=tuple(reports),
        targets=tuple((t, produced[t]) for t in targets if t in produced),
        seconds=time.perf_counter() - t0,
        notes=tuple(n for n in (state.size_note, *state.notes) if n),
    )


#: the failures after which a chain tries another route to the same stop
_ROUTE_ERRORS = (ConversionError, VerificationError, InferenceError, ModelLoadError, RuntimeUnavailable)


def _run_segment(
    state: _State,
    segment: list[tuple[Format, Format]],
    before: list[tuple[Format, Format]],
    after: list[tuple[Format, Format]],
    targets: Sequence[Format],
    out_dir: Path,
    feeds: Mapping[str, np.ndarray] | None,
    say: Progress,
) -> list[HopReport]:
    """The hops to one stop: the planned route, then (when a hop fails to convert or verify) the next-cheapest
    routes from the same start. A failed route's files are removed and the chain's state restored; the hop that
    reaches the stop says which routes failed and why."""
    start, stop = segment[0][0], segment[-1][1]
    routes = [segment, *(r for r in alternative_routes(start, stop) if r != segment)][:MAX_ROUTES]
    failures: list[tuple[list[tuple[Format, Format]], BaseException]] = []
    for route in routes:
        hops = [*before, *route, *after]
        existing = set(out_dir.iterdir()) if out_dir.exists() else set()
        mark, latest, drift = len(state.written), dict(state.latest), state.drift
        reports: list[HopReport] = []
        try:
            for j, (a, b) in enumerate(route):
                reports.append(_hop(state, a, b, _is_target(hops, len(before) + j, targets), out_dir, feeds, say))
        except _ROUTE_ERRORS as exc:
            if state.source_failed or len(routes) == 1 or _is_about(exc, state.source.path):
                raise
            _remove([*state.written[mark:], *((set(out_dir.iterdir()) if out_dir.exists() else set()) - existing)])
            del state.written[mark:]
            state.latest, state.drift = latest, drift
            source = state.source
            if state.src_run is not None and state.latest[source.format][0] == source.path:
                state.latest[source.format] = (source.path, state.src_run)  # the source ran during this route
            failures.append((route, exc))
            log.info("route %s failed: %s", route_text(route), _why(exc))
            say(f"{route_text(route)} failed; trying another route")
            continue
        if failures:
            tried = "; ".join(f"{route_text(r)}: {_why(e, 200)}" for r, e in failures)
            note = f"route {route_text(route)} (after {tried})"
            state.notes.append(note)
            last = reports[-1]
            reports[-1] = dataclasses.replace(
                last, conversion=dataclasses.replace(last.conversion, notes=(*last.conversion.notes, note))
            )
        return reports
    raise _every_route_failed(start, stop, failures)


def _why(exc: BaseException, limit: int = 400) -> str:
    """An error's first line without the file path and hint its ``str`` adds (the route names the step)."""
    return first_line(exc.message if isinstance(exc, ModelportError) else exc, limit=limit)


def _is_about(exc: BaseException, source: Path) -> bool:
    """A ModelLoadError naming the source file: the source is broken, and no other route can help."""
    return isinstance(exc, ModelLoadError) and exc.path is not None and exc.path == source


def _every_route_failed(
    start: Format, stop: Format, failures: list[tuple[list[tuple[Format, Format]], BaseException]]
) -> ModelportError:
    """One error listing each route tried and its error's first line (the failures' own type when they agree)."""
    kinds = {type(e) for _, e in failures}
    cls: type[ModelportError] = kinds.pop() if len(kinds) == 1 else ConversionError  # type: ignore[assignment]
    tried = "; ".join(f"{route_text(r)}: {_why(e, 300)}" for r, e in failures)
    hints = [e.hint for _, e in failures if isinstance(e, ModelportError) and e.hint]
    return cls(
        f"every route from {start.value} to {stop.value} failed ({len(failures)}): {tried}",
        hint=hints[-1] if hints else None,
    )


#: formats whose converters from ONNX fix the free dims (onnx2tf, TensorRT's profiles) at the sizes they are given
_FIXES_DIMS = frozenset({Format.TFLITE, Format.TENSORRT})


def _is_target(hops: Sequence[tuple[Format, Format]], i: int, targets: Sequence[Format]) -> bool:
    """Whether hop ``i`` produces a requested target (the last hop to that format)."""
    b = hops[i][1]
    return b in targets and all(h[1] is not b for h in hops[i + 1 :])


def _hop(
    state: _State,
    a: Format,
    b: Format,
    is_target: bool,
    out_dir: Path,
    feeds: Mapping[str, np.ndarray] | None,
    say: Progress,
) -> HopReport:
    """Convert one hop and verify it. The source runs after the first conversion (a broken file fails in the
    converter), except an ONNX source converted to a format that fixes its free dims: it runs first, so the
    converter gets sizes the source accepts."""
    precision = state.options.convert.precision if is_target else Precision.FP32
    verify = state.options.verify
    from_source = state.latest[a][0] == state.source.path
    if verify and state.src_run is None and from_source and a is Format.ONNX and b in _FIXES_DIMS:
        load_proto(state.source.path, check=False, load_external_data=False)  # a broken file: ModelLoadError
        state.src_run = _run_source(state, feeds, say)
    say(f"converting {a.value} → {b.value}")
    conversion = _convert_hop(state, a, b, precision, out_dir)
    hop = HopReport(conversion, runtime_for(b), is_target)
    run: RunResult | None = None
    if verify:
        if state.src_run is None:
            state.src_run = _run_source(state, feeds, say)
        say(f"verifying {Path(conversion.artifact).name}")
        hop, run = _verify_hop(state, hop, a, precision)
    state.latest[b] = (Path(conversion.artifact), run)
    return hop


def _remove(paths: Sequence[Path]) -> None:
    for path in reversed(list(paths)):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _require(hop: HopReport) -> None:
    for comparison in (hop.against_previous, hop.against_source, hop.against_source_other_sizes):
        if comparison is not None and not comparison.passed:
            try:
                comparison.require()
            except VerificationError as exc:
                raise VerificationError(f"hop {hop.label}: {exc.message}", hint=exc.hint, path=exc.path) from exc


def parse_formats(items: Sequence[str | Format] | str) -> list[Format]:
    """``"onnx,openvino"`` or a list → formats, order kept, duplicates dropped."""
    from modelport.conversion import parse_format

    raw = (
        items.split(",")
        if isinstance(items, str)
        else [p for t in items for p in (t.split(",") if isinstance(t, str) else [t])]
    )
    result: list[Format] = []
    for item in raw:
        if isinstance(item, str) and not item.strip():
            continue
        fmt = parse_format(item)
        if fmt not in result:
            result.append(fmt)
    if not result:
        raise InvalidInputError("no target format given")
    return result
