"""``modelport.bisect``: where two ports of a model diverge, per tensor or by bisection.

Both models run on the same seeded feeds (the reference's inputs; renamed and transposed for the candidate with
:func:`~modelport.verify.matching.adapt_feeds`). In ``per-tensor`` mode each runs once with every intermediate tensor
exposed (:func:`~modelport.backends.trace.trace`) and :func:`~modelport.divergence.analysis.compare_traces` matches
and judges them; when a runtime cannot expose its tensors (:class:`~modelport.backends.trace.TraceUnavailable`), or
in ``bisect`` mode, the models are cut and compared prefix by prefix (:mod:`modelport.divergence.bisection`) and
the report says why.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeAlias

import numpy as np

from modelport.backends import backend_for_format, get_backend, open_runner, parse_backends
from modelport.backends.runner import RunnerOptions
from modelport.backends.trace import Trace, TraceUnavailable, trace
from modelport.divergence.analysis import Divergence, compare_traces
from modelport.divergence.bisection import BisectResult, bisect_models
from modelport.divergence.int8 import LayerContribution, qdq_view, rank_int8, suggest_exclude
from modelport.divergence.report import ranking_html, to_html
from modelport.errors import InvalidInputError
from modelport.formats import sniff_format
from modelport.inputs import TensorSpec, random_feeds, verification_shapes
from modelport.model_io import write_text
from modelport.reports.serialize import JsonReport
from modelport.verify.matching import adapt_feeds
from modelport.verify.tolerance import Tolerance

log = logging.getLogger(__name__)

#: receives one line per step (for a progress display)
Progress: TypeAlias = Callable[[str], None]
MODES = ("per-tensor", "bisect")
#: the files :meth:`DivergenceReport.write` writes
JSON_NAME, HTML_NAME = "report.json", "report.html"


@dataclasses.dataclass(frozen=True)
class BisectOptions:
    """Options of :func:`bisect`.

    Attributes:
        runtimes: the runtime of each model (one name: every model that format runs on; empty: each model's native
            runtime).
        tolerance: the policy (default fp32's, raised to the precision of either model file).
        seed: seed of the random feeds.
        input_shapes: concrete shapes for the reference's dynamic dims (``(name, shape)`` pairs).
        feeds: inputs in the reference's names (random when None).
        threads: intra-op threads of every run.
        mode: "per-tensor" (every intermediate tensor) or "bisect" (cut and compare prefixes).
    """

    runtimes: tuple[str, ...] = ()
    tolerance: Tolerance | None = None
    seed: int = 0
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    feeds: Mapping[str, np.ndarray] | None = None
    threads: int | None = None
    mode: str = "per-tensor"


@dataclasses.dataclass(frozen=True)
class DivergenceReport(JsonReport):
    """Where two models diverge.

    Attributes:
        models: the reference's and the candidate's files.
        runtimes: the runtime each ran on.
        mode: the mode that produced the result ("per-tensor" or "bisect").
        feeds: ``(name, shape, dtype)`` of the reference's feeds.
        divergence: the per-tensor result (per-tensor mode).
        bisection: the bisection result (bisect mode, or the fallback).
        note: why bisection ran instead of the per-tensor comparison ("" when it did not fall back).
        ranking: with a quantized (Q/DQ) model on either side, the layers ranked by the error each adds
            (:func:`~modelport.divergence.int8.rank_int8`).
        exclude: the node names to keep in float (``modelport quantize --exclude``), from the top of the ranking.
        seconds: wall time of the whole analysis.
    """

    models: tuple[str, str]
    runtimes: tuple[str, str]
    mode: str
    feeds: tuple[tuple[str, tuple[int, ...], str], ...]
    divergence: Divergence | None = None
    bisection: BisectResult | None = None
    note: str = ""
    ranking: tuple[LayerContribution, ...] = ()
    exclude: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        if self.divergence is not None:
            return self.divergence.passed
        return bool(getattr(self.bisection, "passed", False))

    def __bool__(self) -> bool:
        return self.passed

    def write(self, out_dir: str | Path) -> Path:
        """Write ``report.json`` and ``report.html`` into ``out_dir`` (created if needed); returns the directory."""
        out = Path(out_dir)
        write_text(out / JSON_NAME, self.to_json() + "\n")
        self.write_html(out / HTML_NAME)
        return out

    def write_html(self, path: str | Path) -> Path:
        """Write the HTML page alone (the error plot in per-tensor mode, the steps in bisect mode); returns it."""
        if self.divergence is not None:
            rows = [(r.op, r.op_type, r.contribution, r.inherited, r.max_abs) for r in self.ranking[:10]]
            return to_html(self.divergence, path, extra=[ranking_html(rows, self.exclude)] if rows else ())
        return write_text(Path(path), _plain_html(self))


def bisect(
    models: Sequence[str | Path],
    runtimes: Sequence[str] | str | None = None,
    *,
    options: BisectOptions | None = None,
    progress: Progress | None = None,
) -> DivergenceReport:
    """Find where a candidate model diverges from a reference on the same feeds.

    Args:
        models: the reference and the candidate (any formats their runtimes read).
        runtimes: the runtime of each model (overrides ``options.runtimes``; see :class:`BisectOptions`).
        options: tolerance, feeds, seed, shapes, threads, mode.
        progress: called with a line per step.

    Returns:
        A DivergenceReport; ``bool(report)`` is True when nothing diverged. Nothing is written (``report.write``).

    Raises:
        InvalidInputError: not two models, an unknown mode, models with different inputs, or no matchable tensor.
        TraceUnavailable: a runtime cannot expose its tensors and bisection cannot run either.
    """
    start = time.perf_counter()
    opts = options or BisectOptions()
    say = progress or (lambda _msg: None)
    if len(models) != 2:
        raise InvalidInputError(
            f"per-tensor comparison takes two models, got {len(models)}", hint="give a reference and a candidate"
        )
    if opts.mode not in MODES:
        raise InvalidInputError(f"unknown mode {opts.mode!r}", hint=f"one of {', '.join(MODES)}")
    paths = (Path(models[0]), Path(models[1]))
    names = runtimes_for(paths, runtimes if runtimes is not None else opts.runtimes)
    run_opts = RunnerOptions(threads=opts.threads)
    ref_specs, cand_specs = (_specs(n, p, run_opts) for n, p in zip(names, paths, strict=True))
    feeds = opts.feeds or random_feeds(
        ref_specs, verification_shapes(ref_specs, dict(opts.input_shapes) or None)[0], seed=opts.seed
    )
    ref_feeds, cand_feeds = _own_feeds(feeds, ref_specs, paths[0]), _own_feeds(feeds, cand_specs, paths[1])
    base = DivergenceReport(
        models=(str(paths[0]), str(paths[1])),
        runtimes=names,
        mode=opts.mode,
        feeds=tuple((k, tuple(int(s) for s in v.shape), str(v.dtype)) for k, v in ref_feeds.items()),
    )
    note = ""
    if opts.mode == "per-tensor":
        try:
            traces = [
                _trace(n, p, f, run_opts, say) for n, p, f in zip(names, paths, (ref_feeds, cand_feeds), strict=True)
            ]
            quantized = any(_has_qdq(t) for t in traces)
            traces = [qdq_view(t) for t in traces]  # a Q/DQ pair's output is what the next layer reads
            divergence = compare_traces(traces[0], traces[1], opts.tolerance)
            ranking = rank_int8(divergence, traces[0].ops) if quantized else ()
            return dataclasses.replace(
                base,
                divergence=divergence,
                ranking=ranking,
                exclude=suggest_exclude(ranking, EXCLUDE_SUGGESTED) if ranking else (),
                seconds=time.perf_counter() - start,
            )
        except TraceUnavailable as exc:
            note = f"per-tensor comparison unavailable ({exc.args[0] if exc.args else exc}); bisected instead"
            log.warning("%s", note)
            say(note)
    result = _bisect(paths, names, ref_feeds, opts, say)
    return dataclasses.replace(base, mode="bisect", bisection=result, note=note, seconds=time.perf_counter() - start)


#: how many layers the INT8 mode suggests keeping in float
EXCLUDE_SUGGESTED = 3


def _has_qdq(trace: Trace) -> bool:
    return any(op.op_type in ("QuantizeLinear", "DequantizeLinear") for op in trace.ops)


def runtimes_for(models: Sequence[Path], runtimes: Sequence[str] | str | None) -> tuple[str, str]:
    """The runtime of each of two models: one listed per model, or one for both (a model whose format it does not
    run takes its native runtime), or each model's native runtime."""
    listed = parse_backends(runtimes) if runtimes else []
    if len(listed) == 2 and len(models) == 2:
        return listed[0], listed[1]
    if len(listed) > 2:
        raise InvalidInputError(f"give one runtime per model (two), got {len(listed)}: {', '.join(listed)}")
    chosen = []
    for m in models:
        native = backend_for_format(sniff_format(m)).name
        chosen.append(listed[0] if listed and sniff_format(m) in get_backend(listed[0]).formats else native)
    return chosen[0], chosen[1]


def _specs(runtime: str, model: Path, options: RunnerOptions) -> tuple[TensorSpec, ...]:
    with open_runner(runtime, model, options) as runner:
        return tuple(runner.input_specs)


def _own_feeds(feeds: Mapping[str, np.ndarray], specs: Sequence[TensorSpec], model: Path) -> dict[str, np.ndarray]:
    try:
        return adapt_feeds(feeds, specs)
    except InvalidInputError as exc:
        theirs = ", ".join(f"{s.name} {s.shape_text()}" for s in specs)
        ours = ", ".join(f"{k} {list(v.shape)}" for k, v in feeds.items())
        raise InvalidInputError(
            f"the two models have different inputs: {model.name} takes {theirs}; the reference's feeds are {ours}",
            hint=f"per-tensor comparison runs both on the same feeds ({exc.args[0] if exc.args else exc})",
            path=model,
        ) from exc


def _trace(runtime: str, model: Path, feeds: Mapping[str, np.ndarray], options: RunnerOptions, say: Progress) -> Trace:
    say(f"tracing {model.name} on {runtime}")
    return trace(runtime, model, feeds, options)


def _bisect(
    paths: tuple[Path, Path], names: tuple[str, str], feeds: Mapping[str, np.ndarray], opts: BisectOptions,
    say: Progress,
) -> BisectResult:  # fmt: skip
    """Cut both models and compare the prefixes (:func:`~modelport.divergence.bisection.bisect_models`)."""
    say(f"bisecting {paths[1].name} against {paths[0].name}")
    return bisect_models(paths[0], paths[1], feeds, opts.tolerance, names, opts.threads, seed=opts.seed)


def _plain_html(report: DivergenceReport) -> str:
    import html

    body = html.escape(report.bisection.summary() if report.bisection is not None else report.to_json())
    title = html.escape(f"{Path(report.models[1]).name} vs {Path(report.models[0]).name}")
    note = f"<p>{html.escape(report.note)}</p>" if report.note else ""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>'
        f"<body><h1>{title}</h1>{note}<pre>{body}</pre></body></html>\n"
    )
