"""Helpers shared by the CLI verbs: consoles, list options, JSON output, tables."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from modelport.inputs import parse_input_shapes
from modelport.runtimes.base import Precision
from modelport.verify.compare import Comparison


def console() -> Console:
    """stdout console; when piped, wide enough for the tables instead of rich's 80 columns."""
    probe = Console()
    return Console(highlight=False, soft_wrap=False, width=None if probe.is_terminal else 160)


def split_list(values: Sequence[str] | str | None) -> list[str]:
    """``["a,b", "c"]`` → ``["a", "b", "c"]``."""
    if values is None:
        return []
    items = [values] if isinstance(values, str) else list(values)
    return [p.strip() for v in items for p in v.split(",") if p.strip()]


def shapes_option(values: Sequence[str] | None) -> dict[str, tuple[int, ...]]:
    return parse_input_shapes(values or [])


def precisions_option(values: Sequence[str] | str | None) -> list[Precision]:
    return [Precision.parse(p) for p in split_list(values)]


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
                c.candidate,
                o.name,
                f"{o.max_abs:.3g}",
                f"{o.max_rel:.3g}",
                f"{o.mean_abs:.3g}",
                f"{o.cosine:.6f}",
                f"{o.mismatch_fraction:.2%}",
                "[green]pass[/]" if o.passed else f"[red]FAIL[/] {o.note}".rstrip(),
            )
    return table
