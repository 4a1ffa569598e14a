r"""Per-tensor comparison of two traces and the first tensor where they diverge.

Two :class:`~modelport.backends.trace.Trace` objects (the same feeds through a reference and a candidate, every
intermediate tensor exposed) are matched tensor by tensor, in this order:

1. **name**: the candidate has a tensor of the reference tensor's name;
2. **alias**: a name one side records for the tensor (OpenVINO keeps the framework names; a converter's mapping)
   is the other side's name or alias;
3. **shape+order**: for the reference tensors still unmatched, in topological order, the candidate's unmatched
   tensors in a window after the last matched position, with the same element count and a shape equal up to a
   channels-first/last permutation (:func:`~modelport.verify.matching.layout_permutation`); among several, the most
   similar wins (compared to 3 decimals, then the earliest), where the similarity of :math:`r` and :math:`o` is their
   cosine times :math:`\min(\lVert r\rVert, \lVert o\rVert) / \max(\lVert r\rVert, \lVert o\rVert)` (a multiple of
   the reference, ``6·HardSwish(x)`` before its division, is not it). The window ends at the candidate
   position of the next tensor already matched. Two passes: the first takes only matches of similarity at least
   :data:`SURE_SIMILARITY` (a correct conversion's tensors), the second, inside the narrower windows the first left,
   those of similarity at least :data:`MIN_SIMILARITY` (a faulty tensor still resembles its reference). A tensor that a
   runtime fused away (OpenVINO's Swish keeps no Sigmoid output, a TFLite conv absorbs the BatchNormalization)
   stays unmatched instead of pairing with an unrelated neighbour of the same shape. Integer and boolean tensors
   (shapes, indices, masks) match this way only when equal.

A name or alias match needs the same element count too (a converter may reuse a name for a reshaped tensor); shapes
that differ only by axes of size 1 (a scalar made ``[1]``) are compared reshaped.

Each pair is judged by the one comparator (:func:`~modelport.verify.comparator.compare_outputs`), which aligns
layouts and compares integer tensors exactly; max abs :math:`\max|o-r|`, max rel and cosine
:math:`\frac{r\cdot o}{\lVert r\rVert\lVert o\rVert}` come from its metrics.

A reference tensor left unmatched because the candidate fused it into another tensor is **fused into** that tensor
(:mod:`modelport.divergence.fused`: recorded by the converter or runtime, or bounded by matched tensors in both
graphs): it is accounted for, not matched, and never compared itself. A failing shape+order pair whose reference
tensor would be fused, without it, into passing tensors is dropped (a tensor and its fused twin, not a fault).
*matched* % is matched ÷ reference tensors; *accounted* % is (matched + fused) ÷ reference tensors.

The **first divergence** is the earliest failing tensor in the reference's topological order whose matched inputs
all pass: the op that produced it is where the error starts, not where it is inherited.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence

import numpy as np

from modelport.backends.trace import Trace, TracedOp
from modelport.divergence.fused import FusedTensor, fused_tensors
from modelport.errors import InvalidInputError, VerificationError
from modelport.formats import Precision
from modelport.reports.serialize import JsonReport
from modelport.verify.comparator import compare_outputs
from modelport.verify.matching import layout_permutation
from modelport.verify.precision import model_precision
from modelport.verify.tolerance import Tolerance

log = logging.getLogger(__name__)

#: how many unmatched candidate tensors past the last matched position the shape+order search looks at
WINDOW = 48
#: a shape+order match needs at least this similarity (below it, same-shaped tensors are unrelated: a fused op's missing
#: intermediate must stay unmatched rather than pair with a neighbour)
MIN_SIMILARITY = 0.5
#: the first shape+order pass takes only matches this similar; they bound the second pass's windows
SURE_SIMILARITY = 0.99
#: matching methods, in the order they are tried
METHODS = ("name", "alias", "shape+order")


@dataclasses.dataclass(frozen=True)
class TensorError(JsonReport):
    """One reference tensor against its matched candidate tensor.

    Attributes:
        reference: the tensor's name in the reference trace.
        candidate: the matched tensor's name in the candidate trace.
        op: the reference op that produced it.
        op_type: that op's type.
        inputs: the reference op's input tensors (the matched ones have their own TensorError).
        matched_by: "name", "alias" or "shape+order".
        max_abs, max_rel, cosine: the comparator's metrics.
        passed: the comparator's verdict at the tolerance.
        atol_eff: the absolute bound it used.
        upstream: for inputs that are not matched (a tensor the candidate fused away), the nearest matched reference
            tensors they were computed from.
    """

    reference: str
    candidate: str
    op: str
    op_type: str
    inputs: tuple[str, ...]
    matched_by: str
    max_abs: float
    max_rel: float
    cosine: float
    passed: bool
    atol_eff: float
    upstream: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Divergence(JsonReport):
    """Every matched tensor of two traces, judged, and the first that diverged.

    Attributes:
        reference, candidate: ``<file>@<runtime>`` of each side.
        tolerance: the one applied.
        tensors: one TensorError per matched reference tensor, in the reference's topological order.
        reference_tensors: how many tensors the reference exposed.
        first: the earliest failing tensor whose matched inputs all pass (None: none failed).
        outputs_passed: the graph outputs' verdict.
        fused: the unmatched reference tensors fused into matched candidate tensors (accounted for, not compared).
        matched_percent: matched ÷ reference tensors, in percent (one decimal).
        accounted_percent: (matched + fused) ÷ reference tensors, in percent (one decimal).
    """

    reference: str
    candidate: str
    tolerance: Tolerance
    tensors: tuple[TensorError, ...]
    reference_tensors: int
    first: TensorError | None
    outputs_passed: bool
    fused: tuple[FusedTensor, ...] = ()
    matched_percent: float = 0.0
    accounted_percent: float = 0.0

    @property
    def accounted(self) -> int:
        """Reference tensors matched or fused into a matched tensor."""
        return len(self.tensors) + len(self.fused)

    def fused_counts(self) -> dict[str, int]:
        """How many reference tensors were fused, by how it is known ("recorded", "graph"; zeros included)."""
        return {h: sum(f.how == h for f in self.fused) for h in ("recorded", "graph")}

    @property
    def passed(self) -> bool:
        """No matched tensor failed and the outputs passed."""
        return self.first is None and self.outputs_passed

    @property
    def failed(self) -> tuple[TensorError, ...]:
        """The failing tensors, in order."""
        return tuple(t for t in self.tensors if not t.passed)

    def matched_counts(self) -> dict[str, int]:
        """How many tensors each method matched (every method listed, zeros included)."""
        return {m: sum(t.matched_by == m for t in self.tensors) for m in METHODS}

    def error(self, reference: str) -> TensorError | None:
        """The TensorError of the reference tensor ``reference`` (None: unmatched)."""
        return next((t for t in self.tensors if t.reference == reference), None)

    def input_errors(self, tensor: TensorError) -> tuple[TensorError, ...]:
        """The TensorErrors of ``tensor``'s matched inputs."""
        by_name = {t.reference: t for t in self.tensors}
        return tuple(by_name[i] for i in tensor.inputs if i in by_name)

    def upstream_errors(self, tensor: TensorError) -> tuple[TensorError, ...]:
        """The TensorErrors of the nearest matched tensors behind ``tensor``'s unmatched inputs."""
        by_name = {t.reference: t for t in self.tensors}
        return tuple(by_name[i] for i in tensor.upstream if i in by_name)


@dataclasses.dataclass(frozen=True)
class _Match:
    reference: str
    candidate: str
    by: str


def compare_traces(reference: Trace, candidate: Trace, tolerance: Tolerance | None = None) -> Divergence:
    """Match the tensors of two traces, judge each pair and find the first divergence.

    Args:
        reference: the trace taken as right.
        candidate: the trace judged (same feeds, in its own names and layouts).
        tolerance: the policy; default fp32's, raised to the precision of either model file (an int8 candidate is
            judged as int8) unless explicit.

    Raises:
        InvalidInputError: the reference exposed no tensor, or no tensor of the candidate matches one of it.
    """
    label_ref, label_cand = _label(reference), _label(candidate)
    if not reference.tensors:
        raise InvalidInputError(f"{label_ref} exposed no tensor to compare", path=reference.model)
    tol = (tolerance or Tolerance.for_precision(Precision.FP32)).at_least(
        model_precision(reference.model), model_precision(candidate.model)
    )
    matches = match_tensors(reference, candidate)
    if not matches:
        raise InvalidInputError(
            f"no tensor of {label_cand} matches one of {label_ref} by name, alias or shape",
            hint="are these two ports of the same model? per-tensor comparison needs tensors of the same shapes in "
            "the same order; try --bisect, or compare the outputs only",
        )
    producers = reference.producers()
    matched = {m.reference for m in matches}
    errors = tuple(
        _judge(m, reference, candidate, producers.get(m.reference), tol, _upstream(m.reference, producers, matched))
        for m in matches
    )
    errors = tuple(e for e in errors if e.reference in reference.outputs or not _doubtful(e))
    errors, fused = _fusion_first(reference, candidate, errors)
    log.info(
        "matched %d of %d tensors of %s in %s (%d more fused)",
        len(errors),
        len(reference.tensors),
        label_ref,
        label_cand,
        len(fused),
    )
    return Divergence(
        reference=label_ref,
        candidate=label_cand,
        tolerance=tol,
        tensors=errors,
        reference_tensors=len(reference.tensors),
        first=first_divergence(errors),
        outputs_passed=_outputs_passed(reference, candidate, tol),
        fused=fused,
        matched_percent=_percent(len(errors), len(reference.tensors)),
        accounted_percent=_percent(len(errors) + len(fused), len(reference.tensors)),
    )


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def _doubtful(error: TensorError) -> bool:
    """A shape+order match that fails and is not surely the same tensor (cosine under :data:`SURE_SIMILARITY`): on
    correct conversions such pairs are another tensor of the same shape (a folded BatchNorm's scale next to the conv
    it was folded into, measured on rapidocr_cls_v2 and open_nsfw in OpenVINO), so the pair is dropped rather than
    flagged (graph outputs, which pair by order, are always kept). A fault is still found through the tensors matched
    by name or surely by shape."""
    return error.matched_by == "shape+order" and not error.passed and error.cosine < SURE_SIMILARITY


def _fusion_first(
    reference: Trace, candidate: Trace, errors: tuple[TensorError, ...]
) -> tuple[tuple[TensorError, ...], tuple[FusedTensor, ...]]:
    """The judged pairs and the fused tensors, where a failing shape+order pair is dropped when, unpaired, its
    reference tensor is fused into matched tensors that all pass: such a pair is a tensor and its fused twin
    (OpenVINO's conv with the BatchNorm scale folded in, cosine 0.99 to the conv output), since a real fault would
    show in the tensors it is fused into."""
    outputs = set(reference.outputs)
    suspect = {e.reference for e in errors if e.matched_by == "shape+order" and not e.passed}
    suspect -= outputs
    if suspect:
        kept = {e.reference: e.candidate for e in errors if e.reference not in suspect}
        passed = {e.reference for e in errors if e.passed}
        fused = fused_tensors(reference, candidate, kept)
        dropped = {f.reference for f in fused if f.reference in suspect and set(f.compared_as) <= passed}
        errors = tuple(e for e in errors if e.reference not in dropped)
    return errors, fused_tensors(reference, candidate, {e.reference: e.candidate for e in errors})


def _label(trace: Trace) -> str:
    return f"{trace.model.name}@{trace.runtime}"


def _upstream(tensor: str, producers: Mapping[str, TracedOp], matched: set[str], limit: int = 64) -> tuple[str, ...]:
    """The nearest matched tensors behind ``tensor``'s unmatched inputs (walking back through unmatched producers,
    at most ``limit`` of them)."""
    op = producers.get(tensor)
    todo = [i for i in (op.inputs if op is not None else ()) if i not in matched]
    seen, found = set(todo), []
    while todo and len(seen) <= limit:
        prev = producers.get(todo.pop(0))
        for i in prev.inputs if prev is not None else ():
            if i in matched and i not in found:
                found.append(i)
            elif i not in matched and i not in seen:
                seen.add(i)
                todo.append(i)
    return tuple(found)


def first_divergence(errors: Sequence[TensorError]) -> TensorError | None:
    """The earliest failing tensor whose matched inputs (and nearest matched tensors behind its unmatched inputs)
    all pass; the earliest failing one if none qualifies."""
    by_name = {t.reference: t for t in errors}
    failing = [t for t in errors if not t.passed]
    for t in failing:
        if all(by_name[i].passed for i in (*t.inputs, *t.upstream) if i in by_name and i != t.reference):
            return t
    return failing[0] if failing else None


def _judge(
    m: _Match, reference: Trace, candidate: Trace, op: TracedOp | None, tol: Tolerance, upstream: tuple[str, ...]
) -> TensorError:
    ref, got = np.asarray(reference.tensors[m.reference]), np.asarray(candidate.tensors[m.candidate])
    cmp = compare_outputs({m.reference: ref}, {m.candidate: _squeezed_like(got, ref)}, tol)
    metrics = cmp.outputs[0]
    return TensorError(
        reference=m.reference,
        candidate=m.candidate,
        op=op.name if op is not None else "",
        op_type=op.op_type if op is not None else "",
        inputs=op.inputs if op is not None else (),
        matched_by=m.by,
        max_abs=metrics.max_abs,
        max_rel=metrics.max_rel,
        cosine=metrics.cosine,
        passed=metrics.passed,
        atol_eff=metrics.atol_eff,
        upstream=upstream,
    )


def _squeezed_like(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``got`` in ``ref``'s shape when they differ only by axes of size 1 (OpenVINO makes scalars ``[1]``)."""
    if got.shape != ref.shape and got.size == ref.size and _squeeze(got.shape) == _squeeze(ref.shape):
        return got.reshape(ref.shape)
    return got


def _squeeze(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _outputs_passed(reference: Trace, candidate: Trace, tol: Tolerance) -> bool:
    """The graph outputs judged as ``compare`` judges them (paired by name, order or shape)."""
    ref = {n: reference.tensors[n] for n in reference.outputs if n in reference.tensors}
    cand = {n: candidate.tensors[n] for n in candidate.outputs if n in candidate.tensors}
    if not ref:
        return True
    try:
        return compare_outputs(ref, cand, tol).passed
    except (VerificationError, InvalidInputError) as exc:
        log.info("outputs not comparable: %s", exc)
        return False


def match_tensors(reference: Trace, candidate: Trace) -> list[_Match]:
    """Pairs (reference tensor, candidate tensor, method) in the reference's order; each tensor used once."""
    ref_names, cand_names = list(reference.tensors), list(candidate.tensors)
    position = {n: i for i, n in enumerate(cand_names)}
    sizes = {n: int(np.size(v)) for n, v in candidate.tensors.items()}
    used: set[str] = set()
    found: dict[str, tuple[str, str]] = {}
    for r in ref_names:
        size = int(np.size(reference.tensors[r]))
        if r in position and sizes[r] == size:
            found[r] = (r, "name")
            used.add(r)
    aliases = _alias_index(candidate, position)
    for r in ref_names:
        if r in found:
            continue
        size = int(np.size(reference.tensors[r]))
        keys = (r, *reference.aliases.get(r, ()))
        hit = next((c for k in keys for c in aliases.get(k, ()) if c not in used and sizes[c] == size), None)
        if hit is not None:
            found[r] = (hit, "alias")
            used.add(hit)
    for least in (SURE_SIMILARITY, MIN_SIMILARITY):  # sure matches first: they bound the windows of the doubtful ones
        _match_by_shape(reference, candidate, found, used, least)
    return [_Match(r, *found[r]) for r in ref_names if r in found]


def _alias_index(candidate: Trace, position: Mapping[str, int]) -> dict[str, list[str]]:
    """Every name (own or alias) of the candidate → the candidate tensors it names."""
    index: dict[str, list[str]] = {}
    for name in position:
        for key in (name, *candidate.aliases.get(name, ())):
            index.setdefault(key, []).append(name)
    return index


def _match_by_shape(
    reference: Trace, candidate: Trace, found: dict[str, tuple[str, str]], used: set[str], least: float
) -> None:
    """Fill ``found`` for the unmatched reference tensors by shape and topological order, with a cosine of at least
    ``least`` (module docstring)."""
    cand_names = list(candidate.tensors)
    position = {n: i for i, n in enumerate(cand_names)}
    ref_names = list(reference.tensors)
    following = _next_anchors(ref_names, found, position)
    last = -1
    for k, r in enumerate(ref_names):
        if r in found:
            last = max(last, position[found[r][0]])
            continue
        ref = np.asarray(reference.tensors[r])
        stop = following[k] if following[k] > last else len(cand_names)
        window = [c for c in cand_names[last + 1 : stop] if c not in used][:WINDOW]
        fits = [c for c in window if _compatible(ref, np.asarray(candidate.tensors[c]))]
        # a float tensor never pairs with an integer one (a QuantizeLinear output has the float's shape)
        fits = [c for c in fits if (np.asarray(candidate.tensors[c]).dtype.kind == "f") == (ref.dtype.kind == "f")]
        if ref.dtype.kind in "biu":  # shapes, indices, masks: similar is not the same tensor
            fits = [c for c in fits if np.array_equal(ref.ravel(), np.asarray(candidate.tensors[c]).ravel())]
        if not fits:
            continue
        similar = {c: _similarity(ref, np.asarray(candidate.tensors[c])) for c in fits}
        best = max(fits, key=lambda c: (round(similar[c], 3), -position[c]))
        if similar[best] < least:
            continue
        found[r] = (best, "shape+order")
        used.add(best)
        last = position[best]


def _next_anchors(
    ref_names: Sequence[str], found: Mapping[str, tuple[str, str]], position: Mapping[str, int]
) -> list[int]:
    """For each reference tensor, the candidate position of the next tensor matched by name or alias after it (the
    end of the candidate when none): a shape+order match must lie before it."""
    out, nxt = [0] * len(ref_names), len(position)
    for k in range(len(ref_names) - 1, -1, -1):
        out[k] = nxt
        if ref_names[k] in found:
            nxt = position[found[ref_names[k]][0]]
    return out


def _compatible(ref: np.ndarray, cand: np.ndarray) -> bool:
    return ref.size == cand.size and ref.size > 0 and layout_permutation(ref.shape, cand.shape) is not None


def _similarity(ref: np.ndarray, cand: np.ndarray) -> float:
    """Cosine of ``ref`` and ``cand`` (aligned to its layout, over finite elements) times the ratio of their norms,
    the smaller over the larger: a tensor that is a multiple of the reference is not it (-1 when not numeric)."""
    perm = layout_permutation(ref.shape, cand.shape) or ()
    aligned = cand.transpose(perm) if perm else cand
    try:
        r, o = ref.astype(np.float64).ravel(), aligned.astype(np.float64).ravel()
    except (TypeError, ValueError):
        return -1.0
    ok = np.isfinite(r) & np.isfinite(o)
    r, o = r[ok], o[ok]
    nr, no = float(np.linalg.norm(r)), float(np.linalg.norm(o))
    if nr == 0 or no == 0:
        return 1.0 if nr == no else 0.0
    return float(r @ o / (nr * no)) * min(nr, no) / max(nr, no)
