"""Task metrics on a labelled dataset: top-1/top-5 accuracy of a classifier on a runner."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from modelport.backends.runner import Runner
from modelport.errors import InvalidInputError
from modelport.reports.serialize import JsonReport


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """Preprocessed inputs (already normalised for the model) with integer labels."""

    name: str
    input_name: str
    inputs: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.labels) or len(self.labels) == 0:
            raise InvalidInputError(f"evaluation set {self.name!r} is empty or its labels do not match")


@dataclasses.dataclass(frozen=True)
class EvalResult(JsonReport):
    """Accuracy of one target on one evaluation set."""

    dataset: str
    samples: int
    top1: float
    top5: float | None


def _predict(runner: Runner, data: EvalSet, batch: int) -> np.ndarray:
    spec = next((s for s in runner.input_specs if s.name == data.input_name), None)
    if spec is None:
        raise InvalidInputError(f"the model has no input {data.input_name!r} for evaluation on {data.name}")
    fixed = spec.shape[0] if spec.shape and isinstance(spec.shape[0], int) and spec.shape[0] > 0 else None
    step = fixed or batch
    outs: list[np.ndarray] = []
    for start in range(0, len(data.inputs), step):
        chunk = data.inputs[start : start + step]
        n = len(chunk)
        if fixed and n < fixed:  # pad the last chunk of a fixed-batch model
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - n, axis=0)])
        logits = runner.infer({data.input_name: chunk})
        outs.append(next(iter(logits.values()))[:n])
    return np.concatenate(outs)


def topk_hits(logits: np.ndarray, labels: np.ndarray, ks: Sequence[int]) -> list[float]:
    """Fraction of rows whose label is among the k largest logits, for each k."""
    order = np.argsort(-logits.reshape(len(labels), -1), axis=1)
    return [float(np.mean(np.any(order[:, :k] == labels[:, None], axis=1))) for k in ks]


def evaluate_classifier(runner: Runner, data: EvalSet, *, batch: int = 500) -> EvalResult:
    """Top-1 (and top-5 when there are more than 5 classes) accuracy of ``runner`` on ``data``."""
    logits = _predict(runner, data, batch)
    ks = [1, 5] if logits.shape[-1] > 5 else [1]
    hits = topk_hits(logits, data.labels, ks)
    return EvalResult(data.name, len(data.labels), hits[0], hits[1] if len(hits) > 1 else None)
