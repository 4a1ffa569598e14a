"""Conversion between formats, every artifact verified against its source."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from modelport.convert.base import ConversionReport, ConvertOptions, get_converter, register_converter
from modelport.errors import InvalidInputError
from modelport.formats import Format, sniff_format
from modelport.inputs import default_batch, random_feeds
from modelport.runtimes import RunnerOptions, get_runner
from modelport.runtimes.base import Precision
from modelport.verify.compare import Comparison, Tolerance, compare_outputs

__all__ = [
    "ConversionReport",
    "ConvertOptions",
    "convert",
    "get_converter",
    "register_converter",
    "runtime_for_format",
    "verify_against_source",
]

_RUNTIME_FOR_FORMAT = {Format.ONNX: "onnxruntime", Format.OPENVINO_IR: "openvino"}


def runtime_for_format(fmt: Format) -> str:
    """The runtime that runs a format natively."""
    try:
        return _RUNTIME_FOR_FORMAT[fmt]
    except KeyError:
        raise InvalidInputError(f"no runner for {fmt.value} models yet") from None


def parse_format(text: str | Format) -> Format:
    if isinstance(text, Format):
        return text
    aliases = {"ov": Format.OPENVINO_IR, "ir": Format.OPENVINO_IR, "openvino_ir": Format.OPENVINO_IR}
    key = text.strip().lower()
    if key in aliases:
        return aliases[key]
    try:
        return Format(key)
    except ValueError:
        valid = ", ".join(f.value for f in Format)
        raise InvalidInputError(f"unknown format {text!r}", hint=f"valid: {valid}") from None


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
    """Run source (ONNX Runtime) and artifact (its native runtime at ``precision``) on ``feeds``; compare."""
    tol = tolerance or Tolerance.for_precision(precision)
    with get_runner("onnxruntime", source, RunnerOptions(threads=threads)) as ref:
        ref_out = ref.infer(feeds)
    runtime = runtime_for_format(artifact_format)
    with get_runner(runtime, artifact, RunnerOptions(threads=threads, precision=precision)) as cand:
        out = cand.infer(feeds)
        info = cand.info()
    return compare_outputs(
        ref_out,
        out,
        tol,
        reference_label=f"{source.name}@onnxruntime",
        candidate_label=f"{artifact.name}@{runtime}/{info.executed_precision}",
        runner=info,
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
) -> ConversionReport:
    """Convert ``src`` to format ``to`` in ``out_dir`` and verify the artifact against the source.

    Raises:
        ConversionError: no route or the engine failed. VerificationError: outputs differ beyond tolerance
        (the artifact is removed).
    """
    src_path = Path(src)
    src_fmt = sniff_format(src_path)
    dst_fmt = parse_format(to)
    prec = Precision.parse(precision) if isinstance(precision, str) else precision
    converter = get_converter(src_fmt, dst_fmt)
    options = ConvertOptions(precision=prec, name=name or src_path.stem)
    report = converter(src_path, Path(out_dir), options)
    if not verify:
        return report
    if feeds is None:
        with get_runner("onnxruntime", src_path) as ref:
            batch = None if input_shapes else default_batch(ref.input_specs)
            feeds = random_feeds(ref.input_specs, input_shapes, seed=seed, batch=batch)
    # fp16 weights run in f32 on CPU but carry fp16 rounding: verify with the fp16 tolerance.
    exec_precision = Precision.FP32 if prec is Precision.FP16 and dst_fmt is Format.OPENVINO_IR else prec
    comparison = verify_against_source(
        src_path,
        Path(report.artifact),
        dst_fmt,
        feeds,
        precision=exec_precision,
        tolerance=tolerance or Tolerance.for_precision(prec),
    )
    try:
        comparison.require()
    except Exception:
        for f in report.files:
            Path(f).unlink(missing_ok=True)
        raise
    return dataclasses.replace(report, verification=comparison)
