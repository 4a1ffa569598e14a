"""The registry of *target rules*: opt-in ONNX → ONNX rewrites that make a model run on a picky backend.

A target rule replaces ops a target cannot run (or runs badly) by ops it can — ``Abs`` by ``Sqrt(x·x)`` for a
backend without Abs, a grouped Conv by N plain Convs, ``Asin`` by a polynomial. Unlike the optimizer's passes
(:mod:`modelport.passes`) they are never part of a default pipeline: ``modelport rewrite`` applies them by name
(``--rules``) or as a target profile (``--target``, :mod:`modelport.rules.profiles`).

Each rule is registered under a stable kebab-case name by decorating the factory that builds it::

    @target_rule("abs-to-sqrt-square", summary="Abs(x) → Sqrt(x·x)", removes=("Abs",), adds=("Mul", "Sqrt"))
    def abs_to_sqrt_square(settings: RuleSettings) -> RewriteRuleSet: ...

The factory returns anything with ``apply_to_model(model) -> int`` (an onnxscript ``RewriteRuleSet`` does), built
afresh per call, so no state is shared between runs. Every rule declares its numerical contract:

* ``EXACT``: the same function up to float rounding; the rewrite is judged at the fp32 tolerance.
* ``APPROX``: an approximation whose maximum absolute error on the replaced op's output, ``bound``, is derived in
  the rule module's docstring and checked by its tests over the whole domain; the rewrite is judged at the fp32
  tolerance with its absolute floor raised to ``bound``.
* ``CHANGES``: different numerics by design (``Resize`` align-corners → half-pixel); the measured difference is
  reported and fails the check unless the user accepts it with an explicit ``--atol``; never in a profile.

The registry is filled when :func:`target_rules` first imports the rule modules listed in :data:`RULE_MODULES`
and never changes afterwards.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
from collections.abc import Callable
from typing import Protocol, TypeVar

import onnx_ir as ir

from modelport.errors import PassError


class Exactness(str, enum.Enum):
    """A rule's numerical contract (see the module docstring)."""

    EXACT = "exact"
    APPROX = "approx"
    CHANGES = "changes"


class Applicable(Protocol):
    """What a rule factory returns: applies itself to a model in place, returns the number of rewrites."""

    def apply_to_model(self, model: ir.Model) -> int: ...


@dataclasses.dataclass(frozen=True)
class RuleSettings:
    """Knobs some rules take (one dataclass for all rules; each rule reads the fields it documents).

    Attributes:
        depthwise: ``split-group-conv`` also splits depthwise convolutions (groups = input channels).
    """

    depthwise: bool = False


Factory = Callable[[RuleSettings], Applicable]


@dataclasses.dataclass(frozen=True)
class RuleSpec:
    """A registry entry.

    Attributes:
        name: the stable name used by ``--rules``.
        summary: one line for ``rewrite --list`` and docs/rewrite.md.
        factory: builds the rule (set) for one run.
        removes: op types the rule replaces (what ``--check`` expects to disappear).
        adds: op types its replacement uses.
        exactness: its numerical contract.
        bound: for ``APPROX``: the maximum absolute error on the replaced op's output (derived and tested in the
            rule's module).
        module: the module that defines it (its docstring holds the maths).
    """

    name: str
    summary: str
    factory: Factory
    removes: tuple[str, ...]
    adds: tuple[str, ...]
    exactness: Exactness
    bound: float | None
    module: str


#: The modules that register target rules, imported by :func:`target_rules`.
RULE_MODULES = (
    "modelport.rules.math_ops",
    "modelport.rules.trig",
    "modelport.rules.gelu",
    "modelport.rules.hardswish",
    "modelport.rules.relu_family",
    "modelport.rules.resize",
    "modelport.rules.gather",
    "modelport.rules.group_conv",
    "modelport.rules.erf",
)

_REGISTRY: dict[str, RuleSpec] = {}

F = TypeVar("F", bound=Factory)


def target_rule(
    name: str,
    *,
    summary: str,
    removes: tuple[str, ...],
    adds: tuple[str, ...] = (),
    exactness: Exactness = Exactness.EXACT,
    bound: float | None = None,
) -> Callable[[F], F]:
    """Decorator: register a rule factory under ``name`` (kebab-case, unique)."""
    if exactness is Exactness.APPROX and (bound is None or not bound > 0):
        raise ValueError(f"approximate rule {name!r} needs its error bound")

    def decorate(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"target rule {name!r} is registered twice")
        _REGISTRY[name] = RuleSpec(name, summary, factory, removes, adds, exactness, bound, factory.__module__)
        return factory

    return decorate


def target_rules() -> dict[str, RuleSpec]:
    """Every registered target rule, by name, in the order of :data:`RULE_MODULES` (then this module's own), each
    module's rules in registration order."""
    for module in RULE_MODULES:
        importlib.import_module(module)
    names = list(_REGISTRY)
    rank = {m: i for i, m in enumerate(RULE_MODULES)}

    def key(spec: RuleSpec) -> tuple[int, int]:
        return rank.get(spec.module, len(rank)), names.index(spec.name)

    return {s.name: s for s in sorted(_REGISTRY.values(), key=key)}


def rule_spec(name: str) -> RuleSpec:
    """The rule registered under ``name``; PassError listing the valid names otherwise."""
    rules = target_rules()
    spec = rules.get(name.strip())
    if spec is None:
        raise PassError(f"unknown rule {name!r}", hint=f"valid rules: {', '.join(rules)} (modelport rewrite --list)")
    return spec


@target_rule(
    "split-nms",
    summary="Cut the model before NonMaxSuppression; modelport's host NMS (numpy) and the graph's tail finish the "
    "detections (writes OUT.onnx, OUT.tail.onnx, OUT.nms.json; `modelport detect OUT.onnx` runs them)",
    removes=("NonMaxSuppression",),
)
def split_nms(settings: RuleSettings) -> Applicable:
    """Not an in-place rewrite: :mod:`modelport.rewriting.nms_split` cuts the model (``rewrite`` calls it)."""
    raise PassError("split-nms cuts the model into parts; apply it with modelport rewrite (modelport.rewriting)")
