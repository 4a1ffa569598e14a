"""Conversion between formats, every artifact verified against its source.

:func:`convert` produces one target and returns its :class:`ConversionReport` (verified against the source);
:func:`convert_chain` produces several targets through optional ``via`` formats and returns a
:class:`~modelport.conversion.chain.ChainReport` with every hop verified against the previous artifact and the
source. Both plan the route over the registered converters (:mod:`modelport.conversion.chain`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from modelport.backends import LoaderOptions, backend_for_format, get_backend
from modelport.backends.runner import RunnerOptions
from modelport.conversion.base import ConversionReport, ConvertOptions, get_converter, register_converter
from modelport.conversion.chain import ChainReport, HopReport, SourceSpec, parse_formats, run_chain
from modelport.errors import InvalidInputError
from modelport.formats import Format, Precision, sniff_format
from modelport.verify.comparator import Comparison, Subject, check, run
from modelport.verify.tolerance import Tolerance

__all__ = [
    "ChainReport",
    "ConversionReport",
    "ConvertOptions",
    "HopReport",
    "convert",
    "convert_chain",
    "get_converter",
    "parse_format",
    "register_converter",
    "runtime_for_format",
    "source_format",
    "verify_against_source",
]


def runtime_for_format(fmt: Format) -> str:
    """The runtime that runs a format natively (from the backend registry)."""
    return backend_for_format(fmt).name


def parse_format(text: str | Format) -> Format:
    """A format from its name, a format alias (``ir``, ``saved-model``, ``pb`` …) or a runtime's name (``ov``,
    ``litert``, ``trt`` …: the format that runtime's artifacts have)."""
    if isinstance(text, Format):
        return text
    key = text.strip().lower()
    try:
        return Format.parse(key)
    except InvalidInputError:
        pass
    try:
        return get_backend(key).artifact_format
    except InvalidInputError:
        valid = ", ".join(f.value for f in Format)
        raise InvalidInputError(f"unknown format {text!r}", hint=f"valid: {valid}") from None


def source_format(src: str | Path) -> Format:
    """The format of a source: a file's sniffed format, or TORCH for a ``package.module:factory`` path."""
    from modelport.backends.torch import is_module_spec

    if is_module_spec(src):
        return Format.TORCH
    return sniff_format(src)


def verify_against_source(
    source: Path,
    artifact: Path,
    artifact_format: Format,
    feeds: Mapping[str, np.ndarray],
    *,
    precision: Precision = Precision.FP32,
    tolerance: Tolerance | None = None,
    threads: int | None = None,
) -> Comparison:
    """Run source (ONNX Runtime) and artifact (its native runtime at ``precision``) on ``feeds``; compare.

    The comparator (:mod:`modelport.verify.comparator`) renames/transposes the feeds to the artifact's inputs and
    pairs its outputs with the source's by name, order and layout (a TFLite artifact from onnx2tf is NHWC). The
    default tolerance is ``precision``'s, raised to the precision of the source and artifact files (an int8 source
    is judged as int8); an explicit ``tolerance`` is used as given.
    """
    tol = tolerance or Tolerance.for_precision(precision)
    ref = run(Subject(source, "onnxruntime", RunnerOptions(threads=threads), label=f"{source.name}@onnxruntime"), feeds)
    cand = run(Subject(artifact, artifact_format, RunnerOptions(threads=threads, precision=precision)), feeds)
    return check(ref, cand, tol)


def convert_chain(
    src: str | Path,
    to: str | Format | Sequence[str | Format],
    out_dir: str | Path,
    *,
    via: str | Sequence[str | Format] = (),
    precision: Precision | str = Precision.FP32,
    name: str | None = None,
    verify: bool = True,
    feeds: Mapping[str, np.ndarray] | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    inputs_as_nchw: Sequence[str] = (),
    dynamic_axes: Mapping[str, Sequence[int]] | None = None,
    trust_remote_code: bool = False,
    opset: int = 17,
    seed: int = 0,
    tolerance: Tolerance | None = None,
    threads: int | None = None,
    progress: object = None,
    optimize: bool = False,
) -> ChainReport:
    """Convert ``src`` to every format in ``to`` (through ``via``), verifying each hop; see :mod:`.chain`.

    Args:
        src: model file, SavedModel directory, or ``package.module:factory`` for a PyTorch module.
        to: target format(s): ``"onnx,openvino,tflite"`` or a list.
        out_dir: where the artifacts go (``<name>.onnx``, ``<name>.xml``/``.bin``, ``<name>.tflite``,
            ``<name>_saved_model/``, ``<name>.engine``).
        via: formats to pass through first, in order (``"saved_model,tflite"``).
        precision: weights precision of the targets (intermediate hops are fp32).
        name: artifacts' base name (default: the source's stem).
        verify: run and compare every hop (False: convert only).
        feeds: inputs for verification (default: seeded random feeds for the source's inputs).
        input_shapes: concrete shapes for the source's dynamic dims; routes that need fixed shapes (TFLite,
            PyTorch export) use them.
        inputs, outputs: TF GraphDef tensor names (naming inner tensors cuts the graph).
        inputs_as_nchw: inputs tf2onnx transposes to NCHW / onnx2tf keeps NCHW.
        dynamic_axes: PyTorch → ONNX: input name → axes exported as dynamic.
        trust_remote_code: allow unpickling whole PyTorch modules.
        opset: ONNX opset.
        seed: seed of the random feeds.
        tolerance: override the precision's default tolerance for every comparison.
        threads: runtime threads for verification.
        progress: callable taking a message (e.g. the CLI's status line).
        optimize: run modelport's optimizer on every ONNX artifact converted from another format.

    Raises:
        ConversionError: no route, or an engine failed (names the op and node when the engine does).
        VerificationError: a hop differs beyond tolerance (everything written is removed).
        InvalidInputError: unknown tensor names, shapes missing where a route needs them.
    """
    src_path = Path(src) if not isinstance(src, Path) else src
    fmt = source_format(src)
    targets = parse_formats([to] if isinstance(to, Format) else to)
    via_formats = parse_formats(via) if via else []
    prec = Precision.parse(precision) if isinstance(precision, str) else precision
    shapes = tuple((k, tuple(int(d) for d in v)) for k, v in (input_shapes or {}).items())
    default_name = src_path.stem if fmt is not Format.TORCH or src_path.exists() else str(src).split(":")[-1]
    options = ConvertOptions(
        precision=prec,
        name=name or default_name,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        input_shapes=shapes,
        inputs_as_nchw=tuple(inputs_as_nchw),
        dynamic_axes=tuple((k, tuple(v)) for k, v in (dynamic_axes or {}).items()),
        trust_remote_code=trust_remote_code,
        opset=opset,
    )
    loader = LoaderOptions(tuple(inputs), tuple(outputs), None, trust_remote_code, shapes)
    spec = SourceSpec(src_path, fmt, loader)
    return run_chain(
        spec,
        targets,
        Path(out_dir),
        options,
        via=via_formats,
        verify=verify,
        feeds=feeds,
        seed=seed,
        tolerance=tolerance,
        threads=threads,
        progress=progress if callable(progress) else None,
        optimize=optimize,
    )


def convert(
    src: str | Path,
    to: str | Format,
    out_dir: str | Path,
    *,
    precision: Precision | str = Precision.FP32,
    name: str | None = None,
    verify: bool = True,
    feeds: Mapping[str, np.ndarray] | None = None,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
    tolerance: Tolerance | None = None,
    via: str | Sequence[str | Format] = (),
    inputs: Sequence[str] = (),
    outputs: Sequence[str] = (),
    inputs_as_nchw: Sequence[str] = (),
    dynamic_axes: Mapping[str, Sequence[int]] | None = None,
    trust_remote_code: bool = False,
    opset: int = 17,
) -> ConversionReport:
    """Convert ``src`` to format ``to`` in ``out_dir`` and verify the artifact against the source.

    Returns the last hop's report, its ``verification`` the comparison with the source (a multi-hop route
    verifies every hop on the way; use :func:`convert_chain` for all of them).

    Raises:
        ConversionError: no route or the engine failed. VerificationError: outputs differ beyond tolerance
        (the artifacts are removed).
    """
    chain = convert_chain(
        src,
        [parse_format(to)],
        out_dir,
        via=via,
        precision=precision,
        name=name,
        verify=verify,
        feeds=feeds,
        input_shapes=input_shapes,
        inputs=inputs,
        outputs=outputs,
        inputs_as_nchw=inputs_as_nchw,
        dynamic_axes=dynamic_axes,
        trust_remote_code=trust_remote_code,
        opset=opset,
        seed=seed,
        tolerance=tolerance,
    )
    last = chain.hops[-1]
    return dataclasses.replace(last.conversion, verification=last.against_source)
