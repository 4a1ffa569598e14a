"""``modelport edit`` sub-commands (being written)."""

from __future__ import annotations

import typer


def register(edit_app: typer.Typer) -> None:
    """Add the sub-commands to ``modelport edit``."""
