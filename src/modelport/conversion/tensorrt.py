"""ONNX → TensorRT engine (fp32 / fp16) with TensorRT's ONNX parser and builder. GPU only.

The engine is built for the GPU it is built on. Inputs with dynamic dims get one optimization profile whose
min/opt/max are the shape from ``input_shapes`` (or batch 1 for a dynamic batch): the engine then runs that
shape. fp32 clears ``BuilderFlag.TF32`` (on by default on Ampere and newer, it rounds matmul/conv inputs to a
10-bit mantissa). fp16 sets ``BuilderFlag.FP16`` (TensorRT picks fp16 kernels where faster, keeping fp32 elsewhere), so
its outputs are judged with the fp16 tolerance. A node the parser cannot take is reported by op and node name.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from modelport.backends.tensorrt import import_tensorrt, require_cuda
from modelport.conversion.base import ConversionReport, ConvertOptions, register_converter
from modelport.errors import ConversionError, InvalidInputError
from modelport.formats import Format, Precision
from modelport.model_io import load_proto, write_bytes

#: builder workspace limit (bytes)
WORKSPACE_BYTES = 4 << 30


def _parse(trt: Any, network: Any, logger: Any, src: Path) -> None:
    parser = trt.OnnxParser(network, logger)
    if parser.parse_from_file(str(src)):
        return
    errors = [parser.get_error(i) for i in range(parser.num_errors)]
    first = errors[0] if errors else None
    if first is None:
        raise ConversionError("TensorRT's ONNX parser failed without a message", path=src)
    node = first.node_name() if hasattr(first, "node_name") else str(first.node())
    op = first.node_operator() if hasattr(first, "node_operator") else "?"
    raise ConversionError(
        f"TensorRT cannot parse op {op} (node {node}): {first.desc()}",
        path=src,
        hint="simplify the model (`modelport optimize`), fix dynamic shapes with --input-shape, or replace the op",
    )


def _profile(trt: Any, builder: Any, network: Any, shapes: dict[str, tuple[int, ...]]) -> Any | None:
    """One optimization profile fixing every dynamic input to its given shape (batch 1 if only the batch is)."""
    profile = builder.create_optimization_profile()
    dynamic = False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        dims = tuple(tensor.shape)
        if all(d >= 0 for d in dims):
            continue
        dynamic = True
        shape = shapes.get(tensor.name)
        if shape is None:
            if any(d < 0 for d in dims[1:]):
                raise InvalidInputError(
                    f"input {tensor.name!r} has dynamic dims {list(dims)} and TensorRT needs their sizes",
                    hint=f"give --input-shape {tensor.name}:D1,D2,…",
                )
            shape = (1, *dims[1:])
        profile.set_shape(tensor.name, shape, shape, shape)
    return profile if dynamic else None


@register_converter(Format.ONNX, Format.TENSORRT)
def tensorrt_from_onnx(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Build ``out_dir/<name>.engine`` from an ONNX file (needs TensorRT and a CUDA GPU)."""
    trt = import_tensorrt()
    require_cuda()
    if options.precision not in (Precision.FP32, Precision.FP16):
        raise ConversionError(
            f"TensorRT engines here are fp32 or fp16, not {options.precision.value}",
            hint="int8 needs calibration: `modelport quantize`",
        )
    load_proto(src, check=False, load_external_data=False)  # a broken file: ModelLoadError first
    t0 = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT < 10 needs it, 10 is always explicit
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    _parse(trt, network, logger, src)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # the runner reads layer precisions back
    if options.precision is Precision.FP16:
        if not getattr(builder, "platform_has_fast_fp16", True):
            raise ConversionError("this GPU has no fast fp16", hint="build an fp32 engine")
        config.set_flag(trt.BuilderFlag.FP16)
    elif hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # TF32 (10-bit mantissa) is on by default on Ampere+: fp32 means fp32
    profile = _profile(trt, builder, network, options.shapes())
    if profile is not None:
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ConversionError("TensorRT could not build an engine (see its log above)", path=src)
    dst = out_dir / f"{options.name}.engine"
    write_bytes(dst, bytes(serialized))
    return ConversionReport.for_file(
        src,
        Format.ONNX,
        Format.TENSORRT,
        options.precision,
        dst,
        t0,
        f"tensorrt {trt.__version__}",
    )
