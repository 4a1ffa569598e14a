"""``rewrite``: apply target rules (by name or as a target profile) to an ONNX model and verify the result.

    >>> from modelport import RewriteOptions, rewrite
    >>> result = rewrite("model.onnx", options=RewriteOptions(target="edgetpu"))
    >>> report = result.write("model.edgetpu.onnx")
    >>> [(r.name, r.matches) for r in report.rules], report.unsupported_after

The rules run once each, in order (a profile's order, then the named ones), on an onnx-ir copy of the model after
shape inference; dead nodes are removed and the graph is sorted. ``split-nms`` runs last: it cuts the model before
its ``NonMaxSuppression`` (:mod:`modelport.rewriting.nms_split`) and the result is a head, a tail and the host NMS
between them.

**Verification.** The rewritten model runs in ONNX Runtime (graph optimizations off) on the seeded feeds
``optimize`` uses, and on the same feeds spread over U(−4, 4) (target rules rewrite sign- and range-dependent ops),
and is compared with the source by the one comparator. The tolerance follows the rules'
contracts (:class:`~modelport.rules.catalog.Exactness`): fp32 when every rule that matched is exact; for
approximations the fp32 policy with its absolute floor raised to the sum of the matched rules' bounds (an
approximation's error on the replaced op's output; a layer that amplifies it needs the user's ``--atol``); a rule
that changes numerics by design (``resize-no-align-corners``) fails the check unless the user accepts the measured
difference with an explicit tolerance. The user's ``--rtol/--atol`` replace all of this.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
from onnxscript.rewriter import MatchingTracer, MatchStatus, RewriteRuleSet

from modelport.errors import InferenceError, InvalidInputError, ModelLoadError, PassError, VerificationError
from modelport.model_io import check_proto, load_proto, save_model
from modelport.passes import run_passes
from modelport.passes.api import (
    CandidateFailed,
    onnx_outputs,
    refuse_overwrite,
    searched_feed_sets,
    verification_feeds,
    verify_models,
)
from modelport.passes.base import count_nodes
from modelport.passes.report import op_histogram
from modelport.rewriting.nms_split import NmsCut, has_nms_proto, sidecar, split_before_nms, write_split
from modelport.rewriting.report import RewriteReport, RuleApplied
from modelport.rules.catalog import Exactness, RuleSettings, RuleSpec, rule_spec
from modelport.rules.profiles import profile, pseudo_ops
from modelport.verify.comparator import Comparison, compare_outputs, worst_of
from modelport.verify.session import OnnxSession
from modelport.verify.tolerance import Tolerance

log = logging.getLogger(__name__)

#: the rule applied by cutting the model rather than rewriting it in place
SPLIT_NMS = "split-nms"
#: the report's ``source`` for a model given in memory
IN_MEMORY = "<model>"


@dataclasses.dataclass(frozen=True)
class RewriteOptions:
    """Options of :func:`rewrite`.

    Attributes:
        rules: rule names to apply (after the target's).
        target: a profile name (:mod:`modelport.rules.profiles`): its rules, and the op check.
        settings: the rules' knobs (``depthwise`` for ``split-group-conv``).
        verify: compare the rewritten model with the source in ONNX Runtime.
        tolerance: the user's explicit tolerance (None: from the rules' contracts, see the module docstring).
        input_shapes: ``(input name, shape)`` pairs for the verification feeds.
        batch: leading dim of the verification feeds where it is dynamic.
        seed: seed of the random verification feeds.
        threads: ONNX Runtime threads for the verification.
    """

    rules: tuple[str, ...] = ()
    target: str | None = None
    settings: RuleSettings = RuleSettings()
    verify: bool = True
    tolerance: Tolerance | None = None
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    batch: int | None = None
    seed: int = 0
    threads: int | None = None


@dataclasses.dataclass(frozen=True)
class _Split:
    """The NMS split of a rewritten model, held in memory until written."""

    head: onnx.ModelProto
    tail: onnx.ModelProto
    cut: NmsCut


@dataclasses.dataclass(frozen=True)
class RewriteResult:
    """The rewritten model and its report; :meth:`write` saves it."""

    model: onnx.ModelProto
    report: RewriteReport
    split: _Split | None = None

    def to_json(self, indent: int | None = 2) -> str:
        return self.report.to_json(indent)

    def write(self, path: str | Path) -> RewriteReport:
        """Save the model to ``path`` atomically; with ``split-nms`` also ``<stem>.tail.onnx`` and ``<stem>.nms.json``.

        Raises:
            InvalidInputError: ``path`` is the source file (inputs are never modified).
        """
        dst = Path(path)
        src = Path(self.report.source)
        tail = dst.with_suffix(".tail.onnx")
        written = onnx_outputs(dst) + ([*onnx_outputs(tail), sidecar(dst)] if self.split is not None else [])
        refuse_overwrite(written, [src] if self.report.source != IN_MEMORY else [])
        if self.split is None:
            save_model(self.model, dst, source=src if src.is_file() else None)
            return dataclasses.replace(self.report, outputs=(str(dst),))
        save_model(self.split.head, dst)
        save_model(self.split.tail, tail)
        desc = write_split(dataclasses.replace(self.split.cut, head=dst, tail=tail), sidecar(dst))
        return dataclasses.replace(self.report, outputs=(str(dst), str(tail), str(desc)))


def plan_rules(rules: Sequence[str] = (), target: str | None = None) -> list[RuleSpec]:
    """The rules to run, in order: the target's, then the named ones (each once).

    Raises:
        PassError: an unknown rule or target (the message lists the valid ones).
        InvalidInputError: neither rules nor a target.
    """
    names: list[str] = list(profile(target).rules) if target else []
    names += [n.strip() for n in rules if n.strip()]
    if not names:
        raise InvalidInputError("rewrite needs --rules or --target", hint="modelport rewrite --list shows both")
    return [rule_spec(n) for n in dict.fromkeys(names)]


def rule_tolerance(applied: Sequence[RuleApplied], user: Tolerance | None) -> tuple[Tolerance, str]:
    """The verification tolerance for the rules that matched, and why (see the module docstring)."""
    if user is not None:
        return user, "the user's (--rtol/--atol)"
    base = Tolerance.for_precision("fp32")
    approx = [a for a in applied if a.matches and a.exactness is Exactness.APPROX and a.bound]
    if not approx:
        return base, "fp32: every rule that matched is exact"
    bound = sum(a.bound or 0.0 for a in approx)
    names = ", ".join(a.name for a in approx)
    if bound <= base.atol:
        return base, f"fp32: the documented bound of {names} ({bound:.2g}) is below fp32's absolute floor"
    tol = Tolerance(rtol=base.rtol, atol=max(base.atol, bound), scale=base.scale, max_rel_l2=None)
    return tol, f"fp32 with the absolute floor raised to {bound:.3g}, the documented bound of {names}"


def rewrite(
    model: str | Path | onnx.ModelProto,
    *,
    options: RewriteOptions | None = None,
    feeds: Mapping[str, np.ndarray] | None = None,
    progress: Callable[[str], None] | None = None,
) -> RewriteResult:
    """Apply target rules to an ONNX model and verify the result against it.

    Args:
        model: an .onnx path or proto (never modified).
        options: which rules or target, verification settings; see :class:`RewriteOptions`.
        feeds: inputs to verify on, in addition to seeded random ones.
        progress: called with a line per step.

    Returns:
        The rewritten model and its report; nothing is written (``result.write(path)`` saves it).

    Raises:
        PassError: an unknown rule or target, or a rewritten model that fails onnx.checker.
        InvalidInputError: no rule and no target.
        ModelLoadError: the model cannot be read.
        VerificationError: the rewritten model differs from the source beyond the tolerance.
    """
    start = time.perf_counter()
    opts = options or RewriteOptions()
    say = progress or (lambda _msg: None)
    specs = plan_rules(opts.rules, opts.target)
    original, source = _load(model)
    work = ir.serde.deserialize_model(original)
    nodes_before, ops_before = count_nodes(work), _histogram(work)
    run_passes(work, ["shape-inference"])
    say(f"applying {len(specs)} rules")
    applied = []
    for spec in specs:
        if spec.name == SPLIT_NMS:
            continue
        applied.append(_apply(spec, work, opts.settings))
        if applied[-1].matches:  # the next rule's checks read the dtypes and shapes of the new values
            run_passes(work, ["shape-inference"])
    if any(a.matches for a in applied):
        run_passes(work, ["remove-unused", "topological-sort", "shape-inference"])
    rewritten = ir.serde.serialize_model(work)
    try:
        check_proto(rewritten)
    except ModelLoadError as exc:
        acted = ", ".join(a.name for a in applied if a.matches)
        msg = f"the rewritten model fails onnx.checker: {exc.message}"
        raise PassError(msg, hint=f"rules that acted: {acted}; leave one out") from exc
    split = None
    if any(s.name == SPLIT_NMS for s in specs):
        split = _split(rewritten, source)
        applied.append(RuleApplied(SPLIT_NMS, int(split is not None), Exactness.EXACT))
    tolerance, basis = rule_tolerance(applied, opts.tolerance)
    comparison = None
    if opts.verify and any(a.matches for a in applied):
        say("verifying the rewritten model against the source in ONNX Runtime")
        comparison = _verify(original, rewritten, split, opts, tolerance, feeds, applied)
        judged = comparison.tolerance.precision
        if judged is not None and tolerance.precision is not None and judged is not tolerance.precision:
            basis += f"; raised to the source's own precision, {judged.value}"
    after = ir.serde.deserialize_model(split.head if split else rewritten)
    ops_after = _histogram(after)
    if split is not None:
        for op, n in op_histogram(ir.serde.deserialize_model(split.tail)).items():
            ops_after[op] = ops_after.get(op, 0) + n
    target = profile(opts.target) if opts.target else None

    def unsupported(ops: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
        return tuple((op, ops[op]) for op in target.cannot_run(ops)) if target else ()

    report = RewriteReport(
        source=source,
        target=opts.target,
        rules=tuple(applied),
        nodes_before=nodes_before,
        nodes_after=count_nodes(after) + (count_nodes(ir.serde.deserialize_model(split.tail)) if split else 0),
        ops_before=ops_before,
        ops_after=dict(sorted(ops_after.items())),
        unsupported_before=unsupported(ops_before),
        unsupported_after=unsupported(ops_after),
        verification=comparison,
        tolerance_basis=basis,
        seconds=time.perf_counter() - start,
    )
    log.info("rewrote %s: %d rewrites, %d → %d nodes", source, report.matches, nodes_before, report.nodes_after)
    return RewriteResult(split.head if split else rewritten, report, split)


def _histogram(model: ir.Model) -> dict[str, int]:
    """Op types and the variants profiles check (``Conv(grouped)``, ``Resize(align_corners)``), sorted."""
    return dict(sorted({**op_histogram(model), **pseudo_ops(model)}.items()))


def _load(model: str | Path | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    if isinstance(model, onnx.ModelProto):
        check_proto(model)
        return model, IN_MEMORY
    return load_proto(model), str(model)


def _apply(spec: RuleSpec, model: ir.Model, settings: RuleSettings) -> RuleApplied:
    """Run one rule on the model in place; when it rewrote nothing although the model holds ops it replaces, ask
    the rule why (onnxscript's matching tracer: the reasons its checks gave)."""
    try:
        rule = spec.factory(settings)
        count = int(rule.apply_to_model(model))
        refused = _refusals(rule, model) if count == 0 and _holds(model, spec.removes) else ()
    except (PassError, InvalidInputError):
        raise
    except Exception as exc:  # a rule bug or a graph it does not expect: say which rule
        raise PassError(f"rule {spec.name!r} failed: {type(exc).__name__}: {exc}") from exc
    log.debug("%s: %d matches%s", spec.name, count, f"; refused: {'; '.join(refused)}" if refused else "")
    return RuleApplied(spec.name, count, spec.exactness, spec.bound, refused)


def _holds(model: ir.Model, ops: Sequence[str]) -> bool:
    return any(node.op_type in ops for node in model.graph)


#: at most this many distinct refusal reasons per rule in the report
MAX_REASONS = 3


def _refusals(rule: object, model: ir.Model) -> tuple[str, ...]:
    """The distinct reasons a rule set's checks gave on this model (its tracer changes nothing)."""
    if not isinstance(rule, RewriteRuleSet):
        return ()
    tracer = MatchingTracer()
    rule.apply_to_model(model, tracer=tracer)
    reasons: dict[str, None] = {}
    for matches in tracer.best_matches_map.values():
        for info in matches:
            if info.status is MatchStatus.CONDITION_FAILED and info.match_result.reason:
                reasons[info.match_result.reason.strip()] = None
    return tuple(reasons)[:MAX_REASONS]


def _split(rewritten: onnx.ModelProto, source: str) -> _Split | None:
    """The NMS split of the rewritten model (None when it has no NonMaxSuppression)."""
    if not has_nms_proto(rewritten):
        return None
    copy = onnx.ModelProto()
    copy.CopyFrom(rewritten)
    with tempfile.TemporaryDirectory(prefix="modelport-split-") as tmp:
        cut = split_before_nms(copy, Path(tmp) / "head.onnx", Path(tmp) / "tail.onnx", source)
        head, tail = onnx.load(str(cut.head)), onnx.load(str(cut.tail))
    return _Split(head, tail, cut)


def _verify(
    original: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    split: _Split | None,
    opts: RewriteOptions,
    tolerance: Tolerance,
    feeds: Mapping[str, np.ndarray] | None,
    applied: Sequence[RuleApplied],
) -> Comparison:
    """Compare the rewritten model (or its split, through the host NMS) with the source on seeded feeds."""
    shapes = dict(opts.input_shapes) or None
    graph = ir.serde.deserialize_model(original).graph
    feed_sets: list[Mapping[str, np.ndarray]] = _with_signed(verification_feeds(graph, shapes, opts.batch, opts.seed))
    if feeds is not None:
        feed_sets.append(feeds)
    try:
        try:
            comparison = _compare(original, rewritten, split, feed_sets, tolerance, opts.threads)
        except InferenceError:  # the source refuses the default sizes: use sizes it accepts
            try:
                feed_sets = _with_signed(searched_feed_sets(original, shapes, opts.batch, opts.seed, opts.threads))
            except InferenceError:
                if feeds is None:
                    raise
                feed_sets = []  # the user's feeds alone (a model random values cannot drive, e.g. a sample rate)
            if feeds is not None:
                feed_sets.append(feeds)
            comparison = _compare(original, rewritten, split, feed_sets, tolerance, opts.threads)
    except CandidateFailed as exc:
        raise VerificationError(exc.message) from exc
    if not comparison:
        changes = [a.name for a in applied if a.matches and a.exactness is Exactness.CHANGES]
        if changes and opts.tolerance is None:
            raise VerificationError(
                f"{', '.join(changes)} changes the model's numerics by design: measured max abs difference "
                f"{comparison.max_abs:.3g} ({comparison.reason()})",
                hint=f"accept it with --atol {comparison.max_abs:.2g}, or leave the rule out",
            )
        raise VerificationError(f"the rewritten model differs from the source: {comparison.reason()}")
    return comparison


#: the range of the signed verification feeds
SIGNED_RANGE = 4.0


def _with_signed(feed_sets: Sequence[Mapping[str, np.ndarray]]) -> list[Mapping[str, np.ndarray]]:
    """Each feed set, then a copy with its float inputs spread over ``[-SIGNED_RANGE, SIGNED_RANGE)``.

    The default feeds are U(0, 1): right for images, blind to what target rules rewrite — ops whose result depends
    on the sign or the range of their input (Abs, LeakyRelu, PRelu, Asin beyond ±1, Pow of negatives). Every rewrite
    is therefore also checked on the same draw mapped to U(−4, 4).
    """
    signed = [
        {k: (v * 2 - 1) * v.dtype.type(SIGNED_RANGE) if v.dtype.kind == "f" else v for k, v in f.items()}
        for f in feed_sets
    ]
    return [*feed_sets, *signed]


def _compare(
    original: onnx.ModelProto,
    rewritten: onnx.ModelProto,
    split: _Split | None,
    feed_sets: Sequence[Mapping[str, np.ndarray]],
    tolerance: Tolerance,
    threads: int | None,
) -> Comparison:
    if split is None:
        return verify_models(original, rewritten, feed_sets, tolerance, threads)
    results = []
    sessions = OnnxSession(original, threads), OnnxSession(split.head, threads), OnnxSession(split.tail, threads)
    with sessions[0] as src, sessions[1] as head, sessions[2] as tail:
        for feeds in feed_sets:
            want, got = src(feeds), tail(split.cut.tail_feeds(head(feeds)))
            results.append(compare_outputs(want, got, tolerance, reference_label="source", candidate_label="split"))
    return worst_of(results)
