"""The ``compare`` verb: the same feeds through every (model, runtime) pair, each judged against the first.

Built on the comparator (:mod:`modelport.verify.comparator`): feeds are renamed and transposed to each model's
inputs, outputs paired by name/order/shape and aligned to the reference's layout, and each pair judged by the
tolerance policy (:mod:`modelport.verify.tolerance`) at the loosest of the requested precision and the precision
of both model files (an int8 model compared across runtimes is judged as int8).

Isolation (``CompareOptions.timeout``, the CLI's ``--timeout``): each (model, runtime) pair may run in a child
process of its own (:func:`~modelport.backends.isolation.call_isolated`; the feeds go there and the outputs come
back pickled). A candidate that raises, aborts, segfaults or hangs becomes a
:class:`~modelport.backends.isolation.RuntimeFailure` in the report (``passed`` is then False) and the other
candidates still run; in this process (no timeout) a candidate that raises is reported the same way. When the
reference fails there is nothing to compare against: its error is raised.

This module also keeps the names other modules import from it: :class:`Tolerance`, :class:`Comparison`,
:class:`OutputMetrics`, :func:`compare_arrays`, :func:`compare_outputs`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeAlias

import numpy as np

from modelport.backends import LoaderOptions, backend_for_format, get_backend, open_runner, parse_backends
from modelport.backends.base import Backend
from modelport.backends.isolation import ChildFailed, RuntimeFailure, call_isolated
from modelport.backends.runner import RunnerInfo, RunnerOptions
from modelport.errors import InvalidInputError, ModelportError
from modelport.formats import sniff_format
from modelport.inputs import TensorSpec, random_feeds, verification_shapes
from modelport.reports.serialize import JsonReport
from modelport.verify.comparator import Comparison, RunResult, Subject, check, compare_outputs, infer
from modelport.verify.metrics import OutputMetrics, compare_arrays
from modelport.verify.precision import model_precision
from modelport.verify.tolerance import Tolerance

__all__ = [
    "AccuracyReport",
    "CompareOptions",
    "Comparison",
    "OutputMetrics",
    "RuntimeFailure",
    "Tolerance",
    "compare",
    "compare_arrays",
    "compare_outputs",
    "reference_inputs",
]

log = logging.getLogger(__name__)


#: receives one line per step (for a progress display)
Progress: TypeAlias = Callable[[str], None]
#: the file :meth:`AccuracyReport.write` writes
REPORT_NAME = "compare.json"
#: what a runtime's child process imports (preloaded by the forkserver)
_PRELOAD = (__name__,)


@dataclasses.dataclass(frozen=True)
class CompareOptions:
    """Options of :func:`compare`.

    Attributes:
        runner: threads, device and precision of every (model, runtime) pair.
        loader: what models need beyond their path (GraphDef tensor names, torch trust flag), for every pair.
        input_shapes: concrete shapes for the dynamic dims of the random feeds.
        seed: seed of the random feeds.
        tolerance: the policy (default :meth:`Tolerance.for_precision` of ``runner.precision``); a default policy
            is raised to the precision of the model files compared, explicit values are used as given.
        timeout: seconds per (model, runtime) pair, each run in a child process of its own (a crash or hang fails
            that pair only); None runs them all in this process (a raising candidate is still reported alone).
    """

    runner: RunnerOptions = RunnerOptions()
    loader: LoaderOptions = LoaderOptions()
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    seed: int = 0
    tolerance: Tolerance | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None and self.timeout <= 0:
            raise InvalidInputError(
                f"timeout must be > 0 seconds, got {self.timeout:g}", hint="None runs every runtime in this process"
            )


@dataclasses.dataclass(frozen=True)
class AccuracyReport(JsonReport):
    """Every (model, runtime) pair against the reference on the same feeds; ``failures``: the pairs that crashed,
    timed out or raised (they have no comparison)."""

    feeds: tuple[tuple[str, tuple[int, ...], str], ...]
    seed: int | None
    comparisons: tuple[Comparison, ...]
    reference_runner: RunnerInfo | None = None
    failures: tuple[RuntimeFailure, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures and all(c.passed for c in self.comparisons)

    def __bool__(self) -> bool:
        return self.passed

    def write(self, out_dir: str | Path) -> Path:
        """Write ``compare.json`` into ``out_dir`` (created if needed) atomically; returns its path."""
        from modelport.model_io import write_text

        return write_text(Path(out_dir) / REPORT_NAME, self.to_json() + "\n")


def _subjects(
    models: Sequence[str | Path], runtimes: Sequence[str] | str | None, options: RunnerOptions, loader: LoaderOptions
) -> list[Subject]:
    """One subject per (model, runtime), models outer; ``runtimes=None``: each model on its native runtime.

    With several models in different formats, a model runs on the listed runtimes that read its format, and on
    its native runtime when none does (``a.onnx b.xml -r onnxruntime`` runs b.xml on OpenVINO)."""
    subjects = []
    listed = None if runtimes is None else parse_backends(runtimes)
    for m in models:
        path = Path(m)
        native = _native_backend(m)
        names = [native] if listed is None else listed
        if listed is not None and len(models) > 1:
            names = [n for n in listed if _reads(n, m)] or [native]
        for name in names:
            label = f"{path.name}@{get_backend(name).name}/{options.precision.value}"
            subjects.append(Subject(path, name, options, loader, label))
    return subjects


def _reads(backend: str, model: str | Path) -> bool:
    """Whether ``backend`` runs ``model``'s format natively (a module spec only on PyTorch)."""
    from modelport.backends.torch import is_module_spec

    if is_module_spec(model):
        return get_backend(backend).name == "torch"
    return sniff_format(model) in get_backend(backend).formats


def _native_backend(model: str | Path) -> str:
    """The backend that runs a model's format natively (PyTorch for a ``package.module:factory`` spec)."""
    from modelport.backends.torch import is_module_spec

    return "torch" if is_module_spec(model) else backend_for_format(sniff_format(model)).name


def compare(
    models: Sequence[str | Path],
    runtimes: Sequence[str] | str | None = ("onnxruntime",),
    *,
    options: CompareOptions | None = None,
    feeds: Mapping[str, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> AccuracyReport:
    """Run the same feeds through every (model, runtime) pair and compare each with the first pair.

    Args:
        models: one or more model files; the first on the first runtime is the reference. Models may be in
            different formats and layouts (an NHWC TFLite file against its NCHW ONNX source).
        runtimes: runtime names (``"onnxruntime,openvino"`` or a list); None runs each model on its native runtime.
        options: runner and loader options of every pair, input shapes and seed of the random feeds, tolerance.
        feeds: inputs in the reference's names; random (seeded) from the reference's metadata when omitted.
        progress: called with a line per (model, runtime) as it runs.

    Returns:
        An AccuracyReport; ``bool(report)`` is True when everything matched and no candidate failed (a candidate
        that crashed, timed out or raised is in ``report.failures``). Nothing is written (``report.write(out_dir)``
        does). With ``options.timeout`` the pairs run in child processes: a script calling this needs the usual
        ``if __name__ == "__main__":`` guard (the child imports the main module, as with any multiprocessing).

    Raises:
        InvalidInputError: no model, or a single pair. Dynamic dimensions not fixed by ``input_shapes`` get the
            first sizes of :func:`~modelport.inputs.verification_shapes` (the report's ``feeds`` say which).
        ModelportError: the reference failed (nothing to compare against): its own error, or ChildCrashed /
            ChildTimedOut / ChildFailed when its child process died, hung or raised a non-modelport exception.
    """
    if not models:
        raise InvalidInputError("no model to compare")
    opts = options or CompareOptions()
    say = progress or (lambda _msg: None)
    tol = opts.tolerance or Tolerance.for_precision(opts.runner.precision)
    subjects = _subjects(models, runtimes, opts.runner, opts.loader)
    if len(subjects) < 2:
        raise InvalidInputError("nothing to compare against", hint="give two models, or two or more --runtimes")
    reference = subjects[0]
    say(f"running the reference {reference.label}")
    feeds, ref = _reference(reference, feeds, opts)
    comparisons, failures = [], []
    for subject in subjects[1:]:
        log.info("running %s", subject.label)
        say(f"running {subject.label}")
        backend = get_backend(str(subject.backend))
        try:
            result = call_isolated(
                _run_candidate, backend, subject, feeds, timeout_s=opts.timeout, label=subject.label, preload=_PRELOAD
            )
        except Exception as exc:  # this runtime's failure (ChildFailed, an engine's error …): the others go on
            log.info("%s failed: %s", subject.label, exc, exc_info=not isinstance(exc, ModelportError))
            failures.append(RuntimeFailure.from_error(exc, runtime=backend.name, label=subject.label))
            continue
        comparisons.append(check(ref, result, tol))
    return AccuracyReport(
        feeds=tuple((k, tuple(int(s) for s in v.shape), str(v.dtype)) for k, v in feeds.items()),
        seed=opts.seed,
        comparisons=tuple(comparisons),
        reference_runner=ref.runner,
        failures=tuple(failures),
    )


def reference_inputs(
    model: str | Path, runtime: str | None = None, *, options: CompareOptions | None = None
) -> tuple[TensorSpec, ...]:
    """The inputs of ``model`` as ``runtime`` (default: its native one) sees them, read in a child process when
    ``options.timeout`` is set (for feeds from files: the reference's names, shapes and dtypes).

    Raises:
        ModelportError: the runtime cannot open the model (a crash: :class:`ChildFailed`).
    """
    opts = options or CompareOptions()
    backend = get_backend(runtime or _native_backend(model))
    label = f"{Path(model).name}@{backend.name}"
    return call_isolated(
        _input_specs, backend, Path(model), opts, timeout_s=opts.timeout, label=label, preload=_PRELOAD
    )


def _reference(
    subject: Subject, feeds: Mapping[str, np.ndarray] | None, opts: CompareOptions
) -> tuple[dict[str, np.ndarray], RunResult]:
    """Run the reference (in a child when ``opts.timeout`` is set); its failure ends the comparison."""
    try:
        return call_isolated(
            _run_reference,
            get_backend(str(subject.backend)),
            subject,
            feeds,
            opts,
            timeout_s=opts.timeout,
            label=f"{subject.label} (the reference)",
            preload=_PRELOAD,
        )
    except ChildFailed as exc:
        raise type(exc)(
            exc.message,
            hint="the reference could not run, so there is nothing to compare against; put another runtime first",
        ) from None


# --- what runs in the child processes (module-level: the child imports them by name) -----------------------------


def _run_reference(
    backend: Backend, subject: Subject, feeds: Mapping[str, np.ndarray] | None, opts: CompareOptions
) -> tuple[dict[str, np.ndarray], RunResult]:
    """The reference's run; without ``feeds``, seeded random ones from its inputs (dynamic dims at the first
    verification size unless ``opts.input_shapes`` fixes them)."""
    precision = model_precision(subject.model)
    with open_runner(backend, subject.model, subject.options, subject.loader) as runner:
        if feeds is None:
            shapes = verification_shapes(runner.input_specs, dict(opts.input_shapes) or None)[0]
            feeds = random_feeds(runner.input_specs, shapes, seed=opts.seed)
        return dict(feeds), infer(runner, feeds, subject.label, precision)


def _run_candidate(backend: Backend, subject: Subject, feeds: Mapping[str, np.ndarray]) -> RunResult:
    """One candidate's run on the reference's feeds."""
    precision = model_precision(subject.model)
    with open_runner(backend, subject.model, subject.options, subject.loader) as runner:
        return infer(runner, feeds, subject.label, precision)


def _input_specs(backend: Backend, model: Path, opts: CompareOptions) -> tuple[TensorSpec, ...]:
    with open_runner(backend, model, opts.runner, opts.loader) as runner:
        return tuple(runner.input_specs)
