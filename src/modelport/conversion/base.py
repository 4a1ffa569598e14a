"""Converter protocol, registry and report.

A converter turns one model file into another format, delegating to the vendor toolchain, and returns a
:class:`ConversionReport`. Converters are registered by ``(source format, target format)``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from modelport.backends.base import LoaderOptions
from modelport.errors import ConversionError
from modelport.formats import Format, Precision
from modelport.reports.serialize import JsonReport
from modelport.verify.compare import Comparison


@dataclasses.dataclass(frozen=True)
class ConvertOptions:
    """Options shared by converters.

    Attributes:
        precision: weights precision of the artifact (fp32, fp16).
        name: base file name of the artifact (without suffix); empty: the source's (its file stem, or the
            factory's name for ``package.module:factory``), which ``convert`` resolves before any converter runs.
        inputs: input tensor names where the source needs them (TF GraphDef: ``image_tensor:0``); naming
            inner tensors cuts the graph there.
        outputs: output tensor names (TF GraphDef), likewise.
        input_shapes: ``(input name, shape)`` pairs for routes that need fixed shapes (TFLite, PyTorch export).
        inputs_as_nchw: inputs that tf2onnx transposes from NHWC to NCHW (ONNX's layout).
        dynamic_axes: ``(input name, axes)`` pairs exported as dynamic by the PyTorch → ONNX route.
        trust_remote_code: allow unpickling whole PyTorch modules (runs code from the file).
        opset: ONNX opset of ONNX artifacts.
        size_hints: ``(input name, shape)`` pairs the chain chose for dims the user left free (sizes the source
            runs at): a converter that can keep dims dynamic tries that first, and fixes them at these sizes
            when it must (ONNX → TFLite's settings ladder). Unlike ``input_shapes`` they are not a request.
        check_attempts: a converter with a settings ladder checks each attempt against the source before taking
            it (ONNX → TFLite); False takes the first attempt that converts (the chain's ``--no-verify``).
    """

    precision: Precision = Precision.FP32
    name: str = ""
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    inputs_as_nchw: tuple[str, ...] = ()
    dynamic_axes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    trust_remote_code: bool = False
    opset: int = 17
    size_hints: tuple[tuple[str, tuple[int, ...]], ...] = ()
    check_attempts: bool = True

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``input_shapes`` as a dict."""
        return dict(self.input_shapes)

    @property
    def loader(self) -> LoaderOptions:
        """How the source is opened: its GraphDef tensor names, the PyTorch trust flag and the input shapes."""
        return LoaderOptions(self.inputs, self.outputs, None, self.trust_remote_code, self.input_shapes)


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
    notes: tuple[str, ...] = ()

    @classmethod
    def for_file(
        cls,
        src: Path,
        source_format: Format,
        target_format: Format,
        precision: Precision,
        artifact: Path,
        started: float,
        engine: str,
        notes: Sequence[str] = (),
    ) -> ConversionReport:
        """The report of a converter that wrote the one file ``artifact``, timed from ``started``
        (a ``time.perf_counter()`` reading)."""
        return cls(
            source=str(src),
            source_format=source_format,
            target_format=target_format,
            precision=precision,
            artifact=str(artifact),
            files=(str(artifact),),
            size_bytes=artifact.stat().st_size,
            seconds=time.perf_counter() - started,
            engine=engine,
            notes=tuple(notes),
        )


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

    for module in (
        "modelport.conversion.openvino",
        "modelport.conversion.tflite_openvino",
        "modelport.conversion.onnx_precision",
        "modelport.conversion.torch_onnx",
        "modelport.conversion.tf",
        "modelport.conversion.tf_onnx",
        "modelport.conversion.tflite",
        "modelport.conversion.onnx_tflite",
        "modelport.conversion.torch_tflite",
        "modelport.conversion.tensorrt",
    ):
        importlib.import_module(module)


def registered_routes() -> list[tuple[Format, Format]]:
    """Every (source, target) pair with a registered converter."""
    _load_builtin_converters()
    return sorted(_CONVERTERS, key=lambda r: (r[0].value, r[1].value))


def files_size(paths: list[Path]) -> int:
    """Bytes of the files (directories counted with everything in them)."""
    total = 0
    for p in paths:
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        elif p.exists():
            total += p.stat().st_size
    return total
