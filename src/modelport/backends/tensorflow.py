"""TensorFlow runner: SavedModel directories, frozen GraphDef (.pb) files and Keras (.keras/.h5) models.

* SavedModel: its ``serving_default`` signature (or its only one); inputs and outputs by signature key.
* Frozen GraphDef: run in a ``tf.compat.v1.Session``; inputs and outputs are tensor names (``image_tensor:0``),
  given with ``inputs=`` / ``outputs=`` or found: every Placeholder is an input, every op none of whose
  outputs is consumed (except Const/NoOp/Assert/SaveV2 …) an output.
* Keras: ``keras.saving.load_model`` (Keras 3), ``tf_keras`` for legacy .h5 files.

TensorFlow's intra-op threads are process-wide and fixed once its runtime starts; a GraphDef session takes
its own thread count.

Backend: TensorFlow: runs SavedModels, frozen GraphDefs (.pb, with tensor names) and Keras files, as sources.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelport.backends import register_backend
from modelport.backends.base import Backend
from modelport.backends.runner import Runner, RunnerInfo
from modelport.errors import (
    InferenceError,
    InvalidInputError,
    ModelLoadError,
    RuntimeUnavailable,
    first_line,
    optional_import,
)
from modelport.formats import Format, Precision, sniff_format
from modelport.inputs import Dim, TensorSpec

#: ops that end a GraphDef without being a model output
_NOT_OUTPUTS = {
    "Const",
    "NoOp",
    "Assert",
    "SaveV2",
    "RestoreV2",
    "VarHandleOp",
    "Placeholder",
    "PlaceholderWithDefault",
}


def import_tensorflow() -> Any:
    """Import TensorFlow quietly or raise RuntimeUnavailable naming the extra.

    Quiet: its C++ logs are off unless ``TF_CPP_MIN_LOG_LEVEL`` is already set, and its Python logger shows
    errors only (deprecation notices of the TF1 APIs the GraphDef routes use are not the user's concern).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = optional_import("tensorflow", extra="tf", what="TensorFlow")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return tf


def read_graph_def(path: Path) -> Any:
    """Parse a frozen GraphDef file; ModelLoadError when it is not one."""
    tf = import_tensorflow()
    from google.protobuf.message import DecodeError

    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(path.read_bytes())
    except DecodeError as exc:
        raise ModelLoadError("file is not a TensorFlow GraphDef (truncated or corrupt)", path=path) from exc
    if not graph_def.node:
        raise ModelLoadError("GraphDef holds no nodes", path=path)
    return graph_def


def tensor_name(name: str) -> str:
    """``"image_tensor"`` → ``"image_tensor:0"`` (names with an output index pass through)."""
    return name if ":" in name else f"{name}:0"


def graph_io(graph: Any, inputs: Sequence[str] = (), outputs: Sequence[str] = ()) -> tuple[list[Any], list[Any]]:
    """The input and output tensors of an imported graph, by name or found; InvalidInputError for unknown names."""
    ops = graph.get_operations()
    if inputs:
        in_tensors = [_tensor(graph, n, "--inputs") for n in inputs]
    else:
        in_tensors = [op.outputs[0] for op in ops if op.type == "Placeholder"]
    if outputs:
        out_tensors = [_tensor(graph, n, "--outputs") for n in outputs]
    else:
        consumed = {t.op.name for op in ops for t in op.inputs}  # ops some output of which is used
        out_tensors = [t for op in ops if op.type not in _NOT_OUTPUTS and op.name not in consumed for t in op.outputs]
    if not in_tensors or not out_tensors:
        raise InvalidInputError(
            "cannot tell the graph's inputs and outputs", hint="name them with --inputs and --outputs"
        )
    return in_tensors, out_tensors


def _tensor(graph: Any, name: str, option: str) -> Any:
    try:
        return graph.get_tensor_by_name(tensor_name(name))
    except (KeyError, ValueError):
        placeholders = [op.name + ":0" for op in graph.get_operations() if op.type == "Placeholder"]
        close = [op.name for op in graph.get_operations() if name.split(":")[0].lower() in op.name.lower()][:5]
        hint = f"the graph's placeholders are {', '.join(placeholders) or 'none'}"
        if close:
            hint += f"; similar names: {', '.join(close)}"
        raise InvalidInputError(f"{option} names a tensor {name!r} the graph does not have", hint=hint) from None


def _spec(name: str, dtype: Any, shape: Any) -> TensorSpec:
    dims: tuple[Dim, ...] | None
    if shape is None or shape.rank is None:
        dims = None
    else:
        dims = tuple(None if d is None else int(d) for d in shape.as_list())
    return TensorSpec(name, np.dtype(dtype.as_numpy_dtype).name, dims)


class TensorFlowRunner(Runner):
    """Runs a SavedModel, a frozen GraphDef or a Keras model in TensorFlow (CPU).

    Args:
        model: SavedModel directory, ``.pb`` GraphDef, ``.keras`` or ``.h5`` file.
        options: threads (intra-op), device "cpu".
        loader: ``inputs`` / ``outputs`` (GraphDef tensor names; default: its Placeholders / the tensors nothing
            consumes) and ``signature`` (SavedModel signature key; default ``serving_default`` or the only one).
    """

    name = "tensorflow"

    def load(self) -> None:
        tf = import_tensorflow()
        if self.options.device.lower() != "cpu":
            raise RuntimeUnavailable(f"the TensorFlow runner runs on cpu, not {self.options.device!r}")
        fmt = sniff_format(self.model_path)
        self._format = fmt
        self._version = tf.__version__
        if fmt is Format.SAVED_MODEL:
            self._load_saved_model(tf)
        elif fmt is Format.TF_GRAPHDEF:
            self._load_graph_def(tf)
        elif fmt is Format.KERAS:
            self._load_keras(tf)
        else:
            raise ModelLoadError(
                f"TensorFlow runs SavedModels, GraphDefs and Keras models, this is {fmt.value}",
                path=self.model_path,
            )

    def _set_threads(self, tf: Any) -> None:
        if self.options.threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(self.options.threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # TensorFlow already started: its thread pools are fixed
                pass

    def _load_saved_model(self, tf: Any) -> None:
        self._set_threads(tf)
        try:
            loaded = tf.saved_model.load(str(self.model_path))
        except Exception as exc:  # TF raises many types for broken SavedModels
            raise ModelLoadError(
                f"TensorFlow cannot load the SavedModel: {first_line(exc)}", path=self.model_path
            ) from exc
        signatures = dict(loaded.signatures)
        key = self.loader.signature or ("serving_default" if "serving_default" in signatures else None)
        if key is None and len(signatures) == 1:
            key = next(iter(signatures))
        if key not in signatures:
            raise ModelLoadError(
                f"SavedModel has no signature {key!r}",
                path=self.model_path,
                hint=f"its signatures: {', '.join(signatures) or 'none'}",
            )
        self._saved_model = loaded  # keeps the variables alive
        fn = signatures[key]
        in_sig = fn.structured_input_signature[1]
        self._inputs = [_spec(k, s.dtype, s.shape) for k, s in sorted(in_sig.items())]
        self._outputs = sorted(fn.structured_outputs)
        self._fn = fn
        self._tf = tf

    def _load_graph_def(self, tf: Any) -> None:
        graph_def = read_graph_def(self.model_path)
        graph = tf.Graph()
        with graph.as_default():
            try:
                tf.compat.v1.import_graph_def(graph_def, name="")
            except (ValueError, tf.errors.OpError) as exc:
                raise ModelLoadError(f"cannot import the GraphDef: {first_line(exc)}", path=self.model_path) from exc
        in_t, out_t = graph_io(graph, self.loader.inputs, self.loader.outputs)
        config = tf.compat.v1.ConfigProto()
        if self.options.threads:
            config.intra_op_parallelism_threads = self.options.threads
            config.inter_op_parallelism_threads = 1
        self._session = tf.compat.v1.Session(graph=graph, config=config)
        self._inputs = [_spec(t.name, t.dtype, t.shape) for t in in_t]
        self._outputs = [t.name for t in out_t]
        self._fetch = out_t
        self._feed_tensors = dict(zip([s.name for s in self._inputs], in_t, strict=True))

    def _load_keras(self, tf: Any) -> None:
        self._set_threads(tf)
        try:
            import keras

            model = keras.saving.load_model(str(self.model_path), compile=False)
        except Exception as exc:
            try:
                import tf_keras

                model = tf_keras.models.load_model(str(self.model_path), compile=False)
            except Exception:
                raise ModelLoadError(f"Keras cannot load the model: {first_line(exc)}", path=self.model_path) from exc
        self._keras = model
        self._inputs = [TensorSpec(t.name, np.dtype(t.dtype).name, tuple(d for d in t.shape)) for t in model.inputs]
        self._outputs = [getattr(t, "name", f"output_{i}") for i, t in enumerate(model.outputs)]

    def close(self) -> None:
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()
        self._session = None
        self._fn = None
        self._keras = None
        self._saved_model = None

    def info(self) -> RunnerInfo:
        return RunnerInfo(
            runtime=self.name,
            version=self._version,
            device="cpu",
            requested_precision=self.options.precision.value,
            executed_precision="fp32",
            threads=self.options.threads,
            details=(("format", self._format.value),),
        )

    def _run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            if self._format is Format.TF_GRAPHDEF:
                fd = {self._feed_tensors[k]: feeds[k] for k in self._feed_tensors}
                return [np.asarray(v) for v in self._session.run(self._fetch, feed_dict=fd)]
            if self._format is Format.KERAS:
                args = [feeds[s.name] for s in self._inputs]
                out = self._keras(args if len(args) > 1 else args[0], training=False)
                outs = out if isinstance(out, list | tuple) else [out]
                return [np.asarray(o) for o in outs]
            result = self._fn(**{k: self._tf.constant(v) for k, v in feeds.items()})
            return [result[k].numpy() for k in self._outputs]
        except Exception as exc:  # TF raises InvalidArgumentError and friends
            raise InferenceError(f"TensorFlow failed: {first_line(exc)}", path=self.model_path) from exc


def probe() -> tuple[str, tuple[str, ...]]:
    """The engine's version and the devices it sees here (imports the engine; RuntimeUnavailable without it)."""
    m = import_tensorflow()
    return str(m.__version__), ("cpu", *tuple(d.name for d in m.config.list_physical_devices("GPU")))


# ---------------------------------------------------------------------------------------------------
# The descriptor

F32, F16, BF16, I8 = Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8

BACKEND = register_backend(
    Backend(
        name="tensorflow",
        aliases=("tf",),
        formats=(Format.SAVED_MODEL, Format.TF_GRAPHDEF, Format.KERAS),
        precisions=(("cpu", (F32,)),),
        runner="modelport.backends.tensorflow:TensorFlowRunner",
        extra="tf",
        inspector="modelport.inspection.saved_model:inspect_saved_model",
        probe="modelport.backends.tensorflow:probe",
        engine="tensorflow",
    )
)
