"""The one comparator: run subjects on the same feeds, match their tensors, judge them with the tolerance policy.

Every verb that verifies goes through here: ``compare``, every ``convert`` hop, ``optimize``, ``port`` and
``quantize``. Two steps, as in Polygraphy:

1. :func:`run` (or :func:`infer` on an open runner) runs a :class:`Subject` — a model on a backend — on feeds
   given in the reference's terms: they are renamed and transposed to the subject's own inputs
   (:func:`~modelport.verify.matching.adapt_feeds`). It returns a :class:`RunResult`: tensors by name, in order,
   with the runner's info and the precision the model file itself computes in.
2. :func:`check` compares a candidate's result with the reference's: tensors are paired by name, then order, then
   shape (:func:`~modelport.verify.matching.pair_tensors`), the candidate's layout is aligned to the reference's,
   and each pair is judged by :func:`~modelport.verify.metrics.compare_arrays` at the loosest of the tolerance's
   precision and both model files' precisions. The :class:`Comparison` it returns is frozen, keyed by tensor
   name, and true when everything passed.

Results are keyed by tensor name and :func:`check` takes the names to compare, so the same two steps serve
intermediate tensors once a runner exposes them (per-tensor comparison, bisection).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from modelport.backends import open_runner
from modelport.backends.base import LoaderOptions
from modelport.backends.runner import Runner, RunnerInfo, RunnerOptions
from modelport.errors import VerificationError
from modelport.formats import Format, Precision
from modelport.inputs import TensorSpec
from modelport.reports.serialize import JsonReport
from modelport.verify.matching import (
    adapt_feeds,
    align_outputs,
    drop_state_outputs,
    layout_permutation,
    match_name,
    pair_tensors,
)
from modelport.verify.metrics import OutputMetrics, compare_arrays
from modelport.verify.precision import loosest, model_precision, parse_executed
from modelport.verify.tolerance import Tolerance

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Subject:
    """One side of a comparison: a model on a backend with its options.

    Attributes:
        model: the model file (or a ``package.module:factory`` PyTorch spec).
        backend: backend name or alias, or a format (then the backend that runs it natively).
        options: threads, device, precision, graph optimizations.
        loader: what the backend needs beyond the path (GraphDef tensor names, torch trust flag …).
        label: how reports name it (default ``<file>@<backend>/<executed precision>``).
    """

    model: Path
    backend: str | Format
    options: RunnerOptions = RunnerOptions()
    loader: LoaderOptions = LoaderOptions()
    label: str = ""


@dataclasses.dataclass(frozen=True, eq=False)
class RunResult:
    """What one subject produced on one set of feeds.

    Attributes:
        label: the subject's name in reports.
        tensors: tensor name → array, in the model's output order.
        feeds: the feeds it ran on, in its own names and layouts.
        input_specs: its inputs as its runtime sees them.
        runner: the runner's info (runtime, version, executed precision).
        precision: the loosest of the model file's own precision and the executed one (None: unknown).
    """

    label: str
    tensors: Mapping[str, np.ndarray]
    feeds: Mapping[str, np.ndarray]
    input_specs: tuple[TensorSpec, ...] = ()
    runner: RunnerInfo | None = None
    precision: Precision | None = None


@dataclasses.dataclass(frozen=True)
class Comparison(JsonReport):
    """A candidate against the reference: one :class:`OutputMetrics` per compared tensor, in the reference's order.

    ``tolerance`` is the one applied (after the precision floor), annotated with each output's ``atol_eff``.
    """

    reference: str
    candidate: str
    tolerance: Tolerance
    outputs: tuple[OutputMetrics, ...]
    runner: RunnerInfo | None = None

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def names(self) -> tuple[str, ...]:
        """The compared tensors' (reference) names, in order."""
        return tuple(o.name for o in self.outputs)

    @property
    def worst(self) -> OutputMetrics | None:
        """The failing output with the largest error, else the output with the largest error."""
        return max(self.outputs, key=lambda o: (not o.passed, o.max_abs), default=None)

    def output(self, name: str) -> OutputMetrics:
        """The metrics of the tensor called ``name``.

        Raises:
            KeyError: no such tensor was compared.
        """
        for o in self.outputs:
            if o.name == name:
                return o
        raise KeyError(name)

    def __bool__(self) -> bool:
        return self.passed

    def reason(self) -> str:
        """One line saying why it failed ("" when it passed)."""
        w = self.worst
        if w is None or self.passed:
            return ""
        bound = f" (bound {w.atol_eff:.3g} + {self.tolerance.rtol:g}·|ref|)" if w.atol_eff > 0 else ""
        note = f" ({w.note})" if w.note else ""
        return (
            f"output {w.name!r} max abs error {w.max_abs:.3g}{bound}, {w.mismatch_fraction:.2%} of elements outside "
            f"{self.tolerance}{note}"
        )

    def require(self) -> Comparison:
        """Raise VerificationError naming the worst output unless every output passed."""
        if not self.passed:
            raise VerificationError(f"{self.candidate} differs from {self.reference}: {self.reason()}")
        return self


def infer(
    runner: Runner, feeds: Mapping[str, np.ndarray], label: str = "", precision: Precision | None = None
) -> RunResult:
    """Run an open runner on ``feeds`` (renamed and transposed to its inputs).

    Args:
        runner: a loaded runner (inside its ``with``).
        feeds: inputs in the reference's names and layouts (names pair by position when they differ).
        label: name in reports (default ``<file>@<runtime>/<executed precision>``).
        precision: the model file's own precision when known (:func:`~modelport.verify.precision.detect_precision`).
    """
    specs = runner.input_specs
    own = adapt_feeds(feeds, specs)
    tensors = runner.infer(own)
    info = runner.info()
    executed = parse_executed(info.executed_precision)
    return RunResult(
        label=label or f"{runner.model_path.name}@{info.runtime}/{info.executed_precision}",
        tensors=tensors,
        feeds=own,
        input_specs=tuple(specs),
        runner=info,
        precision=loosest(precision, executed) if precision is not None or executed is not None else None,
    )


def run(subject: Subject, feeds: Mapping[str, np.ndarray]) -> RunResult:
    """Open the subject's runner, run it once on ``feeds`` (see :func:`infer`) and close it."""
    precision = model_precision(subject.model)
    with open_runner(subject.backend, subject.model, subject.options, subject.loader) as runner:
        return infer(runner, feeds, subject.label, precision)


def check(
    reference: RunResult, candidate: RunResult, tolerance: Tolerance, *, names: Sequence[str] | None = None
) -> Comparison:
    """Compare a candidate's tensors with the reference's, judged at the loosest precision involved.

    Args:
        reference, candidate: two results on the same feeds.
        tolerance: the policy (raised to both results' precisions unless explicit, see
            :meth:`~modelport.verify.tolerance.Tolerance.at_least`).
        names: reference tensor names to compare (default: all, paired by name, order or shape).
    """
    return compare_outputs(
        reference.tensors,
        candidate.tensors,
        tolerance.at_least(reference.precision, candidate.precision),
        reference_label=reference.label,
        candidate_label=candidate.label,
        runner=candidate.runner,
        names=names,
    )


def compare_outputs(
    reference: Mapping[str, np.ndarray],
    candidate: Mapping[str, np.ndarray],
    tolerance: Tolerance,
    *,
    reference_label: str = "reference",
    candidate_label: str = "candidate",
    runner: RunnerInfo | None = None,
    names: Sequence[str] | None = None,
) -> Comparison:
    """Compare two ``{name: array}`` dicts with ``tolerance`` as given (no precision floor: see :func:`check`).

    Tensors pair by name, then order, then shape; the candidate's layout is aligned to the reference's.

    Raises:
        VerificationError: the two sides have different numbers of tensors.
        InvalidInputError: a tensor in ``names`` has no match in the candidate.
    """
    candidate = drop_state_outputs(reference, candidate)
    if names is not None:
        pairs = [(n, match_name(n, list(candidate), "output")) for n in names]
    else:
        if len(reference) != len(candidate):
            raise VerificationError(
                f"{candidate_label} has {len(candidate)} outputs, {reference_label} has {len(reference)}"
            )
        shapes = [{k: tuple(np.shape(v)) for k, v in side.items()} for side in (reference, candidate)]
        pairs = [(p.reference, p.candidate) for p in pair_tensors(shapes[0], shapes[1])]
    metrics = []
    for ref_name, cand_name in pairs:
        ref, out = np.asarray(reference[ref_name]), np.asarray(candidate[cand_name])
        perm = layout_permutation(ref.shape, out.shape) or ()
        aligned = np.ascontiguousarray(out.transpose(perm)) if perm else out
        metrics.append(compare_arrays(ref_name, ref, aligned, tolerance, candidate_name=cand_name, permutation=perm))
    applied = tolerance.resolved([(m.name, m.atol_eff) for m in metrics if m.atol_eff > 0])
    return Comparison(reference_label, candidate_label, applied, tuple(metrics), runner)


def align(result: RunResult, reference: RunResult) -> RunResult:
    """``result`` with its tensors renamed and transposed to the reference's names and layouts."""
    return dataclasses.replace(result, tensors=align_outputs(reference.tensors, result.tensors))


def worst_of(comparisons: Sequence[Comparison]) -> Comparison:
    """The comparison that failed with the largest error, else the one with the largest error."""
    return max(comparisons, key=lambda c: (not c.passed, c.max_abs))
