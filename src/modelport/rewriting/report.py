"""The report of ``modelport rewrite``: which rules matched how often, op counts, the target check, verification."""

from __future__ import annotations

import dataclasses

from modelport.reports.serialize import JsonReport
from modelport.rules.catalog import Exactness
from modelport.verify.comparator import Comparison


@dataclasses.dataclass(frozen=True)
class RuleApplied(JsonReport):
    """One rule's run.

    Attributes:
        name: the rule.
        matches: how many times it rewrote the graph (0: nothing to do).
        exactness: its numerical contract.
        bound: its documented error bound (``APPROX`` rules).
        refused: why it did not rewrite ops it replaces that the model holds (its checks' own words, each once).
    """

    name: str
    matches: int
    exactness: Exactness
    bound: float | None = None
    refused: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RewriteReport(JsonReport):
    """What ``rewrite`` did to one model.

    Attributes:
        source: the input file (or ``"<model>"``).
        target: the profile applied (None: rules named one by one).
        rules: every rule run, in order, with its match count.
        nodes_before / nodes_after: node counts (main graph and sub-graphs).
        ops_before / ops_after: op-type histograms.
        unsupported_before / unsupported_after: ``(op, count)`` of the ops the target cannot run (empty without a
            target).
        verification: the rewritten model against the source in ONNX Runtime (None when not verified).
        tolerance_basis: why the tolerance is what it is (fp32, raised to an approximation's bound, or the user's).
        seconds: wall time.
        outputs: the files written (the model; with ``split-nms`` also its tail and split description).
    """

    source: str
    target: str | None
    rules: tuple[RuleApplied, ...]
    nodes_before: int
    nodes_after: int
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    unsupported_before: tuple[tuple[str, int], ...]
    unsupported_after: tuple[tuple[str, int], ...]
    verification: Comparison | None
    tolerance_basis: str
    seconds: float
    outputs: tuple[str, ...] = ()

    @property
    def ops_changed(self) -> tuple[tuple[str, int, int], ...]:
        """``(op, count before, count after)`` for every op type whose count changed, sorted by op."""
        ops = sorted(set(self.ops_before) | set(self.ops_after))
        counts = ((op, self.ops_before.get(op, 0), self.ops_after.get(op, 0)) for op in ops)
        return tuple(c for c in counts if c[1] != c[2])

    @property
    def matches(self) -> int:
        """Rewrites over all rules."""
        return sum(r.matches for r in self.rules)
