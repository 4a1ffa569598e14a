r"""Source tensors a converter or runtime fused away: accounted for, not matched.

A source tensor with no counterpart in the candidate (OpenVINO folds a BatchNorm into the Conv before it and keeps
no Conv output; onnx2tf's TFLite converter fuses Conv, bias Add and Relu into one op; a shape subgraph is
constant-folded) cannot be compared, but it is not lost either: its value lives inside a candidate tensor that is
compared. Such a tensor is counted as **fused into** that candidate tensor when

1. **recorded**: the candidate's trace names it among the source tensors (or ops) merged into a candidate tensor
   (:attr:`~modelport.backends.trace.Trace.fused`: onnx2tf's name map with the TFLite converter's ``;``-joined names;
   OpenVINO's ``fused_names_0`` where the model keeps it), and that candidate tensor is matched; or
2. **graph**: nothing is recorded (an OpenVINO IR keeps no fused names), but both graphs bound it. For a matched
   source tensor :math:`d`, its *region* is the set :math:`R` of unmatched source tensors reached walking back from
   :math:`d` through unmatched tensors, and its *boundary* :math:`A` the matched tensors that end those walks; the
   candidate's region :math:`C` and boundary :math:`B` of :math:`d`'s counterpart are found the same way. When
   :math:`|R| \le` :data:`REGION_LIMIT`, :math:`|C| \le |R|` (the candidate computes it in no more steps) and
   :math:`B \subseteq A` (from the same matched tensors, or fewer where a dependency was constant-folded), every
   tensor of :math:`R` is fused into :math:`d`: it is internal to a region whose inputs and output are all compared
   (OpenVINO's Conv folded with the BatchNorm scale → the BatchNorm output; Swish → the Sigmoid; HSwish → its
   Add/Clip/Mul/Div; a folded shape subgraph → the Reshape).

A fused record never creates a value comparison: only matched pairs are judged, and *accounted* = matched + fused.
Graph outputs are never counted as fused (they are always compared).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from modelport.backends.trace import Trace, TracedOp
from modelport.reports.serialize import JsonReport

#: the most unmatched source tensors one region may hold (a larger one is not fusion but a failure to match)
REGION_LIMIT = 16


@dataclasses.dataclass(frozen=True)
class FusedTensor(JsonReport):
    """An unmatched source tensor whose value lives inside compared candidate tensors.

    Attributes:
        reference: the source tensor's name.
        op_type: the type of the source op that produced it.
        into: the candidate tensors it was fused into.
        compared_as: the source tensors matched to those candidate tensors (their comparison covers it).
        how: ``"recorded"`` (the candidate's trace says so) or ``"graph"`` (bounded by matched tensors, module
            docstring).
    """

    reference: str
    op_type: str
    into: tuple[str, ...]
    compared_as: tuple[str, ...]
    how: str


def fused_tensors(reference: Trace, candidate: Trace, matched: Mapping[str, str]) -> tuple[FusedTensor, ...]:
    """The unmatched source tensors of ``reference`` that are fused into matched tensors of ``candidate``.

    Args:
        reference: the source trace.
        candidate: the candidate trace.
        matched: reference tensor → the candidate tensor it was matched to (the judged pairs only).
    """
    producers = reference.producers()
    back = {c: r for r, c in matched.items()}
    recorded = _recorded_index(candidate, reference.ops)
    regions = _regions(reference, candidate, matched, producers)
    outputs = set(reference.outputs)
    found = []
    for r in reference.tensors:
        if r in matched or r in outputs:
            continue
        op = producers.get(r)
        keys = (r, *reference.aliases.get(r, ()))
        into = next((recorded[k] for k in keys if k in recorded and recorded[k] in back), None)
        if into is not None:
            found.append(FusedTensor(r, op.op_type if op else "", (into,), (back[into],), "recorded"))
            continue
        frontier = regions.get(r, ())
        if frontier:
            found.append(
                FusedTensor(r, op.op_type if op else "", tuple(matched[d] for d in frontier), frontier, "graph")
            )
    return tuple(found)


def _recorded_index(candidate: Trace, reference_ops: Sequence[TracedOp]) -> dict[str, str]:
    """Source tensor name → the candidate tensor the candidate's trace says it was fused into (a recorded source op
    name stands for the op's outputs)."""
    outputs_of = {op.name: op.outputs for op in reference_ops}
    index: dict[str, str] = {}
    for tensor, sources in candidate.fused.items():
        if tensor not in candidate.tensors:
            continue
        for source in sources:
            for name in (source, *outputs_of.get(source, ())):
                index.setdefault(name, tensor)
    return index


def _regions(
    reference: Trace, candidate: Trace, matched: Mapping[str, str], producers: Mapping[str, TracedOp]
) -> dict[str, tuple[str, ...]]:
    """Unmatched reference tensor → the matched reference tensors whose accepted region holds it (graph rule)."""
    back = {c: r for r, c in matched.items()}
    identity = {r: r for r in matched}
    cand_producers = candidate.producers()
    found: dict[str, list[str]] = {}
    for d in reference.tensors:
        if d not in matched or d not in producers:
            continue
        ref = _region(producers[d].inputs, producers, identity)
        if ref is None or not ref[0]:
            continue
        op = cand_producers.get(matched[d])
        cand = _region(op.inputs, cand_producers, back) if op is not None else None
        if cand is None or len(cand[0]) > len(ref[0]) or not cand[1] <= ref[1]:
            continue
        for r in ref[0]:
            found.setdefault(r, []).append(d)
    return {r: tuple(ds) for r, ds in found.items()}


def _region(
    start: Sequence[str], producers: Mapping[str, TracedOp], names: Mapping[str, str]
) -> tuple[set[str], frozenset[str]] | None:
    """Walking back from the tensors ``start`` through unmatched tensors: the unmatched tensors passed (ops' outputs
    only) and the matched ones that end the walk, by their reference names (``names``: a trace's matched tensor →
    reference name). Graph inputs and constants end a walk without being boundaries. None: more than
    :data:`REGION_LIMIT` unmatched tensors."""
    inside: set[str] = set()
    bounds: set[str] = set()
    todo, seen = list(start), set(start)
    while todo:
        t = todo.pop()
        if t in names:
            bounds.add(names[t])
            continue
        op = producers.get(t)
        if op is None:  # a graph input or a constant
            continue
        inside.add(t)
        if len(inside) > REGION_LIMIT:
            return None
        for i in op.inputs:
            if i not in seen:
                seen.add(i)
                todo.append(i)
    return inside, frozenset(bounds)
