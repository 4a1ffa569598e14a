"""Whole-feed samples: calibration for models whose inputs share no sample axis.

A :class:`~modelport.data.SampleSet` holds samples along axis 0 and batches are slices of it, which assumes every
input's leading dim is the batch. Streaming models break that: silero VAD takes ``input [batch, seq]``, ``state
[2, batch, 128]`` and a scalar ``sr []``; no slice of stacked arrays is a valid feed. For such a model (see
:func:`whole_feed_reason`) each sample is one complete feed: the set's arrays are the feeds *stacked* on a new axis
0 (``N × feed shape``), and the engines, the timing and the evaluation take ``{name: array[i]}`` as they are, one
feed per call. Random data is drawn at the sizes verification uses (:func:`~modelport.inputs.verification_shapes`:
integers 0/1, floats U(0, 1)); a Python callable may yield feed dicts (or ``(feeds, label)`` pairs).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from modelport.backends.runner import Runner
from modelport.data.samples import SampleSet, padded_batches
from modelport.errors import InvalidInputError
from modelport.inputs import TensorSpec, check_feeds, random_feeds, verification_shapes


def whole_feed_reason(specs: Sequence[TensorSpec]) -> str:
    """Why the inputs share no sample axis ("" when axis 0 is a common batch axis).

    Either an input is a scalar, or a symbolic dim that leads one input sits elsewhere in another (``batch`` at
    axis 1 of a state), or the inputs fix different leading sizes (``[1, 576]`` beside ``[2, 1, 128]``), or fixed
    and free leading dims meet (``[seq_len, 576]`` beside ``h [1, 1, 128]``: axis 0 is no common batch).
    """
    leading = {s.shape[0] for s in specs if s.shape and isinstance(s.shape[0], str) and s.shape[0]}
    fixed = {s.shape[0] for s in specs if s.shape and isinstance(s.shape[0], int) and s.shape[0] > 0}
    for spec in specs:
        if spec.shape is not None and len(spec.shape) == 0:
            return f"input {spec.name!r} is a scalar"
        inner = [d for d in (spec.shape or ())[1:] if isinstance(d, str) and d in leading]
        if inner:
            return f"input {spec.name!r} {spec.shape_text()} holds the batch dim {inner[0]!r} past axis 0"
    if len(fixed) > 1:
        return f"the inputs fix different leading sizes {sorted(fixed)}"
    if fixed and leading:
        return f"the leading dims mix fixed sizes {sorted(fixed)} with free ones ({', '.join(sorted(leading))})"
    return ""


def whole_feed_samples(
    source: Any, specs: Sequence[TensorSpec], *, limit: int, seed: int
) -> tuple[SampleSet, list[str]]:
    """``limit`` whole feeds from ``"random"`` or a callable/iterable of feed dicts, stacked on a new axis 0.

    Raises:
        InvalidInputError: another kind of source (folders and arrays hold samples along axis 0), or a feed that
            does not fit the model.
    """
    labels: list[int] = []
    if isinstance(source, str) and source.strip().lower() == "random":
        shapes = verification_shapes(specs)[0]
        feeds = [random_feeds(specs, shapes, seed=seed + i) for i in range(limit)]
        warnings = [
            "calibrating on random data: the INT8 ranges describe noise, not real inputs, and accuracy may drop; "
            "calibrate with a few hundred real samples",
            "the inputs share no sample axis: each calibration sample is one whole feed at "
            + ", ".join(f"{k} {list(v)}" for k, v in shapes.items()),
        ]
        name, synthetic = "random", True
    elif callable(source) or (isinstance(source, Sequence) and not isinstance(source, str | bytes)):
        feeds = []
        for item in source() if callable(source) else source:
            feed, label = item if isinstance(item, tuple) else (item, None)
            if not isinstance(feed, Mapping):
                raise InvalidInputError("each item must be a feed dict {input name: array} for this model")
            feeds.append({k: np.asarray(v) for k, v in feed.items()})
            if label is not None:
                labels.append(int(label))
            if len(feeds) >= limit:
                break
        warnings, name, synthetic = [], getattr(source, "__name__", "feeds"), False
    else:
        raise InvalidInputError(
            "this model's inputs share no sample axis: calibrate with random data or, from Python, a callable that "
            "yields whole feed dicts",
            hint="e.g. quantize(model, out, calib=lambda: [{'input': x, 'state': s, 'sr': sr}, …])",
        )
    if not feeds:
        raise InvalidInputError(f"{name}: no feeds", hint="give at least one feed")
    for feed in feeds:
        check_feeds(feed, specs)
    stacked = {s.name: np.stack([f[s.name] for f in feeds]) for s in specs}
    if labels and len(labels) != len(feeds):
        raise InvalidInputError(f"{name}: labels on some feeds only")
    return SampleSet(name, stacked, np.asarray(labels, np.int64) if labels else None, synthetic=synthetic), warnings


def feed(samples: SampleSet, i: int) -> dict[str, np.ndarray]:
    """Whole feed ``i`` of a whole-feed set."""
    return {k: np.array(v[i]) for k, v in samples.inputs.items()}  # a copy; ascontiguousarray makes 0-d 1-d


def batches(samples: SampleSet, batch: int, fixed: bool, whole: bool) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """(feeds, samples in it): one whole feed at a time, or :func:`~modelport.data.samples.padded_batches`."""
    if not whole:
        yield from padded_batches(samples, batch, fixed)
        return
    for i in range(len(samples)):
        yield feed(samples, i), 1


def run_whole(runner: Runner, samples: SampleSet) -> dict[str, np.ndarray]:
    """Every whole feed through ``runner``; each output stacked on a new axis 0, one entry per feed."""
    outputs: dict[str, list[np.ndarray]] = {n: [] for n in runner.output_names}
    for i in range(len(samples)):
        out = runner.infer(feed(samples, i))
        for name in outputs:
            outputs[name].append(np.asarray(out[name]))
    return {k: np.stack(v) for k, v in outputs.items()}
