"""PyTorch → ONNX through ``torch.onnx.export``: the dynamo exporter first, the legacy one as the fallback.

The dynamo exporter (``torch.export`` + onnxscript, opset ≥ 18) writes clean graphs but fails on some real models (a
data-dependent branch, torchvision's ``batched_nms`` in ssdlite320); the legacy TorchScript-tracing
exporter handles those. The fallback is automatic and its reason is logged and kept in the report's notes.

Example inputs come from ``input_shapes`` (names are the ``forward`` parameters) or the module's
``example_inputs`` attribute; dtypes from the module when it tells, else float32. ``dynamic_axes`` marks input
axes as dynamic (``{"x": (0,)}`` for a dynamic batch). Loading follows
:func:`modelport.backends.torch.load_torch_model`: pickled modules only with ``trust_remote_code``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelport.backends.torch import flatten_outputs, import_torch, load_torch_model
from modelport.conversion.base import ConversionReport, ConvertOptions, register_converter
from modelport.errors import ConversionError, InvalidInputError, first_line
from modelport.formats import Format, Precision
from modelport.inputs import TensorSpec
from modelport.model_io import load_proto, save_model

log = logging.getLogger(__name__)

#: the dynamo exporter writes opset 18 natively; down-converting fails on common ops (ReduceMean's axes input)
DYNAMO_MIN_OPSET = 18


def example_inputs(specs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]], seed: int = 0) -> list[Any]:
    """Seeded example tensors for every input, shaped by ``shapes`` or the spec's static shape.

    Raises:
        InvalidInputError: an input without a known shape, or a shape for an unknown input.
    """
    torch = import_torch()
    names = [s.name for s in specs]
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise InvalidInputError(
            f"--input-shape names unknown input(s) {', '.join(unknown)}", hint=f"forward() takes: {', '.join(names)}"
        )
    rng = np.random.default_rng(seed)
    tensors = []
    for spec in specs:
        given = shapes.get(spec.name) or (spec.shape if spec.is_static else None)
        if given is None:
            raise InvalidInputError(
                f"PyTorch export needs a shape for input {spec.name!r}",
                hint=f"give --input-shape {spec.name}:D1,D2,… (inputs: {', '.join(names)})",
            )
        shape = tuple(int(d) for d in given)  # type: ignore[arg-type]
        dtype = np.dtype(spec.dtype)
        arr = rng.random(shape).astype(dtype) if dtype.kind == "f" else rng.integers(0, 10, shape).astype(dtype)
        tensors.append(torch.from_numpy(arr))
    return tensors


def _dynamo(
    module: Any, args: tuple[Any, ...], path: Path, names: list[str], outputs: list[str], options: ConvertOptions
) -> None:
    torch = import_torch()
    dynamic = dict(options.dynamic_axes)
    dynamic_shapes = (
        {n: {int(a): torch.export.Dim.DYNAMIC for a in dynamic[n]} if n in dynamic else None for n in names}
        if dynamic
        else None
    )
    program = torch.onnx.export(
        module,
        args,
        dynamo=True,
        input_names=names,
        output_names=outputs,
        opset_version=max(options.opset, DYNAMO_MIN_OPSET),
        dynamic_shapes=dynamic_shapes,
        external_data=False,
        verbose=False,
    )
    program.save(str(path))


def _legacy(
    module: Any, args: tuple[Any, ...], path: Path, names: list[str], outputs: list[str], options: ConvertOptions
) -> None:
    torch = import_torch()
    axes = {n: list(a) for n, a in options.dynamic_axes}
    torch.onnx.export(
        module,
        args,
        str(path),
        dynamo=False,
        input_names=names,
        output_names=outputs,
        opset_version=options.opset,
        dynamic_axes=axes or None,
        do_constant_folding=True,
    )


def export_onnx(src: str | Path, dst: Path, options: ConvertOptions) -> tuple[str, list[str]]:
    """Export a PyTorch model to the ONNX file ``dst``; returns ``(exporter used, notes)``.

    Raises:
        ConversionError: both exporters failed (their first lines quoted).
        InvalidInputError / ModelLoadError: missing shapes, a pickle without ``trust_remote_code`` …
    """
    torch = import_torch()
    module, kind, specs = load_torch_model(src, trust_remote_code=options.trust_remote_code)
    shapes = options.shapes()
    args = tuple(example_inputs(specs, shapes))
    with torch.no_grad():
        result = flatten_outputs(module(*args))
    names = [s.name for s in specs]
    outputs = ["output"] if len(result) == 1 else [f"output_{i}" for i in range(len(result))]
    unknown_axes = sorted(set(dict(options.dynamic_axes)) - set(names))
    if unknown_axes:
        raise InvalidInputError(f"--dynamic-axes names unknown input(s) {', '.join(unknown_axes)}")
    notes: list[str] = [f"source: {kind}"]
    with tempfile.TemporaryDirectory(prefix="modelport-torch-") as tmp:
        path = Path(tmp) / "model.onnx"
        try:
            if kind == "torchscript":
                raise RuntimeError("TorchScript modules go through the legacy exporter")
            _dynamo(module, args, path, names, outputs, options)
            exporter = "dynamo"
        except Exception as exc:
            reason = first_line(exc)
            log.warning("dynamo ONNX export failed (%s); falling back to the legacy exporter", reason)
            notes.append(f"dynamo exporter failed: {reason}")
            try:
                _legacy(module, args, path, names, outputs, options)
            except Exception as legacy_exc:
                raise ConversionError(
                    f"both ONNX exporters failed: dynamo: {reason}; legacy: {first_line(legacy_exc)}", path=str(src)
                ) from legacy_exc
            exporter = "legacy"
        proto = load_proto(path)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), options.opset)
    if opset != options.opset:
        notes.append(f"opset {opset} (the {exporter} exporter's minimum; {options.opset} was asked)")
    save_model(proto, dst)
    return f"{exporter} exporter (opset {opset})", notes


@register_converter(Format.TORCH, Format.ONNX)
def onnx_from_torch(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Export a PyTorch model (``module:factory`` or a file) to ``out_dir/<name>.onnx``."""
    torch = import_torch()
    if options.precision is not Precision.FP32:
        raise ConversionError(
            "the PyTorch exporter writes fp32 ONNX", hint="convert the ONNX model on with --precision fp16"
        )
    t0 = time.perf_counter()
    dst = out_dir / f"{options.name}.onnx"
    exporter, notes = export_onnx(src, dst, options)
    return ConversionReport.for_file(
        src,
        Format.TORCH,
        Format.ONNX,
        Precision.FP32,
        dst,
        t0,
        f"torch.onnx {exporter}, torch {torch.__version__}",
        notes=tuple(notes),
    )
