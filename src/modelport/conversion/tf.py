"""TensorFlow frozen GraphDef (.pb) → SavedModel, and Keras (.keras/.h5) → SavedModel.

A frozen graph has no signature: its inputs and outputs are tensor names. Like the seeds' ``pb_to_saved_model``
this imports the graph into a TF1 session and writes a SavedModel whose ``serving_default`` signature maps
clean keys to those tensors. Naming inner tensors cuts the graph: ``--inputs Preprocessor/sub:0`` starts the
SavedModel after the preprocessing, ``--outputs`` ends it before the post-processing (how a detector whose
post-processing uses TF1 TensorArray loops gets through TFLite). Signature keys are the tensor names with the
``:0`` dropped and every other non-alphanumeric character turned into ``_`` (``Preprocessor/sub:0`` →
``Preprocessor_sub``).

Keras 3 models are exported with ``model.export`` (a TF SavedModel); legacy ``tf_keras`` models with
``tf.saved_model.save``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from modelport.backends.tensorflow import graph_io, import_tensorflow, read_graph_def
from modelport.conversion.base import ConversionReport, ConvertOptions, files_size, register_converter
from modelport.errors import ConversionError, InvalidInputError
from modelport.formats import Format, Precision
from modelport.model_io import atomic_path


def signature_key(tensor: str) -> str:
    """A SavedModel signature key for a tensor name: ``Preprocessor/sub:0`` → ``Preprocessor_sub``."""
    base = tensor[:-2] if tensor.endswith(":0") else tensor
    return re.sub(r"[^0-9A-Za-z_]+", "_", base).strip("_") or "tensor"


def _require_fp32(options: ConvertOptions, route: str) -> None:
    if options.precision is not Precision.FP32:
        raise ConversionError(
            f"{route} keeps the model's own weights; precision {options.precision.value} is not available here",
            hint="ask for the precision on the final target (e.g. --to tflite --precision fp16)",
        )


@register_converter(Format.TF_GRAPHDEF, Format.SAVED_MODEL)
def saved_model_from_graph_def(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Write ``out_dir/<name>_saved_model/`` from a frozen GraphDef; ``options.inputs``/``outputs`` make its signature.

    Raises:
        InvalidInputError: an input or output name the graph does not have (the hint lists its placeholders).
    """
    _require_fp32(options, "GraphDef → SavedModel")
    tf = import_tensorflow()
    t0 = time.perf_counter()
    graph_def = read_graph_def(src)
    dst = out_dir / f"{options.name}_saved_model"
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
        in_t, out_t = graph_io(graph, options.inputs, options.outputs)
        _check_keys([t.name for t in in_t], [t.name for t in out_t])
        with tf.compat.v1.Session(graph=graph) as sess, atomic_path(dst) as tmp:
            builder = tf.compat.v1.saved_model.Builder(str(tmp))
            signature = tf.compat.v1.saved_model.signature_def_utils.predict_signature_def(
                {signature_key(t.name): t for t in in_t}, {signature_key(t.name): t for t in out_t}
            )
            builder.add_meta_graph_and_variables(
                sess,
                [tf.compat.v1.saved_model.tag_constants.SERVING],
                signature_def_map={"serving_default": signature},
                strip_default_attrs=True,
            )
            builder.save()
    notes = (f"signature inputs {[t.name for t in in_t]}, outputs {[t.name for t in out_t]}",)
    return _report(src, Format.TF_GRAPHDEF, dst, t0, f"tensorflow {tf.__version__} (SavedModel builder)", notes)


def _check_keys(inputs: list[str], outputs: list[str]) -> None:
    keys = [signature_key(n) for n in inputs + outputs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise InvalidInputError(f"tensor names collide as signature keys: {', '.join(dup)}")


@register_converter(Format.KERAS, Format.SAVED_MODEL)
def saved_model_from_keras(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Export a Keras model to ``out_dir/<name>_saved_model/`` (``model.export`` for Keras 3, else tf_keras)."""
    _require_fp32(options, "Keras → SavedModel")
    tf = import_tensorflow()
    t0 = time.perf_counter()
    model, legacy = load_keras(src)
    dst = out_dir / f"{options.name}_saved_model"
    with atomic_path(dst) as tmp:
        export_keras(model, legacy, tmp, src)
    engine = f"{'tf_keras' if legacy else 'keras'} export, tensorflow {tf.__version__}"
    return _report(src, Format.KERAS, dst, t0, engine, ())


def export_keras(model: Any, legacy: bool, dst: Path, src: Path) -> None:
    """Write ``model`` as a SavedModel at ``dst``: ``model.export`` (Keras 3) or ``tf.saved_model.save`` (tf_keras)."""
    tf = import_tensorflow()
    try:
        if legacy:
            tf.saved_model.save(model, str(dst))
        else:
            model.export(str(dst), format="tf_saved_model", verbose=False)
    except (ValueError, TypeError) as exc:
        raise ConversionError(f"Keras cannot export the model: {exc}", path=src) from exc


def load_keras(src: Path) -> tuple[Any, bool]:
    """A Keras model from .keras/.h5: ``(model, legacy)``; legacy is True for a tf_keras model."""
    import_tensorflow()
    import keras

    try:
        return keras.saving.load_model(str(src), compile=False), False
    except Exception as first:
        try:
            import tf_keras

            return tf_keras.models.load_model(str(src), compile=False), True
        except Exception:
            raise ConversionError(f"Keras cannot load the model: {first}", path=src) from first


def _report(src: Path, src_fmt: Format, dst: Path, t0: float, engine: str, notes: tuple[str, ...]) -> ConversionReport:
    return ConversionReport(
        source=str(src),
        source_format=src_fmt,
        target_format=Format.SAVED_MODEL,
        precision=Precision.FP32,
        artifact=str(dst),
        files=(str(dst),),
        size_bytes=files_size([dst]),
        seconds=time.perf_counter() - t0,
        engine=engine,
        notes=notes,
    )
