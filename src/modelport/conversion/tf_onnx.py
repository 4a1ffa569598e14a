"""SavedModel / Keras / TFLite → ONNX through tf2onnx.

* SavedModel: the ``serving_default`` signature (tf2onnx's ``from_saved_model`` loader, then its converter);
  ONNX inputs and outputs are named by the signature keys.
* Keras: exported to a temporary SavedModel first (tf2onnx's ``from_keras`` fails on Keras 3 models).
* TFLite: prepared first (:mod:`modelport.conversion.tflite_prep`: sparse weights densified, resource-variable
  state made explicit, MediaPipe custom ops replaced), then ``from_tflite``; inputs and outputs are renamed from
  TFLite tensor names (``serving_default_x:0``, ``StatefulPartitionedCall:0``) to the file's signature keys when it
  has one. A state input ``state:<var>`` defaults to the variable's initial value (an ONNX initializer of the same
  name), so the model run without it reproduces a fresh interpreter's first call.

``inputs_as_nchw`` transposes the named NHWC inputs to NCHW (ONNX's layout for images), as the seeds' tf2onnx
``--inputs-as-nchw`` did. tf2onnx leaves an op it cannot convert in the graph under its TensorFlow name:
every node whose op ONNX does not define is reported by op type and node name.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx

from modelport.backends.tensorflow import import_tensorflow
from modelport.conversion.base import ConversionReport, ConvertOptions, register_converter
from modelport.conversion.tf import export_keras, load_keras
from modelport.conversion.tflite_prep import StateVariable, prepare_tflite
from modelport.errors import ConversionError, first_line
from modelport.formats import Format, Precision
from modelport.model_io import save_model
from modelport.verify.matching import canonical, match_name

log = logging.getLogger(__name__)


def import_tf2onnx() -> Any:
    """Import tf2onnx (after TensorFlow, quietly) or raise RuntimeUnavailable naming the extra."""
    import_tensorflow()
    try:
        import tf2onnx
    except ImportError as exc:
        from modelport.errors import RuntimeUnavailable

        raise RuntimeUnavailable("tf2onnx is not installed", hint="pip install 'modelport[tf]'") from exc
    # its shape-inference warnings are not actionable, and what it logs as errors (unsupported ops, failures) comes
    # back as one ConversionError (require_supported names every unsupported op and node)
    logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)
    return tf2onnx


def unsupported_nodes(proto: onnx.ModelProto) -> list[tuple[str, str]]:
    """``(op type, node name)`` of every node, subgraphs included, whose op ONNX (or its domain) does not define."""
    found: list[tuple[str, str]] = []

    def walk(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            domain = node.domain or ""
            if domain in ("", "ai.onnx", "ai.onnx.ml") and not onnx.defs.has(node.op_type, domain):
                found.append((node.op_type, node.name))
            for attr in node.attribute:
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    walk(sub)

    walk(proto.graph)
    return found


def require_supported(proto: onnx.ModelProto, src: Path, engine: str) -> None:
    """ConversionError naming the first unconvertible ops and their nodes."""
    bad = unsupported_nodes(proto)
    if bad:
        shown = ", ".join(f"{op} (node {name})" for op, name in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ConversionError(
            f"{engine} cannot express {len(bad)} op(s) in ONNX: {shown}{more}",
            path=src,
            hint="cut the graph before/after them with --inputs/--outputs, or replace them in the source model",
        )


def rename_io(proto: onnx.ModelProto, mapping: Mapping[str, str]) -> onnx.ModelProto:
    """Rename graph inputs/outputs everywhere they are used (subgraphs too), through onnx-ir."""
    if not mapping:
        return proto
    import onnx_ir as ir

    model = ir.serde.deserialize_model(proto)
    for value in [*model.graph.inputs, *model.graph.outputs]:
        if value.name is not None and value.name in mapping:
            value.name = mapping[value.name]
    return ir.serde.serialize_model(model)


def _finish(
    proto: onnx.ModelProto,
    src: Path,
    src_fmt: Format,
    out_dir: Path,
    options: ConvertOptions,
    t0: float,
    notes: Sequence[str],
) -> ConversionReport:
    tf2onnx = import_tf2onnx()
    require_supported(proto, src, "tf2onnx")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ConversionError(f"tf2onnx produced an invalid model: {first_line(exc)}", path=src) from exc
    dst = out_dir / f"{options.name}.onnx"
    save_model(proto, dst, source=src)
    return ConversionReport.for_file(
        src,
        src_fmt,
        Format.ONNX,
        Precision.FP32,
        dst,
        t0,
        f"tf2onnx {tf2onnx.__version__} (opset {options.opset})",
        notes=tuple(notes),
    )


def _require_fp32(options: ConvertOptions) -> None:
    if options.precision is not Precision.FP32:
        raise ConversionError(
            f"tf2onnx writes fp32 ONNX; for {options.precision.value} convert on from the ONNX model",
            hint=f"--to onnx then `modelport convert model.onnx --to onnx --precision {options.precision.value}`",
        )


@register_converter(Format.SAVED_MODEL, Format.ONNX)
def onnx_from_saved_model(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Convert a SavedModel's serving signature to ``out_dir/<name>.onnx`` (inputs in ``inputs_as_nchw`` as NCHW)."""
    _require_fp32(options)
    import_tf2onnx()
    from tf2onnx import tf_loader
    from tf2onnx.convert import _convert_common

    t0 = time.perf_counter()
    try:
        graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
            str(src), None, None, return_initialized_tables=True, return_tensors_to_rename=True
        )
    except (ValueError, KeyError, OSError) as exc:
        raise ConversionError(f"tf2onnx cannot load the SavedModel: {exc}", path=src) from exc
    keys = [renames.get(n, n) for n in inputs]
    nchw = [match_name(n, keys) for n in options.inputs_as_nchw]
    try:
        proto, _ = _convert_common(
            graph_def,
            name=src.name,
            opset=options.opset,
            input_names=inputs,
            output_names=outputs,
            shape_override=_unknown_rank_shapes(graph_def, inputs, renames, options.shapes()) or None,
            inputs_as_nchw=nchw,
            tensors_to_rename=renames,
            initialized_tables=tables,
        )
    except Exception as exc:  # tf2onnx raises bare Exceptions/ValueErrors naming the failing op
        raise ConversionError(f"tf2onnx failed: {first_line(exc)}", path=src) from exc
    notes = [f"inputs as NCHW: {', '.join(nchw)}"] if nchw else []
    return _finish(proto, src, Format.SAVED_MODEL, out_dir, options, t0, notes)


def _unknown_rank_shapes(
    graph_def: Any, inputs: Sequence[str], renames: Mapping[str, str], shapes: Mapping[str, Sequence[int]]
) -> dict[str, list[int]]:
    """Given shapes for the inputs whose rank the graph does not know (tf2onnx would take them for scalars).

    Inputs with a known rank keep their dynamic dims in ONNX.
    """
    placeholders = {n.name: n for n in graph_def.node if n.op == "Placeholder"}
    result: dict[str, list[int]] = {}
    for name in inputs:
        node = placeholders.get(name.split(":")[0])
        if node is None or not node.attr["shape"].shape.unknown_rank:
            continue
        for key, shape in shapes.items():
            if canonical(key) in (canonical(name), canonical(renames.get(name, name))):
                result[name] = [int(d) for d in shape]
    return result


@register_converter(Format.KERAS, Format.ONNX)
def onnx_from_keras(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Keras → temporary SavedModel → ONNX (tf2onnx ``from_keras`` does not take Keras 3 models)."""
    _require_fp32(options)
    t0 = time.perf_counter()
    model, legacy = load_keras(src)
    with tempfile.TemporaryDirectory(prefix="modelport-keras-") as tmp:
        saved = Path(tmp) / "saved_model"
        export_keras(model, legacy, saved, src)
        report = onnx_from_saved_model(saved, out_dir, options)
    return dataclasses.replace(report, source=str(src), source_format=Format.KERAS, seconds=time.perf_counter() - t0)


@register_converter(Format.TFLITE, Format.ONNX)
def onnx_from_tflite(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Convert a float TFLite model to ``out_dir/<name>.onnx``, I/O named by its signature keys.

    The file is prepared first (:func:`~modelport.conversion.tflite_prep.prepare_tflite`: sparse weights densified,
    resource-variable state made explicit, MediaPipe's Convolution2DTransposeBias replaced) in a temporary copy.
    """
    _require_fp32(options)
    tf2onnx = import_tf2onnx()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="modelport-tflite-") as tmp:
        prepared = prepare_tflite(src, Path(tmp))
        details = _tflite_io(prepared.path)
        nchw = [match_name(n, list(details["inputs"])) for n in options.inputs_as_nchw]
        nchw_tensors = [details["inputs"][k] for k in nchw]
        try:
            with warnings.catch_warnings():  # tf2onnx reads TFLite with the deprecated tf.lite.Interpreter
                warnings.simplefilter("ignore")
                proto, _ = tf2onnx.convert.from_tflite(
                    str(prepared.path), opset=options.opset, inputs_as_nchw=nchw_tensors or None
                )
        except Exception as exc:  # tf2onnx raises bare Exceptions naming the failing op
            raise ConversionError(f"tf2onnx failed: {first_line(exc)}", path=src) from exc
    mapping = {t: k for k, t in {**details["inputs"], **details["outputs"]}.items() if t != k}
    proto = with_initial_state(rename_io(proto, mapping), prepared.state)
    notes = [*prepared.notes, *([f"inputs as NCHW: {', '.join(nchw)}"] if nchw else [])]
    if prepared.state:
        notes.append(
            "state inputs default to the initial state (ONNX initializers): omit them for a fresh first call, "
            "feed new_state:* back as state:* for the next ones"
        )
    return _finish(proto, src, Format.TFLITE, out_dir, options, t0, notes)


def with_initial_state(proto: onnx.ModelProto, state: Sequence[StateVariable]) -> onnx.ModelProto:
    """Give every state input its initial value as a default (an initializer of the same name)."""
    if not state:
        return proto
    from onnx import helper, numpy_helper

    types = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
    for var in state:
        if var.input_name not in types:
            raise ConversionError(f"tf2onnx dropped the state input {var.input_name}", hint="report this model")
        value = var.initial.astype(helper.tensor_dtype_to_np_dtype(types[var.input_name]))
        proto.graph.initializer.append(numpy_helper.from_array(value, var.input_name))
    return proto


def _tflite_io(src: Path) -> dict[str, dict[str, str]]:
    """Signature key (or tensor name) → TFLite tensor name, for inputs and outputs."""
    from modelport.backends.litert import import_litert_interpreter, load_error

    try:
        interp = import_litert_interpreter().Interpreter(model_path=str(src))
    except (RuntimeError, ValueError) as exc:  # "Registration failed" for a builtin code the interpreter lacks …
        raise load_error(exc, src) from exc
    names = {d["index"]: d["name"] for d in interp.get_tensor_details()}
    sigs = interp._get_full_signature_list()
    if len(sigs) == 1:
        (sig,) = sigs.values()
        return {
            "inputs": {k: names[i] for k, i in sig["inputs"].items()},
            "outputs": {k: names[i] for k, i in sig["outputs"].items()},
        }
    return {
        "inputs": {d["name"]: d["name"] for d in interp.get_input_details()},
        "outputs": {d["name"]: d["name"] for d in interp.get_output_details()},
    }
