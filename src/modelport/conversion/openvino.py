"""ONNX → OpenVINO IR through ``openvino.convert_model`` and ``openvino.save_model``.

fp16 compresses the weights to half precision in the .bin (``compress_to_fp16``); the CPU plugin decompresses
them and executes in the inference precision hint, so an fp16 IR on CPU computes in f32 with rounded
weights (≈ 2⁻¹¹ relative error per weight).

When OpenVINO's ONNX frontend refuses the file as exported, the converter retries, in this order, each attempt
recorded in the report's notes (and every one listed in the error when all fail):

1. **a prepared private copy** (the user's file is never changed): nodes put in topological order, ``If``
   conditions reshaped to scalars (OpenVINO takes rank 0 or 1), ``If`` nodes with a constant condition replaced
   by the branch they take (see :mod:`modelport.passes.control_flow`); skipped when none of these applies;
2. **free dims fixed, batch kept dynamic**: a model whose branches yield values of different ranks depending on a
   size (silero VAD: ``If(Shape(x)[-1] == 1, Squeeze(x), x)``) has a dynamic rank inside OpenVINO, which its
   ``Conv`` and ``ReduceMean`` translators refuse. Given the sizes, OpenVINO resolves those conditions itself.
   The sizes are the first ones at which the source runs in ONNX Runtime
   (:func:`modelport.inputs.search_shapes`), or the user's ``input_shapes``; a dim at axis 0, or sharing a
   symbolic name with one, stays dynamic;
3. **every dim fixed** at those sizes (only when step 2 kept some dim dynamic).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx

from modelport.backends import open_runner
from modelport.backends.openvino import check_onnx_opsets, error_text, import_openvino, unconverted_ops
from modelport.conversion.base import ConversionReport, ConvertOptions, files_size, register_converter
from modelport.errors import ConversionError, InferenceError, ModelportError, first_line
from modelport.formats import Format, Precision
from modelport.inputs import ShapeSet, TensorSpec, random_feeds, search_shapes
from modelport.model_io import atomic_files, load_proto, op_use, save_model

log = logging.getLogger(__name__)

#: passes of the prepared copy, in order (registered in :mod:`modelport.passes.control_flow`)
PREPARATION = ("if-scalar-condition", "inline-constant-if")


@dataclasses.dataclass
class _Attempts:
    """What was tried so far: one ``(what, why it failed)`` pair per failed attempt."""

    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def text(self) -> str:
        return "; ".join(f"{what}: {why}" for what, why in self.failures)


@register_converter(Format.ONNX, Format.OPENVINO_IR)
def openvino_from_onnx(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Convert an ONNX file to OpenVINO IR (``<name>.xml`` + ``<name>.bin``) in ``out_dir``.

    Raises:
        ConversionError: every attempt failed (the message lists each one and OpenVINO's reason).
    """
    ov = import_openvino()
    check_ir_precision(options)
    t0 = time.perf_counter()
    proto = load_proto(src, check=False, load_external_data=False)  # a broken file: ModelLoadError, not frontend noise
    check_onnx_opsets(proto, src)  # an absurd opset would keep OpenVINO's frontend busy for minutes
    with tempfile.TemporaryDirectory(prefix="modelport-ov-") as tmp:
        model, notes = _convert(ov, src, Path(tmp), options)
    engine = f"openvino {ov.get_version()}"
    return write_ir(ov, model, src, Format.ONNX, out_dir, options, t0, engine, tuple(notes))


def check_ir_precision(options: ConvertOptions) -> None:
    """IR weights are fp32 or fp16 (bf16 is an execution precision), for every route to OpenVINO IR."""
    if options.precision not in (Precision.FP32, Precision.FP16):
        raise ConversionError(
            f"OpenVINO IR weights can be fp32 or fp16, not {options.precision.value}",
            hint="bf16 is an execution precision: convert to fp32 and run with --precision bf16",
        )


def write_ir(
    ov: Any,
    model: Any,
    src: Path,
    source_format: Format,
    out_dir: Path,
    options: ConvertOptions,
    t0: float,
    engine: str,
    notes: tuple[str, ...],
) -> ConversionReport:
    """Save an OpenVINO model as ``out_dir/<name>.xml`` + ``.bin`` atomically (fp16 weights only when asked: an
    fp32 target keeps fp32 weights, unlike ``save_model``'s default) and report it; for every route to IR."""
    xml_name = f"{options.name}.xml"
    with atomic_files(out_dir) as staging:
        ov.save_model(model, str(staging / xml_name), compress_to_fp16=options.precision is Precision.FP16)
    files = [out_dir / xml_name, out_dir / f"{options.name}.bin"]
    return ConversionReport(
        source=str(src),
        source_format=source_format,
        target_format=Format.OPENVINO_IR,
        precision=options.precision,
        artifact=str(out_dir / xml_name),
        files=tuple(str(f) for f in files if f.exists()),
        size_bytes=files_size(files),
        seconds=time.perf_counter() - t0,
        engine=engine,
        notes=notes,
    )


def _convert(ov: Any, src: Path, tmp: Path, options: ConvertOptions) -> tuple[Any, list[str]]:
    """The attempts of the module docstring, in order; the first OpenVINO model that converts, and notes."""
    tried = _Attempts()
    try:
        return ov.convert_model(str(src)), []
    except Exception as exc:  # OpenVINO's frontends raise several unrelated types
        _refuse_unknown_ops(exc, src)  # no copy or size can give an op a conversion rule
        tried.failures.append(("as exported", ov_failure(exc)))
    try:
        path, prepared = _prepare(src, tmp, unknown_conditions="Rank of If condition" in tried.text())
    except Exception as exc:  # onnx / onnx-ir on a file OpenVINO refused anyway: go on with the other attempts
        tried.failures.append(("preparing a copy", first_line(exc)))
        path, prepared = src, ""
    if prepared:
        model = _try(tried, f"prepared copy ({prepared})", lambda: ov.convert_model(str(path)))
        if model is not None:
            return model, [f"OpenVINO refused the model as exported ({tried.text()}); converted a copy: {prepared}"]
    for label, shapes in _shape_attempts(src, options, tried):
        model = _try(tried, label, lambda s=shapes: ov.convert_model(str(path), input=s))  # type: ignore[misc]
        if model is not None:
            return model, [f"OpenVINO refused the model with dynamic dims ({tried.text()}); converted {label}"]
    raise ConversionError(f"OpenVINO cannot convert the model: {tried.text()}", path=src)


def _refuse_unknown_ops(exc: BaseException, src: Path) -> None:
    """One error for ops OpenVINO has no conversion rule for: the op, its nodes and the ``--outputs`` cut before it."""
    ops = unconverted_ops(exc)
    if not ops:
        return
    proto = load_proto(src, check=False, load_external_data=False)
    uses = []
    for name in ops:
        domain, _, op_type = re.sub(r"-\d+$", "", name).rpartition(".")  # "com.example.Op", "Erf-9"
        uses.append(op_use(proto, op_type, domain or None))
    raise ConversionError(
        f"OpenVINO has no conversion for {'; '.join(u.describe() for u in uses)}",
        path=src,
        hint=uses[0].hint(),
    ) from exc


def _try(tried: _Attempts, what: str, call: Callable[[], Any]) -> Any:
    """``call()``, or None after recording why it failed."""
    try:
        return call()
    except Exception as exc:  # OpenVINO's frontends raise several unrelated types
        why = ov_failure(exc)
        log.info("OpenVINO conversion %s failed: %s", what, why)
        tried.failures.append((what, why))
        return None


_NOISE = re.compile(
    r"^(Check '.*' failed at|FrontEnd API failed|Model wasn't fully converted|\[ONNX Frontend\]|While validating"
    r"|Exception from|Summary:|-- )"
)


def ov_failure(exc: BaseException) -> str:
    """One line from OpenVINO's multi-page conversion error: the ops it could not convert and the first reason
    it gives ("Conv-16, ReduceMean-16: The input data tensor's rank has to be known (static)"); its first
    informative line when the message has no summary."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    failed = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("-- Conversion is failed for:")), "")
    reason = next((ln for ln in lines if not _NOISE.match(ln)), "")
    if failed:
        return f"{failed}: {reason}" if reason else failed
    return error_text(exc)


def _prepare(src: Path, tmp: Path, *, unknown_conditions: bool) -> tuple[Path, str]:
    """A private copy of ``src`` with the preparation passes applied (and its nodes sorted); the source path and
    "" when none of them changed anything. ``If`` conditions of unknown shape are reshaped to scalars only when
    ``unknown_conditions`` (OpenVINO complained about a condition's rank)."""
    import onnx_ir as ir

    from modelport.passes.control_flow import IfScalarCondition, IfScalarConditionOptions, needs_sort, sort_proto

    proto = load_proto(src, check=False)
    done = ["nodes sorted"] if needs_sort(proto) else []
    proto = sort_proto(proto)
    try:  # shapes of the If conditions, so that scalars are left alone
        proto = onnx.shape_inference.infer_shapes(proto)
    except Exception as exc:  # onnx raises several types; the passes then work without them
        log.debug("shape inference of the prepared copy failed: %s", exc)
    model = ir.serde.deserialize_model(proto)
    passes = [IfScalarCondition(IfScalarConditionOptions(unknown_shape=unknown_conditions)), *_other_preparations()]
    done += [p.name for p in passes if p(model).modified]
    if not done:
        return src, ""
    path = tmp / "prepared.onnx"
    save_model(model, path)
    return path, ", ".join(done)


def _other_preparations() -> list[Any]:
    """The preparation passes after ``if-scalar-condition`` (:data:`PREPARATION`), with default options."""
    from modelport.passes.base import pass_spec

    return [pass_spec(name).cls() for name in PREPARATION[1:]]


def _shape_attempts(src: Path, options: ConvertOptions, tried: _Attempts) -> list[tuple[str, dict[str, list[int]]]]:
    """``(label, OpenVINO input shapes)`` for steps 2 and 3 of the module docstring; none when no dim is free."""
    try:
        specs, sizes, why = _sizes(src, options.shapes())
    except ModelportError as exc:  # the source does not run in ONNX Runtime, or an input has an unknown rank
        tried.failures.append(("choosing sizes to fix", exc.message))
        return []
    if not any(not s.is_static for s in specs):
        return []
    batch_kept = {s.name: _with_batch_free(s, sizes[s.name], specs) for s in specs}
    fixed = {s.name: list(sizes[s.name]) for s in specs}
    attempts = []
    if batch_kept != fixed:
        attempts.append((f"with {_shapes_label(batch_kept)} ({why}, batch kept dynamic)", batch_kept))
    attempts.append((f"with {_shapes_label(fixed)} ({why})", fixed))
    return attempts


def _sizes(src: Path, given: Mapping[str, Sequence[int]]) -> tuple[list[TensorSpec], ShapeSet, str]:
    """The source's input specs, the first sizes at which it runs in ONNX Runtime, and where they come from."""
    with open_runner("onnxruntime", src) as runner:
        specs = list(runner.input_specs)

        def run(shapes: ShapeSet, role: int) -> None:
            runner.infer(random_feeds(specs, shapes, seed=role))

        try:
            search = search_shapes(specs, run, given or None, path=src)
        except InferenceError:
            if not given:
                raise
            given = {}  # the chain's suggested sizes, which the source refuses: search them all
            search = search_shapes(specs, run, path=src)
    why = "the given input shapes" if given and all(s.name in given for s in specs) else "sizes the source runs at"
    return specs, search.sets[0], why


def _with_batch_free(spec: TensorSpec, sizes: Sequence[int], specs: Sequence[TensorSpec]) -> list[int]:
    """``sizes`` with -1 (dynamic) for the free dims of ``spec`` that are batch dims: axis 0, or a symbolic dim named
    like some input's axis 0."""
    batch_names = {s.shape[0] for s in specs if s.shape and isinstance(s.shape[0], str) and s.shape[0]}
    out = list(sizes)
    for axis, dim in enumerate(spec.shape or ()):
        free = not (isinstance(dim, int) and dim >= 0)
        if free and (axis == 0 or (isinstance(dim, str) and dim in batch_names)):
            out[axis] = -1
    return out


def _shapes_label(shapes: Mapping[str, Sequence[int]]) -> str:
    """``input shapes input ?×512, sr scalar`` (``?``: kept dynamic)."""
    dims = {k: "×".join(str(d) if d >= 0 else "?" for d in v) or "scalar" for k, v in shapes.items()}
    return "input shapes " + ", ".join(f"{k} {v}" for k, v in dims.items())
