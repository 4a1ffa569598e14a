r"""Bisection: find the op where two ONNX models that share tensor names start to differ, in O(log n) runs.

For when exposing every intermediate tensor is impossible or changes what runs (fused kernels, a runtime that
cannot trace). The reference's nodes are taken in their topological order :math:`v_1 \dots v_n` (the file's order:
ONNX requires one, and the checker enforces it on load). A *cut* after :math:`k` nodes is the set of tensors crossing
it,

.. math::  C_k = \{\, t \in \operatorname{out}(v_1..v_k) : t \text{ is read by } v_{k+1}..v_n
           \text{ or is a graph output} \,\},

:math:`C_0` being the graph inputs (fed identically, so the same) and :math:`C_n` the graph outputs. A *probe* at
:math:`k` extracts the prefix of **both** models from their graph inputs up to :math:`C_k`
(:func:`modelport.edit.extract`), runs each prefix on its runtime on the same feeds, and judges the cut tensors with
the one comparator (:func:`modelport.verify.comparator.check`, raised to the precision of the files compared).

The search keeps the invariant "the cut at ``lo`` passes, the cut at ``hi`` fails". It starts with one probe of the
whole models (``lo = 0``, ``hi = n``; if their outputs pass, there is nothing to find), then probes the cut nearest
the midpoint :math:`\lfloor (lo + hi)/2 \rfloor` and keeps the failing half, until :math:`hi - lo = 1`: node
:math:`v_{hi}` is the first op whose output differs while everything it read agreed. That is
:math:`1 + \lceil \log_2 n \rceil` probes at most.

A cut is usable when every tensor of it exists in the candidate under the same name (an ORT-optimized copy, ORT's
QDQ quantizer, a planted-fault copy keep them). In a QDQ candidate, a tensor followed by ``QuantizeLinear →
DequantizeLinear`` is read after that pair (what the next layer sees: the quantization error included, and a Relu
the quantizer folded into the Q's range applied). When the cuts strictly between ``lo`` and ``hi`` are all unusable
(e.g. the candidate fused those nodes), the search stops there and reports the ops of that range. A candidate that
shares no intermediate tensor name with the reference (a converted model) is refused: use per-tensor comparison,
which also matches tensors by position.

A monotonicity caveat: a fault whose error is masked later (e.g. by a ReLU or a Max) can make a cut pass after a
failing one; bisection then finds *a* failing op, not necessarily the first — the per-tensor comparison finds the
first.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx

from modelport.backends.runner import RunnerOptions
from modelport.edit.base import CheckOptions, feed_sets
from modelport.edit.extraction import extract
from modelport.errors import InferenceError, InvalidInputError, ModelLoadError
from modelport.formats import Precision
from modelport.model_io import load_proto
from modelport.reports.serialize import JsonReport
from modelport.verify.comparator import Comparison, RunResult, Subject, check, run
from modelport.verify.tolerance import Tolerance

log = logging.getLogger(__name__)

#: cuts tried around one midpoint before the search stops there (each failed try costs an extraction)
MAX_TRIES = 8
PER_TENSOR_HINT = "bisection needs shared tensor names; use --per-tensor, which also matches tensors by position"


@dataclasses.dataclass(frozen=True)
class BisectStep(JsonReport):
    """One probe: both models cut after ``position`` reference nodes, their cut tensors compared.

    Attributes:
        position: how many reference nodes (in topological order) precede the cut; the node count for the whole
            models.
        cut: the tensors crossing the cut (the graph outputs for the whole models).
        passed: every cut tensor within tolerance.
        max_abs: the largest absolute error over the cut tensors.
        worst: the cut tensor with the largest error (a failing one first).
        reason: the comparator's one line on why it failed ("" when it passed).
    """

    position: int
    cut: tuple[str, ...]
    passed: bool
    max_abs: float
    worst: str
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class BisectResult(JsonReport):
    """Where two models diverge, found by bisection.

    Attributes:
        reference, candidate: ``<file>@<runtime>``.
        tolerance: the policy asked for (each step raises it to the precision of the files it compares).
        nodes: the reference's node count.
        steps: the probes in the order they ran (the first: the whole models).
        passed: the whole models' outputs agree (then no range is narrowed and ``ops`` is empty).
        last_passing: the cut tensors of the last passing cut (the graph inputs when none passed).
        first_failing: the cut tensors of the first failing cut (the graph outputs when only they failed).
        ops: the reference nodes between those two cuts — one node when the search narrowed fully.
        op_types: their op types.
        runs: probes run (each runs both prefixes once).
        seconds: wall time.
        note: why the range holds more than one op (no usable cut inside it), else "".
    """

    reference: str
    candidate: str
    tolerance: Tolerance
    nodes: int
    steps: tuple[BisectStep, ...]
    passed: bool
    last_passing: tuple[str, ...]
    first_failing: tuple[str, ...]
    ops: tuple[str, ...]
    op_types: tuple[str, ...]
    runs: int
    seconds: float
    note: str = ""

    @property
    def op(self) -> str | None:
        """The diverging op's name when the search narrowed to one node (None otherwise)."""
        return self.ops[0] if len(self.ops) == 1 else None

    def summary(self) -> str:
        """The steps as a compact text table and one line naming the op(s) found, for people."""
        lines = [f"{'cut after':>9}  {'tensors':>7}  {'verdict':7}  {'max abs':>9}  worst tensor"]
        for s in self.steps:
            where = "all" if s.position == self.nodes else str(s.position)
            verdict = "pass" if s.passed else "FAIL"
            lines.append(f"{where:>9}  {len(s.cut):>7}  {verdict:7}  {s.max_abs:>9.3g}  {s.worst}")
        if self.passed:
            lines.append(f"the outputs agree ({self.runs} run): nothing to bisect")
        else:
            found = ", ".join(f"{n} ({t})" for n, t in zip(self.ops, self.op_types, strict=True))
            lines.append(f"diverges at {found} after {self.runs} runs over {self.nodes} nodes")
            if self.note:
                lines.append(self.note)
        return "\n".join(lines)


def node_label(node: onnx.NodeProto) -> str:
    """A node's name, or ``OpType(first output)`` for an unnamed one."""
    return node.name or f"{node.op_type}({next((o for o in node.output if o), '')})"


def _reads(node: onnx.NodeProto) -> set[str]:
    """Every tensor a node reads, its sub-graphs' reads included (outer-scope names among them)."""
    found = {i for i in node.input if i}
    for attr in node.attribute:
        for sub in (attr.g,) if attr.HasField("g") else attr.graphs:
            for inner in sub.node:
                found |= _reads(inner)
    return found


@dataclasses.dataclass(frozen=True)
class _Graph:
    """The reference's nodes in order and what the cuts need to know about them."""

    nodes: tuple[onnx.NodeProto, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    constants: frozenset[str]
    last_read: Mapping[str, int]  # tensor → index of the last node reading it (len(nodes) for graph outputs)

    @classmethod
    def of(cls, proto: onnx.ModelProto) -> _Graph:
        graph = proto.graph
        inits = frozenset(t.name for t in graph.initializer)
        nodes = tuple(graph.node)  # topologically sorted: the checker refused the model otherwise
        last: dict[str, int] = {}
        for index, node in enumerate(nodes):
            for name in _reads(node):
                last[name] = index
        for out in graph.output:
            last[out.name] = len(nodes)
        inputs = tuple(i.name for i in graph.input if i.name not in inits)
        return cls(nodes, inputs, tuple(o.name for o in graph.output), inits, last)

    def cut(self, k: int) -> tuple[str, ...]:
        """The tensors made by the first ``k`` nodes and read from node ``k`` on (or graph outputs), in order."""
        if k <= 0:
            return self.inputs
        made = [o for node in self.nodes[:k] for o in node.output if o and o not in self.constants]
        return tuple(dict.fromkeys(t for t in made if self.last_read.get(t, -1) >= k))


def _computed(proto: onnx.ModelProto) -> set[str]:
    """The tensor names a model computes or takes as inputs (the names a cut may use)."""
    return {o for node in proto.graph.node for o in node.output if o} | {i.name for i in proto.graph.input}


def dequantized(proto: onnx.ModelProto) -> dict[str, str]:
    """For a QDQ model: each float tensor followed by ``QuantizeLinear → DequantizeLinear`` → the DequantizeLinear's
    output (the value the next layer reads; the quantizer may have folded a Relu into the Q's range)."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    found: dict[str, str] = {}
    for node in proto.graph.node:
        if node.op_type != "QuantizeLinear" or not node.input or not node.output:
            continue
        dq = next((r for r in readers.get(node.output[0], []) if r.op_type == "DequantizeLinear" and r.output), None)
        if dq is not None:
            found[node.input[0]] = dq.output[0]
    return found


def _graph_inputs(proto: onnx.ModelProto) -> list[str]:
    """The graph inputs that are not initializers."""
    inits = {t.name for t in proto.graph.initializer}
    return [i.name for i in proto.graph.input if i.name not in inits]


def _load(path: Path, role: str) -> onnx.ModelProto:
    try:
        return load_proto(path)
    except ModelLoadError as exc:
        raise InvalidInputError(
            f"bisection cuts ONNX models with edit extract; the {role} is not one: {exc.message}",
            path=path,
            hint=PER_TENSOR_HINT,
        ) from exc


@dataclasses.dataclass
class _Prober:
    """Runs probes: extracts both prefixes at a cut, runs them, compares the cut tensors."""

    reference: onnx.ModelProto
    candidate: onnx.ModelProto
    subjects: tuple[Subject, Subject]
    feeds: Mapping[str, np.ndarray]
    tolerance: Tolerance
    work: Path
    seen_as: Mapping[str, str] = dataclasses.field(default_factory=dict)  # candidate tensor → its DQ output
    steps: list[BisectStep] = dataclasses.field(default_factory=list)

    def whole(self) -> BisectStep:
        """Probe the whole models (their outputs paired by name, order or shape)."""
        ref_sub, cand_sub = self.subjects
        ref, cand = run(ref_sub, self.feeds), run(cand_sub, self.feeds)
        n = len(self.reference.graph.node)
        return self._record(n, tuple(ref.tensors), check(ref, cand, self.tolerance))

    def at(self, k: int, cut: tuple[str, ...]) -> BisectStep:
        """Probe the cut after ``k`` reference nodes.

        Raises:
            InvalidInputError: a prefix cannot be extracted there (the caller tries another cut).
        """
        results: list[RunResult] = []
        for side, proto in enumerate((self.reference, self.candidate)):
            seen = {t: self.seen_as.get(t, t) for t in cut} if side else {t: t for t in cut}
            prefix = extract(proto, _graph_inputs(proto), list(seen.values()), check=CheckOptions(verify=False))
            path = prefix.write(self.work / f"prefix_{k}_{side}.onnx").output
            result = run(dataclasses.replace(self.subjects[side], model=Path(path)), self.feeds)
            values = {t: result.tensors[own] for t, own in seen.items() if own in result.tensors}
            results.append(dataclasses.replace(result, tensors=values))
        return self._record(k, cut, check(results[0], results[1], self.tolerance, names=list(cut)))

    def _record(self, k: int, cut: tuple[str, ...], comparison: Comparison) -> BisectStep:
        worst = comparison.worst
        step = BisectStep(
            position=k,
            cut=cut,
            passed=comparison.passed,
            max_abs=comparison.max_abs,
            worst=worst.name if worst is not None else "",
            reason=comparison.reason(),
        )
        log.info("bisect: cut after %d nodes (%d tensors): %s", k, len(cut), "pass" if step.passed else "FAIL")
        self.steps.append(step)
        return step


def _order_from(mid: int, lo: int, hi: int) -> list[int]:
    """Positions strictly between ``lo`` and ``hi``, nearest ``mid`` first (the lower on a tie)."""
    inside = range(lo + 1, hi)
    return sorted(inside, key=lambda k: (abs(k - mid), k))


def _search(graph: _Graph, usable: Callable[[tuple[str, ...]], bool], prober: _Prober) -> tuple[int, int, str]:
    """Narrow ``(lo, hi)`` with the invariant "cut ``lo`` passes, cut ``hi`` fails"; returns ``(lo, hi, note)``."""
    lo, hi = 0, len(graph.nodes)
    while hi - lo > 1:
        step: BisectStep | None = None
        failures: list[str] = []
        for k in _order_from((lo + hi) // 2, lo, hi):
            cut = graph.cut(k)
            if not cut or not usable(cut):
                continue
            try:
                step = prober.at(k, cut)
            except (InvalidInputError, InferenceError, ModelLoadError) as exc:
                log.info("bisect: cannot probe the cut after %d nodes: %s", k, exc.message)
                failures.append(f"the cut after {k} nodes: {exc.message}")
                if len(failures) < MAX_TRIES:
                    continue
            break
        if step is None:
            why = f"could be probed ({len(failures)} tried; {failures[0]})" if failures else ""
            return lo, hi, f"no cut between nodes {lo} and {hi} {why or 'uses tensors the candidate also has'}"
        if step.passed:
            lo = step.position
        else:
            hi = step.position
    return lo, hi, ""


def bisect_models(
    reference: str | Path,
    candidate: str | Path,
    feeds: Mapping[str, np.ndarray] | str | Path | None = None,
    tolerance: Tolerance | None = None,
    runtimes: Sequence[str] = ("onnxruntime", "onnxruntime"),
    threads: int | None = None,
    *,
    seed: int = 0,
) -> BisectResult:
    """Bisect two ONNX models that share tensor names down to the op where they start to differ.

    Args:
        reference: the model taken as right (ONNX).
        candidate: the model checked against it (ONNX: an optimized copy, an INT8 QDQ model, a planted fault …).
        feeds: the inputs, by the reference's input names (an ``.npz``/``.npy`` file or arrays); None: seeded
            random feeds at the verification sizes.
        tolerance: the comparator's policy (default: fp32's, raised to the precision of the files compared).
        runtimes: the runtime of the reference and of the candidate (e.g. ``("onnxruntime", "openvino")``).
        threads: runtime threads (None: the runtime's default).
        seed: seed of the random feeds.

    Returns:
        The steps, the narrowed range and the op(s) in it (see the module docstring).

    Raises:
        InvalidInputError: a model is not ONNX, the two share no intermediate tensor name, or bad feeds.
    """
    start = time.perf_counter()
    ref_path, cand_path = Path(reference), Path(candidate)
    if len(runtimes) != 2:
        raise InvalidInputError(f"bisection takes two runtimes (reference, candidate), got {list(runtimes)}")
    ref_proto, cand_proto = _load(ref_path, "reference"), _load(cand_path, "candidate")
    graph = _Graph.of(ref_proto)
    names = _computed(cand_proto)
    inner = {o for node in graph.nodes for o in node.output if o} - set(graph.outputs)
    if not inner & names:
        raise InvalidInputError(
            f"{cand_path.name} has none of the intermediate tensor names of {ref_path.name}",
            path=cand_path,
            hint=PER_TENSOR_HINT,
        )
    tol = tolerance or Tolerance.for_precision(Precision.FP32)
    given = CheckOptions(feeds=feeds, seed=seed)
    inputs = feed_sets(ref_proto, given)[0]
    options = RunnerOptions(threads=threads)
    subjects = (
        Subject(ref_path, runtimes[0], options, label=f"{ref_path.name}@{runtimes[0]}"),
        Subject(cand_path, runtimes[1], options, label=f"{cand_path.name}@{runtimes[1]}"),
    )
    with tempfile.TemporaryDirectory(prefix="modelport-bisect-") as tmp:
        prober = _Prober(ref_proto, cand_proto, subjects, inputs, tol, Path(tmp), dequantized(cand_proto))
        whole = prober.whole()
        lo, hi, note = (0, 0, "") if whole.passed else _search(graph, lambda cut: set(cut) <= names, prober)
    ops = graph.nodes[lo:hi]
    return BisectResult(
        reference=subjects[0].label,
        candidate=subjects[1].label,
        tolerance=tol,
        nodes=len(graph.nodes),
        steps=tuple(prober.steps),
        passed=whole.passed,
        last_passing=graph.cut(lo) if not whole.passed else (),
        first_failing=(graph.outputs if hi == len(graph.nodes) else graph.cut(hi)) if not whole.passed else (),
        ops=tuple(node_label(n) for n in ops),
        op_types=tuple(n.op_type for n in ops),
        runs=len(prober.steps),
        seconds=time.perf_counter() - start,
        note=note,
    )
