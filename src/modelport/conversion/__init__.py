"""Conversion between formats, every artifact verified against its source.

:func:`convert` produces one target and returns its :class:`ConversionReport` (verified against the source);
:func:`convert_chain` produces several targets through optional ``via`` formats and returns a
:class:`~modelport.conversion.chain.ChainReport` with every hop verified against the previous artifact and the
source. Both plan the route over the registered converters (:mod:`modelport.conversion.chain`).

Two option types, one per concern. :class:`ConvertOptions` says what an *artifact* looks like (precision, base
name, tensor names, input shapes, opset …): it is all a converter receives, so a converter cannot depend on how
the chain verifies or routes. :class:`ChainOptions` holds a ``ConvertOptions`` and adds what the *verb* does with
the artifacts (``via`` route, verification, its seed, tolerance and threads, the optimizer). Both verbs take a
``ChainOptions``; one flat type would hand every converter fields it must ignore, and every new chain-level
setting would change the converter protocol.

    >>> from modelport.conversion import ChainOptions, ConvertOptions, convert
    >>> options = ChainOptions(ConvertOptions(precision=Precision.FP16), threads=2)
    >>> report = convert("model.onnx", "openvino", "out", options=options)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeAlias

import numpy as np

from modelport.backends import backend_for_format, get_backend
from modelport.backends.base import LoaderOptions
from modelport.backends.runner import RunnerOptions
from modelport.conversion.base import ConversionReport, ConvertOptions, get_converter, register_converter
from modelport.conversion.chain import ChainOptions, ChainReport, HopReport, SourceSpec, parse_formats, run_chain
from modelport.errors import InvalidInputError
from modelport.formats import Format, Precision, sniff_format
from modelport.verify.comparator import Comparison, Subject, check, run
from modelport.verify.tolerance import Tolerance

__all__ = [
    "ChainOptions",
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

#: receives one line per step (for a progress display)
Progress: TypeAlias = Callable[[str], None]


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
    source_backend: str | Format = "onnxruntime",
    loader: LoaderOptions | None = None,
    artifact_options: RunnerOptions | None = None,
) -> Comparison:
    """Run source (on ``source_backend``: ONNX Runtime, or a format's own runtime for other sources, opened with
    ``loader``) and artifact (its native runtime at ``precision``, or with ``artifact_options`` — engine settings
    included) on ``feeds``; compare.

    The comparator (:mod:`modelport.verify.comparator`) renames/transposes the feeds to the artifact's inputs and
    pairs its outputs with the source's by name, order and layout (a TFLite artifact from onnx2tf is NHWC). The
    default tolerance is ``precision``'s, raised to the precision of the source and artifact files (an int8 source
    is judged as int8); an explicit ``tolerance`` is used as given.
    """
    tol = tolerance or Tolerance.for_precision(precision)
    backend = runtime_for_format(source_backend) if isinstance(source_backend, Format) else source_backend
    subject = Subject(
        source, backend, RunnerOptions(threads=threads), loader or LoaderOptions(), label=f"{source.name}@{backend}"
    )
    ref = run(subject, feeds)
    options = artifact_options or RunnerOptions(threads=threads, precision=precision)
    cand = run(Subject(artifact, artifact_format, options), feeds)
    return check(ref, cand, tol)


def convert_chain(
    model: str | Path,
    to: str | Format | Sequence[str | Format],
    out_dir: str | Path,
    *,
    options: ChainOptions | None = None,
    feeds: Mapping[str, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> ChainReport:
    """Convert ``model`` to every format in ``to`` (through ``options.via``), verifying each hop; see :mod:`.chain`.

    Args:
        model: model file, SavedModel directory, or ``package.module:factory`` for a PyTorch module.
        to: target format(s): ``"onnx,openvino,tflite"`` or a list.
        out_dir: where the artifacts go (``<name>.onnx``, ``<name>.xml``/``.bin``, ``<name>.tflite``,
            ``<name>_saved_model/``, ``<name>.engine``); nothing is written anywhere else.
        options: the artifacts' precision, name, tensors, shapes and opset (``options.convert``), and the route,
            verification, seed, tolerance, threads and optimizer of the chain; see :class:`ChainOptions`.
        feeds: inputs for verification (default: seeded random feeds for the source's inputs).
        progress: called with a line per step (e.g. the CLI's status line).

    Raises:
        ConversionError: no route, or an engine failed (names the op and node when the engine does).
        VerificationError: a hop differs beyond tolerance (everything written is removed).
        InvalidInputError: unknown tensor names, shapes missing where a route needs them.
    """
    opts = options or ChainOptions()
    spec = SourceSpec(Path(model), source_format(model), opts.convert.loader)
    targets = parse_formats([to] if isinstance(to, Format) else to)
    return run_chain(spec, targets, Path(out_dir), opts, feeds=feeds, progress=progress)


def convert(
    model: str | Path,
    to: str | Format,
    out_dir: str | Path,
    *,
    options: ChainOptions | None = None,
    feeds: Mapping[str, np.ndarray] | None = None,
    progress: Progress | None = None,
) -> ConversionReport:
    """Convert ``model`` to format ``to`` in ``out_dir`` and verify the artifact against the source.

    Takes the arguments of :func:`convert_chain` with one target. Returns the last hop's report, its
    ``verification`` the comparison with the source (a multi-hop route verifies every hop on the way; use
    :func:`convert_chain` for all of them).

    Raises:
        ConversionError: no route or the engine failed. VerificationError: outputs differ beyond tolerance
        (the artifacts are removed).
    """
    chain = convert_chain(model, [parse_format(to)], out_dir, options=options, feeds=feeds, progress=progress)
    last = chain.hops[-1]
    return dataclasses.replace(last.conversion, verification=last.against_source)
