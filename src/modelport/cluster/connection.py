"""Connecting to a running Ray cluster (never starting one), with clear errors."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

from modelport.errors import InvalidInputError, RuntimeUnavailable

log = logging.getLogger(__name__)

#: the namespace modelport's tasks run in (keeps them apart from the user's own Ray jobs)
NAMESPACE = "modelport"


def ray_module() -> Any:
    """The ``ray`` module, or one clear error naming the extra that installs it."""
    try:
        import ray
    except ImportError as exc:
        raise RuntimeUnavailable(
            "--cluster needs Ray", hint="pip install 'modelport[cluster]' on this machine and on every node"
        ) from exc
    return ray


@contextlib.contextmanager
def connected(address: str) -> Iterator[Any]:
    """Connect to the cluster at ``address`` (``HOST:PORT`` of its head, or ``auto``) for the block.

    A connection already open to the same cluster (a test's, a notebook's) is reused and left open.

    Raises:
        InvalidInputError: nothing answers at ``address``.
        RuntimeUnavailable: Ray is not installed.
    """
    ray = ray_module()
    if not address or address.isspace():
        raise InvalidInputError("--cluster needs the head node's address (HOST:PORT, as `ray start --head` printed)")
    if ray.is_initialized():
        yield ray
        return
    if address != "auto":
        _reachable(address)
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInputError(
            f"cannot connect to a Ray cluster at {address}: {why}",
            hint="start it with `ray start --head` and pass the address it printed (HOST:6379)",
        ) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail at once when nothing listens at ``HOST:PORT`` (Ray itself would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInputError(
            f"--cluster {address!r} is not HOST:PORT", hint="pass the address `ray start --head` printed (HOST:6379)"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise InvalidInputError(
            f"cannot connect to a Ray cluster at {address}: {exc.strerror or exc}",
            hint="start it with `ray start --head` and pass the address it printed (HOST:6379)",
        ) from exc


def task_error(exc: BaseException) -> str:
    """A failed Ray task's error as one line: the cause's type and the last line of its message."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1][:300] if text else ''}"
