"""Converter protocol, registry and report.

A converter turns one model file into another format, delegating to the vendor toolchain, and returns a
:class:`ConversionReport`. Converters are registered by ``(source format, target format)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from modelport.errors import ConversionError
from modelport.formats import Format
from modelport.reports.serialize import JsonReport
from modelport.runtimes.base import Precision
from modelport.verify.compare import Comparison


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
    """Options shared by converters.

    Attributes:
        precision: weights precision of the artifact (fp32, fp16).
        name: base file name of the artifact (without suffix).
    """

    precision: Precision = Precision.FP32
    name: str = "model"


@dataclasses.dataclass(frozen=True)
class ConversionReport(JsonReport):
    """What a conversion produced and how it was verified."""

    source: str
    source_format: Format
    target_format: Format
    precision: Precision
    artifact: str
    files: tuple[str, ...]
    size_bytes: int
    seconds: float
    engine: str
    verification: Comparison | None = None


class Converter(Protocol):
    """Turns ``src`` into ``out_dir/<name>.<ext>``; writes atomically."""

    def __call__(self, src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport: ...


_CONVERTERS: dict[tuple[Format, Format], Converter] = {}


def register_converter(src: Format, dst: Format) -> Callable[[Converter], Converter]:
    """Decorator registering a converter for a route."""

    def deco(fn: Converter) -> Converter:
        _CONVERTERS[(src, dst)] = fn
        return fn

    return deco


def get_converter(src: Format, dst: Format) -> Converter:
    """The converter for a route; ConversionError lists the routes that exist."""
    _load_builtin_converters()
    try:
        return _CONVERTERS[(src, dst)]
    except KeyError:
        routes = ", ".join(f"{a.value}→{b.value}" for a, b in sorted(_CONVERTERS, key=str))
        raise ConversionError(
            f"no converter from {src.value} to {dst.value}", hint=f"available routes: {routes}"
        ) from None


def _load_builtin_converters() -> None:
    import importlib

    for module in ("modelport.convert.openvino", "modelport.convert.onnx_precision"):
        importlib.import_module(module)


def files_size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.exists())
