"""What every edit shares: how it is checked (:class:`CheckOptions`), the report, the result (written atomically),
the feeds, and the check against the sources.

An edit is a function ``edit_x(model(s), …, *, check=CheckOptions(…)) -> EditResult``; it never modifies its inputs
and writes nothing until ``result.write(path)``. Each edit is verified with the one comparator
(:func:`modelport.verify.comparator.compare_outputs`) against what the sources compute on the same feeds — the
merged model against the sources run in sequence, an extracted sub-graph against the original's inner tensors, a
renamed model against the original under the renaming — at the fp32 tolerance unless the user gives one. The feeds
are the user's (:attr:`CheckOptions.feeds`) as one set, else seeded random ones at ``optimize``'s verification sizes
(:func:`feed_sets`; :func:`original_runs` walks down :data:`~modelport.inputs.SIZE_LADDER` until the original
accepts them, e.g. an STFT that needs a longer signal).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from modelport.errors import InferenceError, InvalidInputError, ModelLoadError, VerificationError
from modelport.inputs import TensorSpec, check_feeds, load_feeds, random_feeds, search_shapes
from modelport.model_io import check_proto, load_proto, save_model
from modelport.passes.api import graph_input_specs, onnx_outputs, refuse_overwrite, verification_feeds
from modelport.passes.report import op_histogram
from modelport.reports.serialize import JsonReport
from modelport.verify.comparator import Comparison, compare_outputs, worst_of
from modelport.verify.session import OnnxSession
from modelport.verify.tolerance import Tolerance

#: ``{tensor name: array}``
Tensors = Mapping[str, np.ndarray]
#: what the reference computes on one set of feeds (the sources, run the way the edit promises)
Reference = Callable[[Tensors], Tensors]
#: a model open in a runtime: feeds → outputs
Run = Callable[[Tensors], Tensors]
#: a source model: an ONNX file or a proto (never modified)
Source = str | Path | onnx.ModelProto
#: feeds to verify on: an .npz/.npy file or ``{input name: array}`` (None: seeded random feeds)
Feeds = str | Path | Mapping[str, np.ndarray] | None


@dataclasses.dataclass(frozen=True)
class CheckOptions:
    """How an edit is checked against its sources; every edit takes one as ``check=`` (None: these defaults).

    Each field has the same meaning as the option of that name on ``optimize``
    (:class:`modelport.passes.api.OptimizeOptions`) and as the CLI flag (``--no-verify``, ``--rtol/--atol``,
    ``--seed``, ``--input-shape``, ``--batch``, ``--feeds``, ``--threads``).

    Attributes:
        verify: run the result and its sources (ONNX Runtime with its graph optimizations off; OpenVINO for the
            ``ir_*`` edits) and compare them; False skips the check and the report's verification is None.
        tolerance: the comparator's pass/fail bound (default: the fp32 policy of :mod:`modelport.verify.tolerance`).
        seed: seed of the random verification feeds (set ``k`` is drawn with ``seed + k``).
        input_shapes: ``(input name, shape)`` pairs the verification feeds take; the other dynamic dims get the
            default verification sizes. Each edit says whose input names these are (the result's for ``merge``, the
            original's for ``extract`` and ``rename``).
        batch: size of every dynamic leading dim of the verification feeds.
        feeds: verify on these inputs instead of random ones: an ``.npz`` (one array per input name) or ``.npy``
            (single-input models) file, or ``{input name: array}``; checked against the model's inputs.
        threads: runtime threads for the check (None: the runtime's default, normally every core).
    """

    verify: bool = True
    tolerance: Tolerance | None = None
    seed: int = 0
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    batch: int | None = None
    feeds: Feeds = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.batch is not None and self.batch < 1:
            raise InvalidInputError(f"the verification batch must be ≥ 1, got {self.batch}")
        if self.threads is not None and self.threads < 1:
            raise InvalidInputError(f"threads must be ≥ 1, got {self.threads}")

    @property
    def shapes(self) -> dict[str, tuple[int, ...]] | None:
        """:attr:`input_shapes` as a dict (None when empty)."""
        return dict(self.input_shapes) or None


DEFAULT_CHECK = CheckOptions()  # the check an edit runs when given none


@dataclasses.dataclass(frozen=True)
class EditReport(JsonReport):
    """What one edit did.

    Attributes:
        edit: the edit's name (``merge``, ``extract``, ``rename`` …).
        sources: the input files (or ``"<model>"``).
        changes: one line per change, for people (``prefixed B's names with b/``, ``renamed 12 tensors``).
        nodes_before / nodes_after: node counts (sum over the sources before).
        ops_before / ops_after: op-type histograms.
        inputs / outputs: the result's graph inputs and outputs.
        verification: the result against the sources (None when not verified).
        seconds: wall time of the edit and its check.
        output: the file written (set by :meth:`EditResult.write`).
    """

    edit: str
    sources: tuple[str, ...]
    changes: tuple[str, ...]
    nodes_before: int
    nodes_after: int
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    verification: Comparison | None
    seconds: float
    output: str = ""


@dataclasses.dataclass(frozen=True)
class EditResult:
    """The edited model and its report; :meth:`write` saves the model."""

    model: onnx.ModelProto
    report: EditReport

    def to_json(self, indent: int | None = 2) -> str:
        return self.report.to_json(indent)

    def write(self, path: str | Path) -> EditReport:
        """Save the model to ``path`` atomically (external data beside it when it needs some).

        Raises:
            InvalidInputError: ``path`` is one of the source files (inputs are never modified).
        """
        dst = Path(path)
        refuse_source(dst, self.report.sources)
        save_model(self.model, dst)
        return dataclasses.replace(self.report, output=str(dst))


def refuse_source(dst: Path, sources: Sequence[str]) -> None:
    """Raise InvalidInputError when writing ``dst`` would replace a file of one of the ``sources``: the model, its
    external data or an IR's ``.bin``, by path, symlink or hard link (an edit never overwrites its input).

    ``dst`` is an ONNX file (with the external data file it may get, ``dst.data``) or an IR ``.xml`` (with its
    ``.bin``).
    """
    outputs = [dst, dst.with_suffix(".bin")] if dst.suffix.lower() == ".xml" else onnx_outputs(dst)
    refuse_overwrite(outputs, [s for s in sources if s != IN_MEMORY], noun="an input model")


IN_MEMORY = "<model>"


def load_source(model: Source) -> tuple[onnx.ModelProto, str]:
    """The model as a checked proto and the name reports give it."""
    if isinstance(model, onnx.ModelProto):
        check_proto(model)
        return model, IN_MEMORY
    return load_proto(model), str(model)


def path_of(label: str) -> str | None:
    """The file behind a source's label (None for an in-memory model)."""
    return None if label.startswith("<") else label


def node_count(proto: onnx.ModelProto) -> int:
    """Nodes in the main graph and its sub-graphs."""
    return sum(1 for _ in ir.traversal.RecursiveGraphIterator(ir.serde.deserialize_model(proto).graph))


def ops_of(proto: onnx.ModelProto) -> dict[str, int]:
    """The op histogram of a proto (see :func:`modelport.passes.report.op_histogram`)."""
    return op_histogram(ir.serde.deserialize_model(proto))


# --- feeds --------------------------------------------------------------------------------------------------


def input_specs(proto: onnx.ModelProto) -> list[TensorSpec]:
    """The graph inputs (not initializers) as TensorSpecs (:func:`modelport.passes.api.graph_input_specs`)."""
    return graph_input_specs(ir.serde.deserialize_model(proto).graph)


def given_feeds(feeds: str | Path | Mapping[str, np.ndarray], specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """The user's feeds (a file or arrays by name), checked against the inputs ``specs``."""
    if isinstance(feeds, (str, Path)):
        return load_feeds(feeds, specs)
    given = {k: np.asarray(v) for k, v in feeds.items()}
    check_feeds(given, specs)
    return given


def feed_sets(proto: onnx.ModelProto, check: CheckOptions) -> list[dict[str, np.ndarray]]:
    """The feed sets to verify on for ``proto``'s inputs: the user's feeds as one set, else seeded random ones at
    ``optimize``'s verification sizes (one set per size set)."""
    if check.feeds is not None:
        return [given_feeds(check.feeds, input_specs(proto))]
    return verification_feeds(ir.serde.deserialize_model(proto).graph, check.shapes, check.batch, check.seed)


def source_run(run: Run, label: str) -> Run:
    """``run`` with a source's failure reported as such (verify_edit would blame the edited model)."""

    def guarded(feeds: Tensors) -> Tensors:
        try:
            return run(feeds)
        except InferenceError as exc:
            raise InvalidInputError(
                f"the source {label} fails on the verification inputs: {exc.message}",
                hint="verify on real inputs (an .npz of feeds), or skip the verification",
            ) from exc

    return guarded


def original_runs(
    source: onnx.ModelProto, run: Run, check: CheckOptions, label: str, feeds_for: onnx.ModelProto | None = None
) -> list[tuple[dict[str, np.ndarray], Tensors]]:
    """Feeds and the original's outputs on them, one pair per verification set.

    The user's feeds (checked against ``feeds_for``'s inputs, default the source's) are one set; else the sizes
    are the optimizer's (``check``'s shapes and batch fixed, the free dims at the default sizes, a second set at
    other sizes), walking down :data:`~modelport.inputs.SIZE_LADDER` when the original refuses them: each accepted
    set is run once.

    Raises:
        InvalidInputError: the original runs at none of the sizes (or not at the fixed ones, or not on the feeds).
    """
    if check.feeds is not None:
        feeds = given_feeds(check.feeds, input_specs(feeds_for or source))
        return [(feeds, source_run(run, Path(label).name)(feeds))]
    specs = input_specs(source)

    def attempt(sizes: Mapping[str, Sequence[int]], role: int) -> tuple[dict[str, np.ndarray], Tensors]:
        feeds = random_feeds(specs, sizes, seed=check.seed + role)
        return feeds, run(feeds)

    try:
        return list(search_shapes(specs, attempt, check.shapes, check.batch).results)
    except InferenceError as exc:
        given = ", ".join(f"{k}{list(v)}" for k, v in check.input_shapes)
        given = given or (f"batch {check.batch}" if check.batch else "")
        raise InvalidInputError(
            f"the original model does not run{' at ' + given if given else ''}: {exc.message}",
            path=path_of(label),
            hint="the model bakes in a size: choose a shape it accepts" if given else "give the input shapes it needs",
        ) from exc


# --- the check ------------------------------------------------------------------------------------------------


def verify_edit(
    reference: Reference,
    candidate: onnx.ModelProto,
    feeds: Sequence[Tensors],
    check: CheckOptions = DEFAULT_CHECK,
    *,
    label: str = "edited",
    reference_label: str = "sources",
) -> Comparison:
    """Run ``candidate`` in ONNX Runtime on each feed set and compare its outputs with ``reference(feeds)``.

    The reference's tensors pair with the candidate's by name (then order, then shape), at ``check.tolerance``
    with ``check.threads``. Returns the worst comparison.

    Raises:
        VerificationError: an output differs beyond the tolerance (the message names it), or the candidate fails
            to load or run where the sources ran.
    """
    tol = check.tolerance or Tolerance.for_precision("fp32")
    results: list[Comparison] = []
    inputs = {i.name for i in candidate.graph.input}
    with OnnxSession(candidate, check.threads) as run:
        for f in feeds:
            want = reference(f)  # a source that fails here is the source's error, not the edit's
            try:
                got = run({k: v for k, v in f.items() if k in inputs})
            except (InferenceError, ModelLoadError) as exc:
                raise VerificationError(f"the {label} model fails where the sources run: {exc.message}") from exc
            results.append(compare_outputs(want, got, tol, reference_label=reference_label, candidate_label=label))
    worst = worst_of(results)
    return worst.require()


def verify_against_original(
    source: onnx.ModelProto,
    edited: onnx.ModelProto,
    check: CheckOptions,
    label: str,
    *,
    edited_label: str = "edited",
    renamed: Mapping[str, str] | None = None,
    feeds_for: onnx.ModelProto | None = None,
) -> Comparison:
    """``edited`` against the original on the same feeds (:func:`original_runs`), at sizes the original accepts.

    ``renamed`` (``{old: new}`` tensor names) renames the feeds and the original's outputs first; ``feeds_for`` is
    the model the user's feeds are checked against (default: the source); ``edited_label`` names the result.
    """
    with OnnxSession(source, check.threads) as run_original:  # the original first: its refusal is the user's error
        runs = original_runs(source, run_original, check, label, feeds_for)
    names = renamed or {}
    wanted: dict[int, Tensors] = {}
    feeds: list[dict[str, np.ndarray]] = []
    for fed, got in runs:
        mine = {names.get(k, k): v for k, v in fed.items()}
        wanted[id(mine)] = {names.get(k, k): v for k, v in got.items()}
        feeds.append(mine)
    return verify_edit(lambda f: wanted[id(f)], edited, feeds, check, label=edited_label, reference_label="original")


def make_report(
    edit: str,
    sources: Sequence[str],
    before: Sequence[onnx.ModelProto],
    after: onnx.ModelProto,
    changes: Sequence[str],
    verification: Comparison | None,
    start: float,
) -> EditReport:
    """The report of an edit from its sources and result (``start``: ``time.perf_counter()`` at its start)."""
    ops: dict[str, int] = {}
    for proto in before:
        for op, n in ops_of(proto).items():
            ops[op] = ops.get(op, 0) + n
    return EditReport(
        edit=edit,
        sources=tuple(sources),
        changes=tuple(changes),
        nodes_before=sum(node_count(p) for p in before),
        nodes_after=node_count(after),
        ops_before=dict(sorted(ops.items())),
        ops_after=ops_of(after),
        inputs=tuple(i.name for i in after.graph.input if i.name not in {t.name for t in after.graph.initializer}),
        outputs=tuple(o.name for o in after.graph.output),
        verification=verification,
        seconds=time.perf_counter() - start,
    )
