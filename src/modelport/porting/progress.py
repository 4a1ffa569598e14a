"""``port``'s progress messages: text, so that they cross the child-process boundary, in a form a reader can parse.

Every message about one target starts with its label (``openvino/int8: …``). A target's first message says how
many steps follow (``openvino/int8: start, 4 steps``), each step is one message, and its last message is its
status (``openvino/int8: done, verified``). Other messages (preparing the source …) have no label. The CLI draws
one progress bar per target from them; any other ``progress`` callable can print them as they are.
"""

from __future__ import annotations

import dataclasses
import re

from modelport.formats import Precision

_START = re.compile(r"^start, (\d+) steps?$")
_DONE = re.compile(r"^done, (\w+)$")
_LABEL = re.compile(r"^([\w.-]+/[\w.-]+): (.*)$", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class TargetEvent:
    """One parsed progress message about a target.

    Attributes:
        target: the target's label, ``runtime/precision``.
        text: the step's text (``building the openvino artifact``, ``start, 4 steps``, ``done, verified``).
        steps: on a target's first message, how many step messages follow; else None.
        status: on a target's last message, its status (verified, mismatch, failed, skipped); else None.
    """

    target: str
    text: str
    steps: int | None = None
    status: str | None = None


def start_message(target: str, steps: int) -> str:
    return f"{target}: start, {steps} step{'s' if steps != 1 else ''}"


def done_message(target: str, status: str) -> str:
    return f"{target}: done, {status}"


def step_message(target: str, text: str) -> str:
    return f"{target}: {text}"


def parse_message(message: str) -> TargetEvent | None:
    """The target event in ``message``; None for a message about no target."""
    found = _LABEL.match(message)
    if found is None:
        return None
    target, text = found.groups()
    start, done = _START.match(text), _DONE.match(text)
    return TargetEvent(
        target,
        text,
        steps=int(start.group(1)) if start else None,
        status=done.group(1) if done else None,
    )


def target_steps(precision: Precision, budget: float, throughput_batches: int) -> int:
    """How many step messages ``build_target`` sends for a target that verifies: building and verifying (one
    "quantizing" step for INT8, whose quantizer verifies), the settings search when ``budget`` > 0, one per
    throughput batch. A target that fails stops early; its ``done`` message ends it either way."""
    build = 1 if precision is Precision.INT8 else 2
    return build + (1 if budget > 0 else 0) + throughput_batches
