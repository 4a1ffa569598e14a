"""Typed exceptions.

Every error modelport raises on purpose derives from :class:`ModelportError`. The CLI turns each into one line
``modelport: error: <message>`` (plus the hint) and exits with :attr:`ModelportError.exit_code`; anything else
is a bug and shows a traceback.
"""

from __future__ import annotations

from pathlib import Path


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
