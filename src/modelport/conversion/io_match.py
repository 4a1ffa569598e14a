"""Matching inputs and outputs across formats: names, order and layout.

The same tensor is called ``image_tensor:0`` in a GraphDef, ``image_tensor`` in a SavedModel signature,
``serving_default_image_tensor:0`` in a TFLite file without a signature, and ``x.1`` or ``input`` elsewhere.
:func:`canonical` reduces a name to a comparable key (drop the output index ``:0``, the
``serving_default_`` prefix, case, and runs of non-alphanumerics); names match when their keys match,
otherwise tensors pair up by position.

Layouts: TensorFlow and TFLite keep images NHWC, ONNX and OpenVINO NCHW. tf2onnx's ``--inputs-as-nchw`` and
onnx2tf both transpose on purpose, so the same feed must be transposed to run the other artifact.
:func:`adapt_feed` finds the axis permutation that turns a feed into the shape the target expects, trying the
identity first, then NHWC→NCHW and NCHW→NHWC (and their 3-D/5-D analogues); :func:`align_output` does the
same for an output against its reference. A permutation is only used when the shapes leave exactly one
candidate, so a square 1×3×3×3 tensor is never silently transposed the wrong way.
"""

from __future__ import annotations

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
    if len(reference) != len(candidate):
        raise InvalidInputError(
            f"cannot pair tensors: {len(reference)} ({', '.join(reference)}) vs "
            f"{len(candidate)} ({', '.join(candidate)})"
        )
    by_key = {canonical(c): c for c in candidate}
    if len(by_key) == len(candidate) and all(canonical(r) in by_key for r in reference):
        return [(r, by_key[canonical(r)]) for r in reference]
    return list(zip(reference, candidate, strict=True))


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
    if out.shape == ref.shape or out.ndim != ref.ndim:
        return out
    fits = [p for p in _PERMS.get(out.ndim, ())[1:] if out.transpose(p).shape == ref.shape]
    return np.ascontiguousarray(out.transpose(fits[0])) if len(fits) == 1 else out


def align_outputs(reference: Mapping[str, np.ndarray], candidate: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Candidate outputs renamed to the reference's names and transposed to its layouts."""
    pairs = pair_names(list(reference), list(candidate))
    return {r: align_output(np.asarray(reference[r]), np.asarray(candidate[c])) for r, c in pairs}


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
