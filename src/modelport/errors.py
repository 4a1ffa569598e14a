"""Typed exceptions.

Every error modelport raises on purpose derives from :class:`ModelportError`. The CLI turns each into one line
``modelport: error: <message>`` (plus the hint) and exits with :attr:`ModelportError.exit_code`; anything else
is a bug and shows a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ModelportError(Exception):
    """Base class of modelport's errors.

    Args:
        message: what went wrong, in one sentence.
        hint: what the user can do about it.
        path: the file involved, if any.
    """

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None, path: str | Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = Path(path) if path is not None else None

    def __str__(self) -> str:
        text = self.message
        if self.path is not None and str(self.path) not in text:
            text = f"{self.path}: {text}"
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class ModelLoadError(ModelportError):
    """A model file is missing, unreadable, truncated or not a model."""


class InvalidInputError(ModelportError):
    """A user-supplied argument or feed is wrong (shape, dtype, unknown name, bad syntax)."""


class ConversionError(ModelportError):
    """A converter could not produce the target format."""


class PassError(ModelportError):
    """A graph pass failed or does not exist."""


class RuntimeUnavailable(ModelportError):
    """A runtime or engine is not installed or has no usable device."""


class InferenceError(ModelportError):
    """A runtime failed while running a model."""


class VerificationError(ModelportError):
    """A produced model's outputs differ from its source beyond tolerance."""

    exit_code = 1


class AppError(ModelportError):
    """An application (transcribe, classify, …) could not process its input."""


def first_line(exc: BaseException | str, limit: int = 400) -> str:
    """The first non-empty line of an exception's message (its type name when the message is empty).

    Engines raise multi-page messages (a C++ stack, a converter's whole log); one line of it is what a user
    can read in an error and what a report can hold. Errors with a ``strerror`` (OS, FFmpeg) give that.
    """
    if isinstance(exc, str):
        text = exc.strip()
    else:  # OS and FFmpeg errors carry the readable part in ``strerror``
        strerror = getattr(exc, "strerror", None)
        text = (strerror if isinstance(strerror, str) and strerror else str(exc)).strip()
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if not line:
        line = "error" if isinstance(exc, str) else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def optional_import(module: str, *, extra: str, what: str | None = None, hint: str | None = None) -> Any:
    """Import an optional engine, or raise :class:`RuntimeUnavailable` naming the extra that installs it.

    Args:
        module: dotted module name (``"openvino"``, ``"ai_edge_litert.interpreter"``).
        extra: the modelport extra that brings it (``"openvino"`` → ``pip install 'modelport[openvino]'``).
        what: the feature that needs it, for the message (default: the module's name).
        hint: what to do instead of the default ``pip install 'modelport[extra]'``.

    Returns:
        The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        missing = isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] == top
        message = f"{what or module} is not installed" if missing else f"{what or module} cannot be imported"
        raise RuntimeUnavailable(
            message if missing else f"{message}: {first_line(exc)}",
            hint=hint or f"pip install 'modelport[{extra}]'",
        ) from exc
