"""Conversion chains: source → (via formats) → targets, every hop verified.

Planning: the registered converters form a graph of formats. ``via`` formats are visited in order, then each
target; a stop already produced is reused, anything else is reached by the cheapest path (1 per hop; ONNX →
TFLite through onnx2tf counts 1.5) from the most recently produced format that reaches it (so
``.pb --via saved_model,tflite --to onnx,openvino,tflite`` runs
pb → saved_model → tflite → onnx → openvino, and the TFLite target is the via artifact).

Verification goes through the comparator (:mod:`modelport.verify.comparator`): the source runs once on seeded
feeds (or the given ones). Every artifact runs on the same feeds, renamed and transposed to its inputs, and its
outputs, paired by name/order/shape and transposed back to the source's names and layouts, are compared with the
previous artifact's (the hop) and with the source's (the drift). A hop is compared with the previous artifact within
the tolerance of its precision, and with the source within the loosest tolerance of the hops so far (the drift the
chain allows); both are raised to the precision of the model files themselves (an int8 or fp16 source is judged at
its own precision). A hop outside tolerance stops the chain with a VerificationError; every file the chain wrote is
removed on any failure, so nothing half-written remains.

Precision: intermediate hops are fp32; the requested precision applies to the hops that produce a target.
"""

from __future__ import annotations

import collections
import dataclasses
import heapq
import itertools
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from modelport.backends import LoaderOptions, backend_for_format, open_runner
from modelport.backends.runner import Runner, RunnerOptions
from modelport.conversion.base import ConversionReport, ConvertOptions, get_converter, registered_routes
from modelport.errors import ConversionError, InvalidInputError, VerificationError
from modelport.formats import Format, Precision
from modelport.inputs import TensorSpec, random_feeds, verification_shapes
from modelport.inspection.onnx_model import tensor_spec
from modelport.model_io import load_proto
from modelport.reports.serialize import JsonReport
from modelport.verify.comparator import Comparison, RunResult, Subject, align, check
from modelport.verify.comparator import run as run_subject
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


def plan(source: Format, targets: Sequence[Format], via: Sequence[Format] = ()) -> list[tuple[Format, Format]]:
    """The hops (source format, target format) that reach every ``via`` then every target, in order.

    Raises:
        ConversionError: a stop cannot be reached (lists the registered routes).
    """
    routes = registered_routes()
    graph: dict[Format, list[Format]] = collections.defaultdict(list)
    for a, b in routes:
        if a is not b:
            graph[a].append(b)
    produced: list[Format] = [source]
    hops: list[tuple[Format, Format]] = []
    for stop in [*via, *targets]:
        if stop is source and (source, source) in routes and stop in targets:
            hops.append((source, source))  # same format: a precision conversion (ONNX → ONNX fp16)
            continue
        if stop in produced:
            continue
        path = _shortest(graph, list(reversed(produced)), stop)
        if path is None:
            available = ", ".join(f"{a.value}→{b.value}" for a, b in routes)
            raise ConversionError(
                f"no converter from {produced[-1].value} to {stop.value}", hint=f"available routes: {available}"
            )
        for a, b in itertools.pairwise(path):
            hops.append((a, b))
            produced.append(b)
    return hops


#: extra cost of hops that rewrite the graph's layout through a third-party tool: with two routes of equal length,
#: a TF-native model reaches TFLite through TensorFlow's own converter rather than through ONNX and onnx2tf.
_HOP_COST: dict[tuple[Format, Format], float] = {(Format.ONNX, Format.TFLITE): 1.5}


def _shortest(graph: Mapping[Format, list[Format]], starts: list[Format], goal: Format) -> list[Format] | None:
    """Cheapest path (Dijkstra over hop costs) to ``goal`` from the first start (most recent first) that reaches it."""
    for start in starts:  # a chain goes on from its latest artifact; earlier ones only when that cannot reach goal
        frontier: list[tuple[float, int, list[Format]]] = [(0.0, 0, [start])]
        done: set[Format] = set()
        counter = 0
        while frontier:
            cost, _, path = heapq.heappop(frontier)
            node = path[-1]
            if node in done:
                continue
            done.add(node)
            if node is goal:
                return path
            for nxt in graph.get(node, []):
                if nxt not in done:
                    counter += 1
                    heapq.heappush(frontier, (cost + _HOP_COST.get((node, nxt), 1.0), counter, [*path, nxt]))
    return None


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


def source_feeds(
    source: SourceSpec,
    feeds: Mapping[str, np.ndarray] | None,
    input_shapes: Mapping[str, Sequence[int]] | None,
    seed: int,
    threads: int | None = None,
) -> list[dict[str, np.ndarray]]:
    """The given feeds, or seeded random ones for the source's inputs at the sizes of
    :func:`~modelport.inputs.verification_shapes`: ``input_shapes`` as given, every other free dim chosen here, and
    a second set at other sizes when a dim was free (the chain shows a dynamic artifact stays right at any size)."""
    if feeds is not None:
        return [dict(feeds)]
    with open_artifact(source.format, source.path, RunnerOptions(threads=threads), source) as runner:
        specs = runner.input_specs
    sets = verification_shapes(specs, input_shapes)
    return [random_feeds(specs, shapes, seed=seed + i) for i, shapes in enumerate(sets)]


Shapes = tuple[tuple[str, tuple[int, ...]], ...]


def _onnx_default_shapes(path: Path, given: Shapes) -> Shapes:
    """For an ONNX source: ``given`` plus, for every other input with a free dim besides the batch, the first
    verification sizes — for the converters that need fixed dims (onnx2tf, TensorRT profiles); a free batch alone
    is left to them (onnx2tf keeps it dynamic), and formats that keep dims dynamic ignore these shapes."""
    graph = load_proto(path, check=False, load_external_data=False).graph
    init = {t.name for t in graph.initializer}
    specs = [tensor_spec(i) for i in graph.input if i.name not in init]
    try:
        first = verification_shapes(specs, dict(given))[0]
    except InvalidInputError:
        return tuple(given)  # an unknown rank: the converter says what it needs
    names = dict(given)

    def free_beyond_batch(spec: TensorSpec) -> bool:
        return any(not (isinstance(d, int) and d >= 0) for d in (spec.shape or ())[1:])

    return tuple(given) + tuple((s.name, first[s.name]) for s in specs if s.name not in names and free_beyond_batch(s))


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
    hops = plan(source.format, targets, parse_formats(list(options.via)) if options.via else [])
    if not hops:
        raise ConversionError(
            f"nothing to convert: the source is already {', '.join(t.value for t in targets)}",
            hint="name another target format with --to",
        )
    for pair in hops:
        get_converter(*pair)  # fail before writing anything
    written: list[Path] = []
    try:
        state = _State(source, options, written, latest={source.format: (source.path, None)})
        return _run(state, targets, out_dir, hops, feeds, say, t0)
    except BaseException:
        for path in reversed(written):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise


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


def _convert_hop(state: _State, a: Format, b: Format, precision: Precision, out_dir: Path) -> ConversionReport:
    """Run one converter from the latest ``a`` artifact; record every file it wrote."""
    prev_path, prev_run = state.latest[a]
    from_source = prev_path == state.source.path
    if from_source:
        shapes = state.options.convert.input_shapes
        if a is Format.ONNX:
            shapes = _onnx_default_shapes(prev_path, shapes)
    else:  # the shapes this artifact ran with; tensor names (GraphDef cuts) belong to the source
        shapes = _dynamic_shapes(prev_run.input_specs, prev_run.feeds) if prev_run else ()
    opts = dataclasses.replace(state.options.convert, precision=precision, input_shapes=shapes)
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


def _run_source(state: _State, feeds: Mapping[str, np.ndarray] | None) -> RunResult:
    source, threads = state.source, state.options.threads
    sets = source_feeds(source, feeds, dict(source.input_shapes) or None, state.options.seed, threads)
    state.feeds = sets[0]
    state.alt_feeds = sets[1] if len(sets) > 1 else None
    label = f"{source.path.name}@{runtime_for(source.format)}"
    run = _run_artifact(source.format, source.path, Precision.FP32, state.feeds, threads, source, label)
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
    alt = _run_artifact(fmt, Path(hop.conversion.artifact), precision, state.alt_feeds, state.options.threads)
    other = check(state.src_alt_run, alt, state.drift)
    hop = dataclasses.replace(hop, against_source_other_sizes=other)
    _require(hop)
    shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in state.alt_feeds.items())
    note = f"dynamic artifact: also verified at {shapes} (max abs error {other.max_abs:.3g})"
    conversion = dataclasses.replace(hop.conversion, notes=(*hop.conversion.notes, note))
    return dataclasses.replace(hop, conversion=conversion)


def _run(
    state: _State,
    targets: Sequence[Format],
    out_dir: Path,
    hops: list[tuple[Format, Format]],
    feeds: Mapping[str, np.ndarray] | None,
    say: Progress,
    t0: float,
) -> ChainReport:
    source, options = state.source, state.options.convert
    reports: list[HopReport] = []
    produced: dict[Format, str] = {}
    for i, (a, b) in enumerate(hops):
        is_target = b in targets and all(h[1] is not b for h in hops[i + 1 :])
        precision = options.precision if is_target else Precision.FP32
        say(f"converting {a.value} → {b.value}")
        conversion = _convert_hop(state, a, b, precision, out_dir)
        hop = HopReport(conversion, runtime_for(b), is_target)
        run: RunResult | None = None
        if state.options.verify:
            if state.src_run is None:  # after the first conversion, so a broken source fails in the converter
                say(f"running the source {source.path.name}")
                state.src_run = _run_source(state, feeds)
            say(f"verifying {Path(conversion.artifact).name}")
            hop, run = _verify_hop(state, hop, a, precision)
        reports.append(hop)
        state.latest[b] = (Path(conversion.artifact), run)
        if is_target:
            produced[b] = conversion.artifact
    return ChainReport(
        source=str(source.path),
        source_format=source.format,
        source_runtime=runtime_for(source.format),
        feeds=tuple((k, tuple(int(s) for s in v.shape), str(v.dtype)) for k, v in state.feeds.items()),
        hops=tuple(reports),
        targets=tuple((t, produced[t]) for t in targets if t in produced),
        seconds=time.perf_counter() - t0,
    )


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
