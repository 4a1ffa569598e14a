"""The one sample container: what ``port`` evaluates on and what ``quantize`` calibrates and evaluates on.

A :class:`SampleSet` holds one array per model input with the samples along axis 0 and, optionally, one integer
label per sample. Batches are cut from it by :func:`padded_batches`, the only place that slices samples into
feeds: a model with a fixed batch ``B`` gets every batch at ``B`` samples, the last one padded by repeating its
final sample (the padded rows' outputs are dropped by the caller, which receives the real count with each batch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from modelport.errors import InvalidInputError
from modelport.inputs import TensorSpec

#: what the samples are read for: random data may calibrate but never evaluate.
Role = Literal["calibration", "evaluation"]


@dataclasses.dataclass(frozen=True, eq=False)
class SampleSet:
    """Samples for one model: one array per input (samples along axis 0) and optional labels.

    Attributes:
        name: where the samples came from, for reports (``"mnist:train"``, ``"images:photos/"`` …).
        inputs: input name → array ``N × <one sample's shape>``.
        labels: int64 labels, one per sample, or None.
        synthetic: True for random data (never a measure of accuracy).
        preprocessing: how images were turned into tensors, in words ("" for raw arrays).
        classes: class names by label, when the source has them.
    """

    name: str
    inputs: Mapping[str, np.ndarray]
    labels: np.ndarray | None = None
    synthetic: bool = False
    preprocessing: str = ""
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.inputs:
            raise InvalidInputError(f"sample set {self.name!r} has no inputs")
        counts = {k: len(v) for k, v in self.inputs.items()}
        if len(set(counts.values())) != 1:
            raise InvalidInputError(f"sample set {self.name!r}: inputs hold different numbers of samples {counts}")
        if next(iter(counts.values())) == 0:
            raise InvalidInputError(f"sample set {self.name!r} is empty", hint="give at least one sample")
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.ndim != 1 or labels.dtype.kind not in "iu":
                raise InvalidInputError(
                    f"sample set {self.name!r}: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}"
                )
            if len(labels) != len(self):
                raise InvalidInputError(f"sample set {self.name!r}: {len(labels)} labels for {len(self)} samples")

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    @property
    def labelled(self) -> bool:
        """True when every sample has a label."""
        return self.labels is not None

    def subset(self, indices: np.ndarray) -> SampleSet:
        """The samples at ``indices`` (in that order)."""
        return dataclasses.replace(
            self,
            inputs={k: v[indices] for k, v in self.inputs.items()},
            labels=None if self.labels is None else self.labels[indices],
        )

    def take(self, n: int | None, *, seed: int = 0) -> SampleSet:
        """``n`` samples drawn without replacement with ``seed`` (all of them, in order, when n is None or ≥ len).

        A random draw, not the first ``n``: sources sorted by class would otherwise calibrate on one class.
        """
        if n is None or n >= len(self):
            return self
        picked = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return self.subset(picked)

    def head(self, n: int) -> dict[str, np.ndarray]:
        """Feeds of the first ``n`` samples (fewer when the set is smaller)."""
        return {k: v[:n] for k, v in self.inputs.items()}

    def describe(self) -> str:
        """One line: name, count, per-input shape and dtype, and the number of classes."""
        shapes = ", ".join(f"{k} {list(v.shape[1:])} {v.dtype}" for k, v in self.inputs.items())
        label = f", {len(set(self.labels.tolist()))} classes" if self.labels is not None else ", unlabelled"
        return f"{self.name}: {len(self)} samples ({shapes}{label})"


# ----------------------------------------------------------------------------------------------------
# Batches


def fixed_batch(specs: Sequence[TensorSpec]) -> int | None:
    """The model's fixed leading (batch) dimension, or None when every input's batch is dynamic."""
    for spec in specs:
        if spec.shape and isinstance(spec.shape[0], int) and spec.shape[0] > 0:
            return spec.shape[0]
    return None


def batch_for(specs: Sequence[TensorSpec], wanted: int) -> int:
    """The batch to feed: the model's fixed leading dim, else ``wanted``."""
    return fixed_batch(specs) or wanted


def padded_batches(samples: SampleSet, batch: int, fixed: bool) -> Iterator[tuple[dict[str, np.ndarray], int]]:
    """(feeds, real count) of ``batch`` samples each, in order; with ``fixed`` the last one is padded to ``batch``.

    Raises:
        InvalidInputError: ``batch`` < 1.
    """
    if batch < 1:
        raise InvalidInputError(f"batch must be ≥ 1, got {batch}")
    for start in range(0, len(samples), batch):
        feeds = {k: v[start : start + batch] for k, v in samples.inputs.items()}
        n = len(next(iter(feeds.values())))
        if fixed and n < batch:
            feeds = {k: np.concatenate([v, np.repeat(v[-1:], batch - n, axis=0)]) for k, v in feeds.items()}
        yield feeds, n


# ----------------------------------------------------------------------------------------------------
# Checking against the model


def check_samples(samples: SampleSet, specs: Sequence[TensorSpec]) -> None:
    """Check names, dtypes, rank and fixed per-sample dims against the model's inputs.

    Raises:
        InvalidInputError: naming the input, what the data holds and what the model expects (with a layout
            hint when the data is the transpose the model wants).
    """
    names = [s.name for s in specs]
    missing = [n for n in names if n not in samples.inputs]
    extra = sorted(set(samples.inputs) - set(names))
    if missing or extra:
        parts = ([f"missing input(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown input(s) {', '.join(extra)}"] if extra else []
        )
        raise InvalidInputError(
            f"{samples.name} does not match the model: " + "; ".join(parts),
            hint=f"the model's inputs are: {', '.join(names)}",
        )
    for spec in specs:
        arr = samples.inputs[spec.name]
        if np.dtype(arr.dtype) != np.dtype(spec.dtype):
            raise InvalidInputError(
                f"{samples.name}: input {spec.name!r} holds {arr.dtype}, the model expects {spec.dtype}",
                hint="cast the data to the model's dtype",
            )
        if spec.shape is None:
            continue
        want = spec.shape[1:]
        got = arr.shape[1:]
        ok = len(want) == len(got) and all(
            not (isinstance(w, int) and w >= 0) or w == g for w, g in zip(want, got, strict=True)
        )
        if not ok:
            raise InvalidInputError(
                f"{samples.name}: input {spec.name!r} samples have shape {list(got)}, the model expects "
                f"{_sample_text(spec)} per sample" + _layout_hint(want, got),
                hint="arrays hold samples along axis 0: N × the model's input shape without its batch dim",
            )


def _sample_text(spec: TensorSpec) -> str:
    dims = spec.shape[1:] if spec.shape else ()
    return "[" + ", ".join(str(d) if isinstance(d, int) and d >= 0 else "?" for d in dims) + "]"


def _layout_hint(want: Sequence[Any], got: Sequence[int]) -> str:
    if len(want) == 3 == len(got) and all(isinstance(w, int) for w in want):
        if tuple(got) == (want[1], want[2], want[0]):
            return "; the data looks NHWC and the model takes NCHW: transpose it (0, 3, 1, 2)"
        if tuple(got) == (want[2], want[0], want[1]):
            return "; the data looks NCHW and the model takes NHWC: transpose it (0, 2, 3, 1)"
    return ""
