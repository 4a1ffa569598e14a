"""``extract``: the sub-graph between named tensors, as a model of its own (``onnx.utils.Extractor``).

Shape inference runs first, so every boundary tensor — a new input or output — gets its dtype and shape from it;
a boundary tensor it cannot type is refused with a hint (fix the input shapes first). Before extracting, the
sub-graph is walked back from each output: it must stop at the given inputs (or initializers, which travel with
it); an output that needs a graph input not listed is refused, naming that input. Nodes with sub-graphs (If,
Loop, Scan) count the outer tensors their bodies read as inputs.

**Verification**: the original runs in ONNX Runtime on seeded feeds with the boundary tensors exposed as extra
outputs; the extracted model is fed the original's values of its inputs and its outputs are compared with the
original's values of the same tensors (comparator, fp32 tolerance by default). Extraction copies nodes unchanged,
so the error is 0.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx.utils

from modelport.edit.base import (
    DEFAULT_CHECK,
    CheckOptions,
    EditResult,
    OnnxSession,
    Source,
    Tensors,
    feed_sets,
    load_source,
    make_report,
    path_of,
    source_run,
    verify_edit,
)
from modelport.edit.outputs import computed_tensors, infer, require_types, typed_tensors, unknown_names, with_outputs
from modelport.errors import InvalidInputError, first_line
from modelport.verify.comparator import Comparison

log = logging.getLogger(__name__)


def _subgraph_reads(node: onnx.NodeProto) -> set[str]:
    """Every tensor name read inside the node's sub-graphs (outer-scope references among them)."""
    found: set[str] = set()

    def walk(g: onnx.GraphProto) -> None:
        for n in g.node:
            found.update(i for i in n.input if i)
            for attr in n.attribute:
                for sub in (attr.g,) if attr.HasField("g") else attr.graphs:
                    walk(sub)

    for attr in node.attribute:
        for sub in (attr.g,) if attr.HasField("g") else attr.graphs:
            walk(sub)
    return found


def missing_inputs(graph: onnx.GraphProto, inputs: Sequence[str], outputs: Sequence[str]) -> dict[str, str]:
    """Graph inputs the sub-graph from ``inputs`` to ``outputs`` needs but that are not among ``inputs``:
    ``{graph input: an output that needs it}``."""
    producer = {o: node for node in graph.node for o in node.output if o}
    graph_inputs = {i.name for i in graph.input} - {t.name for t in graph.initializer}
    known = set(producer) | graph_inputs
    stop = set(inputs) | {t.name for t in graph.initializer}
    needed: dict[str, str] = {}
    for out in outputs:
        seen: set[str] = set()
        todo = [out]
        while todo:
            name = todo.pop()
            if name in seen or name in stop:
                continue
            seen.add(name)
            node = producer.get(name)
            if node is None:
                if name in graph_inputs:
                    needed.setdefault(name, out)
                continue
            todo.extend(i for i in node.input if i)
            todo.extend(n for n in _subgraph_reads(node) if n in known)
    return needed


def extract(
    model: Source,
    inputs: Sequence[str],
    outputs: Sequence[str],
    *,
    check: CheckOptions | None = None,
) -> EditResult:
    """The sub-graph from ``inputs`` to ``outputs`` as its own model.

    Args:
        model: the ONNX file or proto (never modified).
        inputs: tensors that become the new model's inputs (graph inputs or inner tensors).
        outputs: tensors that become its outputs.
        check: how the result is checked against the original's inner tensors (see the module docstring and
            :class:`~modelport.edit.base.CheckOptions`); its shapes, batch and feeds are the *original's* inputs.

    Raises:
        InvalidInputError: empty lists, unknown tensor names, outputs not reachable from the inputs (the message
            names the graph input they need), or a boundary tensor shape inference cannot type.
    """
    start = time.perf_counter()
    source, label = load_source(model)
    path = path_of(label)
    ins, outs = list(dict.fromkeys(inputs)), list(dict.fromkeys(outputs))
    if not ins or not outs:
        raise InvalidInputError("extract needs at least one input and one output tensor", path=path)
    graph = source.graph
    inits = {t.name for t in graph.initializer}
    tensors = [i.name for i in graph.input if i.name not in inits] + computed_tensors(graph)
    missing = [n for n in (*ins, *outs) if n not in set(tensors)]
    if missing:
        raise unknown_names(missing, tensors, "tensors", path)
    needs = missing_inputs(graph, ins, outs)
    if needs:
        lines = "; ".join(f"{out!r} needs graph input {name!r}" for name, out in needs.items())
        raise InvalidInputError(
            f"the outputs are not reachable from the given inputs alone: {lines}",
            path=path,
            hint="add those to the inputs, or cut later in the graph",
        )
    inferred = infer(source)
    types = typed_tensors(inferred)
    require_types([*ins, *outs], types, path)
    try:
        result = onnx.utils.Extractor(_typed(inferred, types, [*ins, *outs])).extract_model(ins, outs)
    except Exception as exc:  # the extractor raises KeyError/ValueError on graphs it cannot cut
        raise InvalidInputError(
            f"onnx.utils.Extractor cannot cut the graph there: {first_line(exc)}", path=path
        ) from exc
    result.graph.name = f"{graph.name or 'model'}_extract"
    changes = [f"inputs: {', '.join(ins)}", f"outputs: {', '.join(outs)}"]
    check = check or DEFAULT_CHECK
    verification = _verify(source, result, types, ins, outs, check, label) if check.verify else None
    report = make_report("extract", [label], [source], result, changes, verification, start)
    return EditResult(result, report)


def _typed(
    inferred: onnx.ModelProto, types: Mapping[str, onnx.ValueInfoProto], names: Sequence[str]
) -> onnx.ModelProto:
    """``inferred`` with a value info for every boundary tensor (the extractor reads their types from there)."""
    have = {vi.name for seq in (inferred.graph.value_info, inferred.graph.input, inferred.graph.output) for vi in seq}
    extra = [types[n] for n in names if n not in have]
    if not extra:
        return inferred
    out = onnx.ModelProto()
    out.CopyFrom(inferred)
    out.graph.value_info.extend(extra)
    return out


def _verify(
    source: onnx.ModelProto,
    result: onnx.ModelProto,
    types: Mapping[str, onnx.ValueInfoProto],
    ins: Sequence[str],
    outs: Sequence[str],
    check: CheckOptions,
    label: str,
) -> Comparison:
    """Feed the extracted model the original's inner values and compare with the original's values of its outputs."""
    exposed = with_outputs(source, [*ins, *outs], types)
    pairs: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []
    with OnnxSession(exposed, check.threads) as session:
        run = source_run(session, Path(label).name)
        for feeds in feed_sets(source, check):
            values = {**{k: np.asarray(v) for k, v in feeds.items()}, **run(feeds)}
            pairs.append(({n: values[n] for n in ins}, {n: values[n] for n in outs}))
    by_id = {id(f): want for f, want in pairs}

    def reference(f: Tensors) -> dict[str, np.ndarray]:
        return by_id[id(f)]

    return verify_edit(reference, result, [f for f, _ in pairs], check, reference_label="original")
