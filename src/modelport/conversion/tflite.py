"""SavedModel → TFLite (LiteRT) float32/float16 through TensorFlow's ``TFLiteConverter``.

The seeds convert through TFLite to fix the input size and let the TFLite optimizer clean the graph up. The
serving signature is re-traced with fixed input shapes (``input_shapes``, matched to the signature keys), so
a SavedModel with inputs ``[1, ?, ?, 6]`` becomes a TFLite model with ``[1, 480, 640, 6]``; an input whose
rank is unknown must be given a shape. Only builtin TFLite ops are allowed (what the LiteRT interpreter
runs without the Flex delegate): when TensorFlow ops remain, the error names each op and its node.

fp16: the weights are stored as float16 (``Optimize.DEFAULT`` + ``supported_types=[float16]``); LiteRT's CPU
kernels dequantize them once and compute in float32, so the error against fp32 is the weights' rounding
(≈ 2⁻¹¹ relative per weight).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelport.backends.tensorflow import import_tensorflow
from modelport.conversion.base import ConversionReport, ConvertOptions, register_converter
from modelport.errors import ConversionError, InvalidInputError
from modelport.formats import Format, Precision
from modelport.model_io import write_bytes
from modelport.verify.matching import canonical

_NOT_BUILTIN = re.compile(r"'(?:tf\.)?(?P<op>[\w.]+)' op is neither a custom op nor a flex op")
_NODE = re.compile(r'fused\["[^"]*", "(?P<node>[^"@]+)')


def fixed_signature(spec_shapes: Mapping[str, Any], shapes: Mapping[str, Sequence[int]]) -> dict[str, list[int | None]]:
    """Shape of every signature input: the given one (matched by canonical name) or the signature's own.

    Raises:
        InvalidInputError: a shape for an unknown input, a rank mismatch, or an input of unknown rank with none.
    """
    given = {canonical(k): (k, tuple(v)) for k, v in shapes.items()}
    keys = {canonical(k) for k in spec_shapes}
    unknown = sorted(orig for key, (orig, _) in given.items() if key not in keys)
    if unknown:
        raise InvalidInputError(
            f"--input-shape names unknown input(s) {', '.join(unknown)}",
            hint=f"the model's inputs are: {', '.join(sorted(spec_shapes))}",
        )
    result: dict[str, list[int | None]] = {}
    for key, shape in spec_shapes.items():
        own = None if shape.rank is None else shape.as_list()
        if canonical(key) in given:
            dims = list(given[canonical(key)][1])
            if own is not None and len(own) != len(dims):
                raise InvalidInputError(f"--input-shape for {key!r} has rank {len(dims)}, the model's has {len(own)}")
            result[key] = list(dims)
        elif own is None:
            raise InvalidInputError(
                f"input {key!r} has an unknown shape and TFLite needs it fixed",
                hint=f"give it with --input-shape {key}:D1,D2,…",
            )
        else:
            result[key] = own
    return result


def converter_errors(text: str) -> list[tuple[str, str]]:
    """``(op, node)`` pairs of the TFLite converter's "neither a custom op nor a flex op" errors, in order.

    The converter writes them as ``loc(…fused["TensorArrayV3:", "Preprocessor/map/TensorArray@fn"]…): 'tf.
    TensorArrayV3' op is neither a custom op nor a flex op``.
    """
    seen: list[tuple[str, str]] = []
    for line in text.splitlines():
        op = _NOT_BUILTIN.search(line)
        if op is None:
            continue
        node = _NODE.search(line)
        pair = (op.group("op"), node.group("node") if node else "?")
        if pair not in seen:
            seen.append(pair)
    return seen


def _conversion_error(exc: Exception, src: Path) -> ConversionError:
    bad = converter_errors(str(exc))
    if bad:
        shown = ", ".join(f"{op} (node {node})" for op, node in bad[:4])
        more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
        return ConversionError(
            f"TFLite builtins cannot express {shown}{more}",
            path=src,
            hint="cut the graph around these ops with --inputs/--outputs (e.g. keep pre/post-processing out), "
            "or convert to ONNX without --via tflite",
        )
    lines = [line for line in str(exc).splitlines() if "error:" in line] or str(exc).splitlines() or [repr(exc)]
    return ConversionError(f"the TFLite converter failed: {lines[0].strip()[:400]}", path=src)


@register_converter(Format.SAVED_MODEL, Format.TFLITE)
def tflite_from_saved_model(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Write ``out_dir/<name>.tflite`` (fp32 or fp16 weights) from a SavedModel's serving signature.

    ``options.input_shapes`` fixes input shapes (names as signature keys or tensor names).
    """
    tf = import_tensorflow()
    if options.precision not in (Precision.FP32, Precision.FP16):
        raise ConversionError(
            f"SavedModel → TFLite writes fp32 or fp16, not {options.precision.value}",
            hint="int8 comes from `modelport quantize`",
        )
    t0 = time.perf_counter()
    loaded = tf.saved_model.load(str(src))
    signatures = dict(loaded.signatures)
    if not signatures:
        raise ConversionError("the SavedModel has no signature to convert", path=src)
    fn = signatures.get("serving_default") or next(iter(signatures.values()))
    specs = fn.structured_input_signature[1]
    shapes = fixed_signature({k: s.shape for k, s in specs.items()}, options.shapes())
    keys = sorted(specs)
    signature = [tf.TensorSpec(shapes[k], specs[k].dtype, name=k) for k in keys]

    def call(*args: Any) -> Any:
        return fn(**dict(zip(keys, args, strict=True)))

    concrete = tf.function(call, input_signature=signature).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], loaded)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if options.precision is Precision.FP16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    try:
        flatbuffer = converter.convert()
    except Exception as exc:  # ConverterError and friends
        raise _conversion_error(exc, src) from exc
    dst = out_dir / f"{options.name}.tflite"
    write_bytes(dst, flatbuffer)
    fixed = ", ".join(f"{k}:{'x'.join(str(d) for d in shapes[k])}" for k in keys)
    return ConversionReport.for_file(
        src,
        Format.SAVED_MODEL,
        Format.TFLITE,
        options.precision,
        dst,
        t0,
        f"tensorflow {tf.__version__} TFLiteConverter",
        notes=(f"input shapes {fixed}",),
    )
