"""Helpers shared by the CLI verbs: consoles, JSON output, tables, signals (the options are in ``options``)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modelport.errors import InvalidInputError

if TYPE_CHECKING:
    import numpy as np

    from modelport.inputs import TensorSpec
    from modelport.verify.compare import Comparison


def console() -> Console:
    """stdout console; when piped, wide enough for the tables instead of rich's 80 columns."""
    probe = Console()
    return Console(highlight=False, soft_wrap=False, width=None if probe.is_terminal else 160)


#: signals that end a run the way Ctrl-C does (``kill``, ``timeout``, a closed terminal): exit code 128 + signal
TERMINATING_SIGNALS = ("SIGTERM", "SIGHUP")


class Terminated(SystemExit):
    """Raised in the main thread when the process receives SIGTERM or SIGHUP; its code is ``128 + signal``.

    A ``SystemExit``, so no ``except Exception`` swallows it and every ``finally`` and ``with`` block on the way out
    runs: temporary files are deleted, child processes stopped, and no destination is left half written.
    """


@contextlib.contextmanager
def exit_cleanly_on_signals() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` (one line on stderr, then a normal unwinding exit).

    Python's default for SIGTERM kills the process at once: ``finally`` blocks never run, and a temporary file being
    renamed into place stays behind. ``main`` runs a verb inside this. Only in the main thread (where Python delivers
    signals), only over the default action (a handler someone installed, or ``nohup``'s ignored SIGHUP, is kept), and
    the previous handlers come back on the way out.
    """

    def _terminate(signum: int, _frame: object) -> None:
        sys.stderr.write(f"modelport: terminated ({signal.Signals(signum).name})\n")
        sys.stderr.flush()
        raise Terminated(128 + signum)

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for name in TERMINATING_SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
                previous[sig] = signal.signal(sig, _terminate)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def print_json(text: str) -> None:
    """Plain JSON on stdout (no rich markup or wrapping)."""
    print(text)


def comparison_table(comparisons: Sequence[Comparison], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("candidate", "output", "max abs", "max rel", "mean abs", "cosine", "mismatch", "result"):
        table.add_column(col, justify="left" if col in ("candidate", "output", "result") else "right")
    for c in comparisons:
        for o in c.outputs:
            table.add_row(
                escape(c.candidate),
                escape(o.name),
                f"{o.max_abs:.3g}",
                f"{o.max_rel:.3g}",
                f"{o.mean_abs:.3g}",
                f"{o.cosine:.6f}",
                f"{o.mismatch_fraction:.2%}",
                "[green]pass[/]" if o.passed else f"[red]FAIL[/] {escape(o.note)}".rstrip(),
            )
    return table


def single_input(specs: Sequence[TensorSpec]) -> TensorSpec:
    """The only input of an image model; image feeds need exactly one."""
    if len(specs) != 1:
        names = ", ".join(s.name for s in specs)
        raise InvalidInputError(f"--image needs a single-input model; this one has {len(specs)} ({names})")
    return specs[0]


def onnx_feeds(feeds: Path, model: Path) -> dict[str, np.ndarray]:
    """``--feeds`` for an ONNX model (optimize, rewrite): named and checked against its inputs in ONNX Runtime."""
    from modelport.backends import open_runner
    from modelport.backends.runner import RunnerOptions
    from modelport.inputs import load_feeds

    with open_runner("onnxruntime", model, RunnerOptions(graph_optimization=False)) as runner:
        return dict(load_feeds(feeds, runner.input_specs))
