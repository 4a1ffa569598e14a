"""``port``'s name for the child-process machinery, which lives in :mod:`modelport.backends.isolation` (so that
``compare``, ``bench`` and the converters, in lower layers, use the same one).

A port target is one piece of work run in a child: :class:`TargetFailed`, :class:`TargetCrashed` and
:class:`TargetTimedOut` are the same classes as :class:`~modelport.backends.isolation.ChildFailed`,
:class:`~modelport.backends.isolation.ChildCrashed` and :class:`~modelport.backends.isolation.ChildTimedOut`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from modelport.backends import isolation
from modelport.backends.isolation import (
    ChildCrashed,
    ChildFailed,
    ChildTimedOut,
    isolation_available,
    kill_process_group,
    start_method,
)

__all__ = [
    "TargetCrashed",
    "TargetFailed",
    "TargetTimedOut",
    "isolation_available",
    "kill_process_group",
    "run_isolated",
    "start_method",
]

TargetFailed = ChildFailed
TargetCrashed = ChildCrashed
TargetTimedOut = ChildTimedOut

T = TypeVar("T")

#: what a target's child imports (the pipeline, the converters' and passes' modules): the forkserver preloads it
_PRELOAD = ("modelport.porting",)


def run_isolated(
    func: Callable[..., T],
    *args: Any,
    timeout_s: float,
    label: str,
    progress: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> T:
    """:func:`modelport.backends.isolation.run_isolated`, with ``port``'s package preloaded by the forkserver."""
    return isolation.run_isolated(
        func, *args, timeout_s=timeout_s, label=label, progress=progress, preload=_PRELOAD, **kwargs
    )
