"""Matching tensors across formats and runtimes: names, order and layout.

The same tensor is called ``image_tensor:0`` in a GraphDef, ``image_tensor`` in a SavedModel signature,
``serving_default_image_tensor:0`` in a TFLite file without a signature, and ``x.1`` or ``input`` elsewhere.
:func:`canonical` reduces a name to a comparable key (drop the output index ``:0``, the
``serving_default_`` prefix, case, and runs of non-alphanumerics).

Pairing (:func:`pair_tensors`), in this order:

1. by name, when every reference key has exactly one candidate with the same key;
2. by position, when every positional pair has compatible shapes (equal, or equal after a layout permutation);
3. by shape, when each reference tensor fits exactly one candidate and vice versa (a converter renamed the
   outputs and changed their order: onnx2tf does both);
4. otherwise by position (the shapes then fail the comparison, which says so).

Two outputs of one shape whose names do not match pair by position, so a candidate that swapped them fails.

Layouts: TensorFlow and TFLite keep images NHWC, ONNX and OpenVINO NCHW. tf2onnx's ``--inputs-as-nchw`` and
onnx2tf both transpose on purpose, so the same feed must be transposed to run the other artifact.
:func:`adapt_feed` finds the axis permutation that turns a feed into the shape the target expects, trying the
identity first, then NHWC→NCHW and NCHW→NHWC (and their 3-D/5-D analogues); :func:`layout_permutation` does the
same for an output against its reference. A permutation is only used when the shapes leave exactly one
candidate, so a square 1×3×3×3 tensor is never silently transposed, and a square map transposed H↔W keeps its
shape and fails the comparison.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

import numpy as np

from modelport.errors import InvalidInputError
from modelport.inputs import TensorSpec

_PREFIXES = ("serving_default_",)

#: candidate permutations by rank, identity first: channels-last → channels-first and back.
_PERMS: dict[int, tuple[tuple[int, ...], ...]] = {
    3: ((0, 1, 2), (0, 2, 1)),
    4: ((0, 1, 2, 3), (0, 3, 1, 2), (0, 2, 3, 1)),
    5: ((0, 1, 2, 3, 4), (0, 4, 1, 2, 3), (0, 2, 3, 4, 1)),
}

Shape = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class TensorPair:
    """A reference tensor, the candidate tensor it is compared with, and how they were paired.

    Attributes:
        reference: the reference's tensor name.
        candidate: the candidate's tensor name.
        by: "name", "position" or "shape".
    """

    reference: str
    candidate: str
    by: str


def canonical(name: str) -> str:
    """Comparable key of a tensor name: ``serving_default_Pre/sub:0`` → ``pre_sub``."""
    text = re.sub(r":0$", "", name.strip())
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def pair_names(reference: Sequence[str], candidate: Sequence[str]) -> list[tuple[str, str]]:
    """Pair reference names with candidate names: by canonical key when all match, else by position.

    Raises:
        InvalidInputError: the two sides have different counts.
    """
    _check_counts(reference, candidate)
    by_name = _by_name(reference, candidate)
    return by_name if by_name is not None else list(zip(reference, candidate, strict=True))


def _check_counts(reference: Sequence[str], candidate: Sequence[str]) -> None:
    if len(reference) != len(candidate):
        raise InvalidInputError(
            f"cannot pair tensors: {len(reference)} ({', '.join(reference)}) vs "
            f"{len(candidate)} ({', '.join(candidate)})"
        )


def _by_name(reference: Sequence[str], candidate: Sequence[str]) -> list[tuple[str, str]] | None:
    if list(reference) == list(candidate) or set(reference) == set(candidate):
        return [(r, r) for r in reference]
    by_key = {canonical(c): c for c in candidate}
    if len(by_key) == len(candidate) and all(canonical(r) in by_key for r in reference):
        return [(r, by_key[canonical(r)]) for r in reference]
    return None


def layout_permutation(reference: Shape, candidate: Shape) -> tuple[int, ...] | None:
    """The axes permutation turning ``candidate``'s shape into ``reference``'s: ``()`` when equal, a
    channels-first/last permutation when exactly one fits, else None."""
    if tuple(reference) == tuple(candidate):
        return ()
    if len(reference) != len(candidate):
        return None
    fits = [p for p in _PERMS.get(len(candidate), ())[1:] if tuple(candidate[i] for i in p) == tuple(reference)]
    return fits[0] if len(fits) == 1 else None


def pair_tensors(reference: Mapping[str, Shape], candidate: Mapping[str, Shape]) -> list[TensorPair]:
    """Pair tensors given as ``{name: shape}`` (in order): by name, position, or shape (module docstring).

    Raises:
        InvalidInputError: the two sides have different counts.
    """
    ref, cand = list(reference), list(candidate)
    _check_counts(ref, cand)
    named = _by_name(ref, cand)
    if named is not None:
        return [TensorPair(r, c, "name") for r, c in named]
    positional = [TensorPair(r, c, "position") for r, c in zip(ref, cand, strict=True)]
    if all(layout_permutation(reference[p.reference], candidate[p.candidate]) is not None for p in positional):
        return positional
    fits = {r: [c for c in cand if layout_permutation(reference[r], candidate[c]) is not None] for r in ref}
    chosen = [f[0] for f in fits.values() if len(f) == 1]
    if len(chosen) == len(ref) and len(set(chosen)) == len(chosen):
        return [TensorPair(r, fits[r][0], "shape") for r in ref]
    return positional


def _fits(shape: Sequence[int], want: Sequence[int | str | None] | None) -> bool:
    if want is None:
        return True
    if len(shape) != len(want):
        return False
    return all(not (isinstance(w, int) and w >= 0) or w == s for s, w in zip(shape, want, strict=True))


def adapt_feed(arr: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """``arr`` in the layout ``spec`` expects (transposed if needed) and its dtype.

    Raises:
        InvalidInputError: no permutation fits, or more than one non-identity permutation does.
    """
    if _fits(arr.shape, spec.shape):
        out = arr
    else:
        fits = [p for p in _PERMS.get(arr.ndim, ())[1:] if _fits(arr.transpose(p).shape, spec.shape)]
        if len(fits) != 1:
            raise InvalidInputError(
                f"a feed of shape {list(arr.shape)} does not fit input {spec.name!r} {spec.shape_text()}",
                hint="give --input-shape for the source's dynamic dimensions",
            )
        out = np.ascontiguousarray(arr.transpose(fits[0]))
    dtype = np.dtype(spec.dtype) if spec.dtype not in ("", "object") else out.dtype
    return out.astype(dtype, copy=False)


def adapt_feeds(feeds: Mapping[str, np.ndarray], specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """Feeds named and laid out for a target's inputs (names paired by :func:`pair_names`)."""
    pairs = pair_names(list(feeds), [s.name for s in specs])
    by_name = {s.name: s for s in specs}
    return {cand: adapt_feed(feeds[ref], by_name[cand]) for ref, cand in pairs}


def align_output(ref: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out`` transposed to ``ref``'s layout when only a channels-first/last permutation separates them."""
    perm = layout_permutation(ref.shape, out.shape)
    return np.ascontiguousarray(out.transpose(perm)) if perm else out


#: outputs a conversion adds for a stateful source's variables (:mod:`modelport.conversion.tflite_prep`)
STATE_OUTPUT_PREFIX = "new_state:"


def drop_state_outputs(
    reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """``candidate`` without the ``new_state:*`` outputs a conversion made explicit, when the reference (a stateful
    source that keeps its variables inside) has none: the remaining outputs are what both compute. Unchanged unless
    dropping them leaves exactly the reference's number of outputs."""
    if len(candidate) <= len(reference):
        return dict(candidate)
    kept = {k: v for k, v in candidate.items() if not (k.startswith(STATE_OUTPUT_PREFIX) and k not in reference)}
    return kept if len(kept) == len(reference) else dict(candidate)


def align_outputs(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Candidate outputs renamed to the reference's names (:func:`pair_tensors`) and transposed to its layouts
    (explicit state outputs the reference lacks are left out: :func:`drop_state_outputs`)."""
    candidate = drop_state_outputs(reference, candidate)
    pairs = pair_tensors(_shapes(reference), _shapes(candidate))
    return {
        p.reference: align_output(np.asarray(reference[p.reference]), np.asarray(candidate[p.candidate])) for p in pairs
    }


def _shapes(tensors: Mapping[str, np.ndarray]) -> dict[str, Shape]:
    return {k: tuple(int(d) for d in np.shape(v)) for k, v in tensors.items()}


def match_name(name: str, candidates: Sequence[str], what: str = "input") -> str:
    """The candidate whose canonical key equals ``name``'s (exact names win).

    Raises:
        InvalidInputError: no candidate matches (the hint lists them).
    """
    if name in candidates:
        return name
    for c in candidates:
        if canonical(c) == canonical(name):
            return c
    raise InvalidInputError(f"the model has no {what} {name!r}", hint=f"its {what}s: {', '.join(candidates)}")
