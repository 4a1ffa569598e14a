"""Artifacts built once, measured on many machines: what ``port --cluster`` builds on the driver.

A float target's artifact — ``OUT/model.onnx`` converted to OpenVINO IR, TFLite or fp16 ONNX — is the same file
whichever machine converts it: conversion is deterministic and does not look at the CPU. What differs between
devices is how fast the artifact runs, which engine settings suit it and whether the device's kernels still agree
with the source. So :func:`build_once` prepares the source and converts every *portable* target once, and each
device's :func:`~modelport.porting.pipeline.port` takes that build (``prebuilt=``) and only verifies, tunes and
times the targets on its own runtime. A device then needs the target runtimes and the source's runtime (every
target is verified against the source), not the converters (TensorFlow and onnx2tf for TFLite, which a Raspberry Pi
rarely has).

Built on the device all the same:

- INT8: calibration is cheap next to its verdict, and the verdict (accuracy drop, the recovery ladder, "slower
  than fp32") is measured on the device's own integer kernels (with or without VNNI, they saturate differently);
- a runtime whose artifact is compiled for the machine (TensorRT engines);
- a target the driver could not convert (its converter is not installed there): the error is recorded in
  ``prebuilt.json`` and the device tries itself.

``OUT/prebuilt.json`` records the source's digest and the options that shape the build; a build made for another
source or other options is refused rather than measured.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Iterable
from pathlib import Path

from modelport.backends import get_backend
from modelport.conversion import source_format
from modelport.errors import InvalidInputError, ModelportError
from modelport.formats import Format, Precision
from modelport.model_io import write_text
from modelport.passes.api import input_files
from modelport.porting.results import BuiltArtifact, OptimizationSummary, PortOptions
from modelport.porting.source import PreparedSource, prepare_source, source_convert_options
from modelport.porting.target import TargetJob, build_artifact, target_dir
from modelport.reports.serialize import JsonReport

PREBUILT_NAME = "prebuilt.json"
#: artifact formats that are plain files, the same on every machine.
PORTABLE_FORMATS = frozenset({Format.ONNX, Format.OPENVINO_IR, Format.TFLITE})


@dataclasses.dataclass(frozen=True)
class Prebuilt(JsonReport):
    """A build made once (``OUT/prebuilt.json``): the prepared source and the portable targets' artifacts.

    Attributes:
        source: the source model's name.
        digest: sha256 of the source's files.
        key: the options that shape the build (see :func:`build_key`).
        route: the hops from the source to ``model.onnx``.
        optimization: what the optimizer did (None with ``optimize=False``).
        artifacts: the targets built.
        left: ``(label, why)`` of targets the building machine could not build (the device builds them).
        seconds: the build's wall time.
        machine: the building machine (host name, CPU) for the report.
    """

    source: str
    digest: str
    key: str
    route: tuple[str, ...]
    optimization: OptimizationSummary | None
    artifacts: tuple[BuiltArtifact, ...]
    left: tuple[tuple[str, str], ...]
    seconds: float
    machine: str = ""

    def artifact_for(self, runtime: str, precision: Precision) -> BuiltArtifact | None:
        for a in self.artifacts:
            if a.runtime == runtime and a.precision is precision:
                return a
        return None

    def check(self, source: Path, options: PortOptions, out_dir: Path) -> None:
        """Refuse a build of another source, with other options, or whose files are gone from ``out_dir``."""
        where = out_dir / PREBUILT_NAME
        if self.digest != source_digest(source):
            raise InvalidInputError(
                f"the build in {where} was made from another source than {source}", hint="build it again"
            )
        if self.key != build_key(options):
            raise InvalidInputError(
                f"the build in {where} was made with other options (optimize, shapes, batch, tensor names)",
                hint="build it again with the same options",
            )
        missing = [a.artifact for a in self.artifacts if not (out_dir / a.artifact).is_file()]
        if not (out_dir / "model.onnx").is_file():
            missing.insert(0, "model.onnx")
        if missing:
            raise InvalidInputError(f"the build in {where} lacks {', '.join(missing)}", hint="build it again")

    def prepared(self, out_dir: Path, options: PortOptions) -> PreparedSource:
        """The :class:`PreparedSource` ``port`` would have made in ``out_dir``, from this build."""
        loader = source_convert_options(options).loader
        return PreparedSource(out_dir / "model.onnx", self.route, None, self.optimization, loader)


def portable(runtime: str, precision: Precision) -> bool:
    """Whether the target's artifact is the same file on every machine (a float conversion to a file format)."""
    return precision is not Precision.INT8 and get_backend(runtime).artifact_format in PORTABLE_FORMATS


def source_digest(path: Path) -> str:
    """sha256 over the source's files, each by its path relative to the source's folder: a folder's every file; a
    model file with the files it reads (an ONNX model's external data, an OpenVINO IR's ``.bin``)."""
    digest = hashlib.sha256()
    root = path if path.is_dir() else path.parent
    files = sorted(path.rglob("*")) if path.is_dir() else input_files(path)
    for f in (f for f in files if f.is_file()):
        digest.update(f.relative_to(root).as_posix().encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def build_key(options: PortOptions) -> str:
    """The options a build depends on, as one string (the rest — timing, data, tolerance — are the device's)."""
    fields = {
        "optimize": options.optimize,
        "input_shapes": [[k, list(v)] for k, v in options.input_shapes],
        "batch": options.batch,
        "inputs": list(options.inputs),
        "outputs": list(options.outputs),
        "seed": options.seed,
    }
    return json.dumps(fields, sort_keys=True)


def build_once(
    model: str | Path, out_dir: str | Path, targets: Iterable[tuple[str, Precision]], *, options: PortOptions
) -> Prebuilt:
    """Prepare the source into ``out_dir`` (``model.onnx``, ``source/``) and build each portable target's artifact
    into ``out_dir/targets/…``, as ``port`` would; write ``prebuilt.json``. A target this machine cannot build is
    recorded in ``left``, not raised: the device builds it. Non-portable targets (INT8, compiled engines) are left
    out without a word (the device always builds them).

    Raises:
        ModelportError: the source itself cannot be prepared (every device would fail the same way).
    """
    t0 = time.perf_counter()
    src, out = Path(model), Path(out_dir)
    fmt = source_format(src)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare_source(src, fmt, out, options)
    built: list[BuiltArtifact] = []
    left: list[tuple[str, str]] = []
    seen: set[tuple[str, Precision]] = set()
    for runtime, precision in targets:
        if (runtime, precision) in seen or not portable(runtime, precision):
            continue
        seen.add((runtime, precision))
        label = f"{runtime}/{precision.value}"
        if not get_backend(runtime).supports(precision, "cpu"):
            continue  # the device reports it as skipped
        job = TargetJob(
            runtime, precision, prepared.onnx, target_dir(out, runtime, precision), src, fmt, prepared.loader,
            prepared.route, {}, None, None, options,
        )  # fmt: skip
        try:
            artifact, route, seconds, size = build_artifact(job)
        except ModelportError as exc:
            left.append((label, str(exc)))
            continue
        rel = artifact.relative_to(out).as_posix()
        built.append(BuiltArtifact(runtime, precision, rel, route, seconds, size))
    build = Prebuilt(
        source=src.name,
        digest=source_digest(src),
        key=build_key(options),
        route=prepared.route,
        optimization=prepared.optimization,
        artifacts=tuple(built),
        left=tuple(left),
        seconds=time.perf_counter() - t0,
        machine=_machine(),
    )
    write_text(out / PREBUILT_NAME, build.to_json() + "\n")
    return build


def read_prebuilt(out_dir: str | Path) -> Prebuilt:
    """``prebuilt.json`` of a build folder.

    Raises:
        InvalidInputError: there is none, or it cannot be read.
    """
    path = Path(out_dir) / PREBUILT_NAME
    try:
        return Prebuilt.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{path} not found: this folder holds no build", hint="run build_once first") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{path} is not a build record: {exc}", hint="build it again") from None


def _machine() -> str:
    import platform

    from modelport.reports.environment import cpu_description

    return f"{platform.node()} ({cpu_description()})"
