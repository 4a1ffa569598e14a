"""The pass base class, the pass registry and per-pass statistics.

Every pass is an onnx-ir :class:`~onnx_ir.passes.InPlacePass` registered under a stable kebab-case name with
a frozen options dataclass::

    @register_pass("fold-batchnorm", summary="…")
    class FoldBatchNorm(ModelportPass[FoldBatchNormOptions]):
        def apply(self, model: ir.Model) -> bool: ...

The registry is filled at import time by the decorator and never changes afterwards.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import onnx_ir as ir

from modelport.errors import ModelportError, PassError
from modelport.reports.serialize import JsonReport

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PassOptions:
    """Options of a pass that has none (the base of every options dataclass)."""


OptT = TypeVar("OptT", bound=PassOptions)


class Phase(int, enum.Enum):
    """When a pass runs: once before the fixed-point loop, inside it, or once after it."""

    PREPARE = 0
    LOOP = 1
    FINISH = 2


class ModelportPass(ir.passes.InPlacePass, Generic[OptT]):
    """A registered, in-place graph pass with frozen options.

    Subclasses implement :meth:`apply`, which changes ``model`` in place and returns whether it changed.
    """

    name: ClassVar[str] = ""
    options_class: ClassVar[type[PassOptions]] = PassOptions

    def __init__(self, options: OptT | None = None) -> None:
        super().__init__()
        self.options: OptT = options if options is not None else self.options_class()  # type: ignore[assignment]

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        return ir.passes.PassResult(model, bool(self.apply(model)))

    def apply(self, model: ir.Model) -> bool:
        """Change ``model`` in place; return True when anything changed."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options})"


@dataclasses.dataclass(frozen=True)
class PassSpec:
    """A registry entry: the pass class, its options class, when it runs and whether it is on by default."""

    name: str
    cls: type[ModelportPass[Any]]
    options: type[PassOptions]
    phase: Phase
    default: bool
    summary: str
    engine: str


#: Canonical order of the passes inside their phase; passes registered elsewhere (plugins, tests) follow,
#: in registration order.
PIPELINE_ORDER = (
    "convert-opset",
    "initializers-not-inputs",
    "fix-dims",
    "shape-inference",
    "fold-constants",
    "fold-shape-gathers",
    "eliminate-noops",
    "eliminate-identity",
    "merge-constant-chains",
    "merge-slices",
    "drop-zero-rnn-states",
    "fold-batchnorm",
    "decompose-batchnorm",
    "fuse-conv-affine",
    "fuse-pad-conv",
    "eliminate-transposes",
    "collapse-reshapes",
    "merge-concats",
    "matmul-add-to-gemm",
    "fuse-relu6",
    "fuse-hardswish",
    "dedup-initializers",
    "cse",
    "remove-unused",
    "topological-sort",
)

_REGISTRY: dict[str, PassSpec] = {}

P = TypeVar("P", bound=type[ModelportPass[Any]])


def register_pass(
    name: str,
    *,
    summary: str,
    options: type[PassOptions] = PassOptions,
    phase: Phase = Phase.LOOP,
    default: bool = True,
    engine: str = "modelport",
) -> Callable[[P], P]:
    """Class decorator: register a pass under ``name`` (kebab-case, unique).

    Args:
        name: the stable name used by ``--passes`` / ``--skip``.
        summary: one line for ``docs/optimize.md`` and error messages.
        options: the frozen options dataclass the pass takes.
        phase: before, inside or after the fixed-point loop.
        default: part of the default pipeline (False: opt-in by name).
        engine: which library does the work ("onnx-ir", "onnxscript", "onnx", "modelport").
    """

    def decorate(cls: P) -> P:
        if name in _REGISTRY:
            raise ValueError(f"pass {name!r} is registered twice")
        cls.name = name
        cls.options_class = options
        _REGISTRY[name] = PassSpec(name, cls, options, phase, default, summary, engine)
        return cls

    return decorate


def registry() -> dict[str, PassSpec]:
    """A copy of the registry in pipeline order: by phase, then PIPELINE_ORDER, then registration order."""
    names = list(_REGISTRY)
    order = {name: i for i, name in enumerate(PIPELINE_ORDER)}

    def key(spec: PassSpec) -> tuple[int, int]:
        return int(spec.phase), order.get(spec.name, len(order) + names.index(spec.name))

    return {s.name: s for s in sorted(_REGISTRY.values(), key=key)}


def pass_spec(name: str) -> PassSpec:
    """The spec registered under ``name``; PassError listing the valid names otherwise."""
    spec = _REGISTRY.get(name.strip())
    if spec is None:
        raise PassError(f"unknown pass {name!r}", hint=f"valid passes: {', '.join(registry())}")
    return spec


@dataclasses.dataclass(frozen=True)
class PassStats(JsonReport):
    """What one pass did over the whole run (summed over fixed-point iterations)."""

    name: str
    modified: bool
    nodes_before: int
    nodes_after: int
    seconds: float
    runs: int = 1


def count_nodes(model: ir.Model) -> int:
    """Nodes in the main graph and all subgraphs (functions excluded)."""
    return sum(1 for _ in ir.traversal.RecursiveGraphIterator(model.graph))


class InstrumentedPass(ir.passes.InPlacePass):
    """Wraps a pass to time it and count nodes; appends one record per run to ``records``."""

    def __init__(self, inner: ModelportPass[Any], records: list[PassStats]) -> None:
        super().__init__()
        self.inner = inner
        self.records = records

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        before = count_nodes(model)
        start = time.perf_counter()
        try:
            result = self.inner(model)
        except ModelportError:
            raise  # a deliberate error (an invalid --input-shape, an opset onnx cannot convert): the user must act
        except Exception as exc:
            raise PassFailed(self.inner.name, f"{type(exc).__name__}: {exc}") from exc
        seconds = time.perf_counter() - start
        after = count_nodes(result.model)
        self.records.append(PassStats(self.inner.name, result.modified, before, after, seconds))
        log.debug("%s: modified=%s nodes %d → %d (%.3fs)", self.inner.name, result.modified, before, after, seconds)
        return ir.passes.PassResult(result.model, result.modified)


class PassFailed(PassError):
    """A pass raised while running (a bug or an unsupported graph): the optimizer can retry without it."""

    def __init__(self, pass_name: str, reason: str) -> None:
        super().__init__(f"pass {pass_name!r} failed: {reason}")
        self.pass_name = pass_name


def merge_stats(records: Sequence[PassStats]) -> tuple[PassStats, ...]:
    """One PassStats per pass name (first-run order): modified if any run modified, times summed."""
    merged: dict[str, PassStats] = {}
    for r in records:
        m = merged.get(r.name)
        if m is None:
            merged[r.name] = r
        else:
            merged[r.name] = PassStats(
                r.name, m.modified or r.modified, m.nodes_before, r.nodes_after, m.seconds + r.seconds, m.runs + 1
            )
    return tuple(merged.values())
