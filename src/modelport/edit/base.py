"""What every graph edit shares: the report, the result (written atomically), and the check against the sources.

An edit is a function ``edit_x(model(s), …, options) -> EditResult``; it never modifies its inputs and writes
nothing until ``result.write(path)``. Each edit is verified with the one comparator
(:func:`modelport.verify.comparator.compare_outputs`) against what the source models compute on the same seeded
feeds — the merged model against the sources run in sequence, an extracted sub-graph against the original's inner
tensors, a renamed model against the original under the renaming — at the fp32 tolerance unless the user gives one.
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
from modelport.model_io import check_proto, load_proto, save_model
from modelport.passes.api import verification_feeds
from modelport.passes.report import op_histogram
from modelport.reports.serialize import JsonReport
from modelport.verify.comparator import Comparison, compare_outputs, worst_of
from modelport.verify.session import OnnxSession
from modelport.verify.tolerance import Tolerance

#: ``{tensor name: array}``
Tensors = Mapping[str, np.ndarray]
#: what the reference computes on one set of feeds (the sources, run the way the edit promises)
Reference = Callable[[Tensors], Tensors]


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
        for source in self.report.sources:
            if dst.exists() and Path(source).exists() and dst.resolve() == Path(source).resolve():
                raise InvalidInputError("refusing to overwrite an input model", path=dst, hint="choose another output")
        save_model(self.model, dst)
        return dataclasses.replace(self.report, output=str(dst))


IN_MEMORY = "<model>"


def load_source(model: str | Path | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """The model as a checked proto and the name reports give it."""
    if isinstance(model, onnx.ModelProto):
        check_proto(model)
        return model, IN_MEMORY
    return load_proto(model), str(model)


def node_count(proto: onnx.ModelProto) -> int:
    """Nodes in the main graph and its sub-graphs."""
    return sum(1 for _ in ir.traversal.RecursiveGraphIterator(ir.serde.deserialize_model(proto).graph))


def ops_of(proto: onnx.ModelProto) -> dict[str, int]:
    """The op histogram of a proto (see :func:`modelport.passes.report.op_histogram`)."""
    return op_histogram(ir.serde.deserialize_model(proto))


def feed_sets(
    proto: onnx.ModelProto,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    batch: int | None = None,
    seed: int = 0,
) -> list[dict[str, np.ndarray]]:
    """Seeded random feeds for ``proto``'s inputs (one set per verification size, as ``optimize`` uses)."""
    return verification_feeds(ir.serde.deserialize_model(proto).graph, input_shapes, batch, seed)


def verify_edit(
    reference: Reference,
    candidate: onnx.ModelProto,
    feeds: Sequence[Tensors],
    tolerance: Tolerance | None = None,
    *,
    label: str = "edited",
    reference_label: str = "sources",
    threads: int | None = None,
) -> Comparison:
    """Run ``candidate`` in ONNX Runtime on each feed set and compare its outputs with ``reference(feeds)``.

    The reference's tensors pair with the candidate's by name (then order, then shape). Returns the worst
    comparison.

    Raises:
        VerificationError: an output differs beyond the tolerance (the message names it), or the candidate fails
            to load or run where the sources ran.
    """
    tol = tolerance or Tolerance.for_precision("fp32")
    results: list[Comparison] = []
    inputs = {i.name for i in candidate.graph.input}
    with OnnxSession(candidate, threads) as run:
        for f in feeds:
            want = reference(f)  # a source that fails here is the source's error, not the edit's
            try:
                got = run({k: v for k, v in f.items() if k in inputs})
            except (InferenceError, ModelLoadError) as exc:
                raise VerificationError(f"the {label} model fails where the sources run: {exc.message}") from exc
            results.append(compare_outputs(want, got, tol, reference_label=reference_label, candidate_label=label))
    worst = worst_of(results)
    return worst.require()


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
