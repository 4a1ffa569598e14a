"""LiteRT (TensorFlow Lite) runner through ``ai-edge-litert``, with thread count and XNNPACK on or off.

Names: a model with one signature (what the TFLite converter and onnx2tf write) is addressed by its signature
keys (``x``, ``boxes`` …), the names its author chose; otherwise by tensor names. Outputs come in the order
of the graph's output tensors.

Dynamic dimensions (``shape_signature`` −1) are resized to each feed's shape before running, so a model
converted with a dynamic batch runs any batch. XNNPACK is LiteRT's default CPU delegate; the
``litert-noxnnpack`` runner (or ``LiteRTRunner(..., xnnpack=False)``) uses the built-in kernels only, which is
what a device without XNNPACK runs and the way to tell a delegate's numerical difference from the model's.
The engine setting ``xnnpack`` (on | off, ``RunnerOptions.engine``) does the same and, when given, wins over the
runner's own choice.

Quantized models run as they are: the input and output details carry ``(scale, zero_point)``; feeds are
passed in the model's input dtype (an int8-input model takes int8 feeds) — see :meth:`LiteRTRunner.quantization`.

Backend: LiteRT (TFLite): runs .tflite on CPU with or without the XNNPACK delegate; INT8 as full-integer TFLite.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelport.backends import register_backend
from modelport.backends.base import Backend
from modelport.backends.runner import EngineSetting, Precision, Runner, RunnerInfo, RunnerOptions
from modelport.backends.trace import Trace, TracedOp, TraceUnavailable
from modelport.errors import InferenceError, ModelLoadError, RuntimeUnavailable, first_line, optional_import
from modelport.formats import Format, sniff_format
from modelport.inputs import TensorSpec

log = logging.getLogger(__name__)


def import_litert_interpreter() -> Any:
    """The ``ai_edge_litert.interpreter`` module, or RuntimeUnavailable naming the extra."""
    return optional_import("ai_edge_litert.interpreter", extra="tflite", what="LiteRT (ai-edge-litert)")


def litert_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-litert")
    except PackageNotFoundError:  # pragma: no cover - the import above succeeded
        return "unknown"


class LiteRTRunner(Runner):
    """Runs a ``.tflite`` file in the LiteRT interpreter.

    Args:
        model: the .tflite file.
        options: ``threads`` sets the interpreter's ``num_threads`` (None: LiteRT's default); device "cpu" only.
            The precision is the model's own: an fp16 TFLite model stores fp16 weights that LiteRT
            dequantizes and runs in fp32, int8 models run int8 kernels.
        xnnpack: False runs the built-in kernels without the default XNNPACK delegate.
    """

    name = "litert"
    ENGINE_SETTINGS = (EngineSetting("xnnpack", ("on", "off"), doc="LiteRT's default XNNPACK CPU delegate"),)

    def __init__(
        self, model: str | Path, options: RunnerOptions | None = None, *, xnnpack: bool = True, loader: Any = None
    ) -> None:
        super().__init__(model, options, loader=loader)
        self.xnnpack = self.engine["xnnpack"] == "on" if "xnnpack" in self.engine else xnnpack

    def load(self) -> None:
        import_litert_interpreter()
        if self.options.device.lower() != "cpu":
            raise RuntimeUnavailable(
                f"the LiteRT runner runs on cpu, not {self.options.device!r}", hint="use --device cpu"
            )
        fmt = sniff_format(self.model_path)
        if fmt is not Format.TFLITE:
            raise ModelLoadError(
                f"LiteRT runs .tflite models, this is {fmt.value}",
                path=self.model_path,
                hint="convert it first with `modelport convert --to tflite`",
            )
        self._fallback = ""
        self._unallocated = False
        try:
            self._interp = self._build(self.xnnpack)
        except (RuntimeError, ValueError) as exc:
            if not (self.xnnpack and _delegate_failed(exc)):
                raise load_error(exc, self.model_path) from exc
            self._without_delegate(exc)
        self._in_details = self._interp.get_input_details()
        self._out_details = self._interp.get_output_details()  # in the graph's output order
        in_names, out_names = _signature_names(self._interp)
        self._inputs = [
            TensorSpec(in_names.get(d["index"], d["name"]), np.dtype(d["dtype"]).name, _shape(d))
            for d in self._in_details
        ]
        self._outputs = [out_names.get(d["index"], d["name"]) for d in self._out_details]
        self._index = {spec.name: d["index"] for spec, d in zip(self._inputs, self._in_details, strict=True)}
        self._current = {d["index"]: tuple(int(s) for s in d["shape"]) for d in self._in_details}

    def _build(self, xnnpack: bool) -> Any:
        """An interpreter with its tensors allocated; XNNPACK on (the default delegates) or off.

        A model with dynamic inputs whose stored placeholder shape cannot be allocated (a [1, 1] audio input in front
        of a convolution wider than one sample) is left unallocated: :meth:`_invoke` allocates it at the first
        feeds' shapes, and a size the model refuses is then an InferenceError the caller can retry with others."""
        interp_mod = import_litert_interpreter()
        resolver = (
            interp_mod.OpResolverType.AUTO if xnnpack else interp_mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        interp = interp_mod.Interpreter(
            model_path=str(self.model_path), num_threads=self.options.threads, experimental_op_resolver_type=resolver
        )
        try:
            interp.allocate_tensors()
        except (RuntimeError, ValueError):
            if not any(-1 in d.get("shape_signature", ()) for d in interp.get_input_details()):
                raise
            self._unallocated = True
        return interp

    def _without_delegate(self, exc: BaseException) -> None:
        """XNNPACK could not prepare this graph (dynamic reshapes, ops it lacks): run on LiteRT's own kernels and
        say so in :meth:`info`, as the interpreter itself can run what the delegate refuses."""
        self._fallback = first_line(exc, limit=160)
        log.warning(
            "%s: XNNPACK failed to prepare the graph; running without it (%s)", self.model_path.name, self._fallback
        )
        try:
            self._interp = self._build(xnnpack=False)
        except (RuntimeError, ValueError) as exc2:
            raise load_error(exc2, self.model_path) from exc2
        self._current = {d["index"]: tuple(int(s) for s in d["shape"]) for d in self._interp.get_input_details()}

    def close(self) -> None:
        self._interp = None

    def quantization(self) -> dict[str, tuple[float, int]]:
        """``(scale, zero_point)`` of every quantized input and output by name (float tensors are left out)."""
        result: dict[str, tuple[float, int]] = {}
        pairs = [*zip([s.name for s in self._inputs], self._in_details, strict=True)]
        pairs += list(zip(self._outputs, self._out_details, strict=True))
        for name, d in pairs:
            scale, zero = d["quantization"]
            if scale:
                result[name] = (float(scale), int(zero))
        return result

    def info(self) -> RunnerInfo:
        return RunnerInfo(
            runtime=self.name,
            version=litert_version(),
            device="cpu",
            requested_precision=self.options.precision.value,
            executed_precision=_executed_precision(self._interp),
            threads=self.options.threads,
            details=(("xnnpack", _xnnpack_state(self.xnnpack, self._fallback)), *self.config_details()),
        )

    def _run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self._invoke(feeds)
        except (RuntimeError, ValueError) as exc:
            if self.xnnpack and not self._fallback and _delegate_failed(exc):
                self._without_delegate(exc)  # a new input shape XNNPACK cannot reshape to
                try:
                    return self._invoke(feeds)
                except (RuntimeError, ValueError) as exc2:
                    exc = exc2
            raise InferenceError(f"LiteRT failed: {first_line(exc)}", path=self.model_path) from exc

    def _invoke(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        interp = self._interp
        resized = False
        for name, index in self._index.items():
            arr = feeds[name]
            if self._current[index] != arr.shape:
                interp.resize_tensor_input(index, list(arr.shape), strict=True)
                self._current[index] = tuple(arr.shape)
                resized = True
        if resized or self._unallocated:
            interp.allocate_tensors()
            self._unallocated = False
        for name, index in self._index.items():
            interp.set_tensor(index, np.ascontiguousarray(feeds[name]))
        interp.invoke()
        return [interp.get_tensor(d["index"]) for d in self._out_details]


def load_error(exc: BaseException, path: Path) -> ModelLoadError:
    """LiteRT's failure to open a .tflite file as one error (a file its flatbuffer verifier rejects: truncated or
    corrupt). For every reader of TFLite files (the runner, the converters that open the source with LiteRT)."""
    if "not a valid flatbuffer" in str(exc).lower():
        return ModelLoadError(
            "LiteRT cannot load the model: not a valid TFLite flatbuffer (truncated or corrupt)",
            path=path,
            hint="export or download the model again",
        )
    return ModelLoadError(f"LiteRT cannot load the model: {first_line(exc)}", path=path)


def _delegate_failed(exc: BaseException) -> bool:
    """Whether LiteRT's error is the XNNPACK delegate refusing the graph ("… delegate failed to prepare")."""
    text = str(exc).lower()
    return "delegate" in text and ("failed to prepare" in text or "failed to reshape" in text or "xnnpack" in text)


def _xnnpack_state(asked: bool, fallback: str) -> str:
    if not asked:
        return "off"
    return f"off: failed to prepare ({fallback})" if fallback else "on"


class LiteRTNoXnnpackRunner(LiteRTRunner):
    """:class:`LiteRTRunner` with the XNNPACK delegate off (LiteRT's built-in kernels only)."""

    name = "litert-noxnnpack"

    def __init__(self, model: str | Path, options: RunnerOptions | None = None, *, loader: Any = None) -> None:
        super().__init__(model, options, xnnpack=False, loader=loader)


def _shape(detail: Mapping[str, Any]) -> tuple[int | None, ...]:
    sig = detail.get("shape_signature")
    dims = sig if sig is not None and len(sig) == len(detail["shape"]) else detail["shape"]
    return tuple(None if int(d) < 0 else int(d) for d in dims)


def _signature_names(interp: Any) -> tuple[dict[int, str], dict[int, str]]:
    """Tensor index → signature key for the inputs and outputs of a single-signature model (else empty)."""
    try:
        signatures = interp._get_full_signature_list()
    except AttributeError:  # pragma: no cover - older interpreters
        return {}, {}
    if len(signatures) != 1:
        return {}, {}
    (sig,) = signatures.values()
    return (
        {int(i): k for k, i in sig.get("inputs", {}).items()},
        {int(i): k for k, i in sig.get("outputs", {}).items()},
    )


def _executed_precision(interp: Any) -> str:
    """int8 when the model holds quantized weights, fp16 when its weights are fp16 (run in fp32), else fp32."""
    kinds: set[str] = set()
    for t in interp.get_tensor_details():
        dt = np.dtype(t["dtype"])
        if dt in (np.int8, np.uint8) and t["quantization"][0]:
            kinds.add("int8")
        elif dt == np.float16:
            kinds.add("fp16")
    if "int8" in kinds:
        return Precision.INT8.value
    return "fp16-weights+fp32" if "fp16" in kinds else Precision.FP32.value


def probe() -> tuple[str, tuple[str, ...]]:
    """The engine's version and the devices it sees here (imports the engine; RuntimeUnavailable without it)."""
    import_litert_interpreter()
    return str(importlib.metadata.version("ai-edge-litert")), ("cpu",)


# ---------------------------------------------------------------------------------------------------
# Tracing: the interpreter keeps every tensor


def trace_litert(model: Path, feeds: Mapping[str, np.ndarray], options: RunnerOptions | None = None) -> Trace:
    """Run a .tflite file once with every op output kept (see :mod:`modelport.backends.trace`).

    The interpreter runs with ``experimental_preserve_all_tensors`` and LiteRT's built-in kernels (a delegate would
    fuse ops and keep only its partition's outputs). Every op output with values (not a resource handle) is read back,
    in execution order, and a quantized one (int8 with a scale and zero point) is dequantized, per channel where the
    model quantizes per channel: ``x = (q − zero_point) · scale``, so an int8 model's tensors compare with a float
    model's. Tensors are
    named by their TFLite names; a single-signature model's input and output tensors have their signature keys as
    aliases. Feeds are taken by signature key or tensor name; a float feed of an int8 input is quantized
    (``q = round(x / scale) + zero_point``, clipped to the type's range).

    Raises:
        ModelLoadError: not a TFLite model, or LiteRT cannot load it.
        TraceUnavailable: a custom op only a delegate implements (MediaPipe's ``Convolution2DTransposeBias``).
        InvalidInputError: a model input without a feed.
        InferenceError: the run failed.
    """
    interp_mod = import_litert_interpreter()
    opts = options or RunnerOptions()
    if sniff_format(model) is not Format.TFLITE:
        raise ModelLoadError(
            "LiteRT traces .tflite models", path=model, hint="convert it first with `modelport convert`"
        )
    try:
        with warnings.catch_warnings():  # LiteRT warns that keeping every tensor costs memory: that is the point
            warnings.simplefilter("ignore", UserWarning)
            interp = interp_mod.Interpreter(
                model_path=str(model),
                num_threads=opts.threads,
                experimental_op_resolver_type=interp_mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                experimental_preserve_all_tensors=True,
            )
    except (RuntimeError, ValueError) as exc:
        raise load_error(exc, model) from exc
    in_keys, out_keys = _signature_names(interp)
    inputs = _trace_feeds(interp, in_keys, feeds, model)
    try:
        for index, value in inputs.items():
            interp.resize_tensor_input(index, list(value.shape), strict=False)
        interp.allocate_tensors()
        for index, value in inputs.items():
            interp.set_tensor(index, value)
        interp.invoke()
    except (RuntimeError, ValueError) as exc:
        if "unresolved custom op" in str(exc).lower():  # only a delegate (XNNPACK) implements it: no per-op values
            raise TraceUnavailable(
                f"LiteRT cannot keep every tensor of this model: {first_line(exc)}",
                path=model,
                hint="the op runs only inside a delegate, which fuses the graph; use --bisect",
            ) from exc
        raise InferenceError(f"LiteRT failed: {first_line(exc)}", path=model) from exc
    details = {int(t["index"]): t for t in interp.get_tensor_details()}
    ops, tensors = _traced_ops(interp, details)
    keys = {**in_keys, **out_keys}
    aliases = {details[i]["name"]: (key,) for i, key in keys.items() if key != details[i]["name"]}
    mapped, fused = mapped_names(list(tensors), read_tensor_map(model))
    for name, more in mapped.items():
        aliases[name] = (*aliases.get(name, ()), *more)
    return Trace(
        runtime="litert",
        model=Path(model),
        ops=ops,
        tensors=tensors,
        inputs={details[i]["name"]: dequantize(v, details[i]) for i, v in inputs.items()},
        outputs=tuple(d["name"] for d in interp.get_output_details()),
        aliases=aliases,
        fused=fused,
    )


#: the metadata entry of a .tflite file that holds the converter's tensor-name map as JSON (:class:`TensorMap`)
TENSOR_MAP_METADATA = "modelport.tensor_map"


@dataclasses.dataclass(frozen=True)
class TensorMap:
    """What a converter recorded about the names of a TFLite model's tensors (onnx2tf through modelport).

    Attributes:
        tensors: source tensor name → the name of the layer whose output holds its value, in the source's graph
            order.
        layers: every layer name of the converter's model in its topological order (empty: not recorded).
    """

    tensors: Mapping[str, str]
    layers: tuple[str, ...] = ()


def read_tensor_map(model: Path) -> TensorMap | None:
    """The :class:`TensorMap` a conversion stored in ``model``'s metadata (:data:`TENSOR_MAP_METADATA`) or in a
    ``<file>.tensormap.json`` beside it; None when there is none or it cannot be read."""
    import json

    sidecar = model.with_name(model.name + ".tensormap.json")
    try:
        raw = _metadata(model.read_bytes(), TENSOR_MAP_METADATA)
        if raw is None and sidecar.is_file():
            raw = sidecar.read_bytes()
        data = json.loads(raw) if raw else None
    except (OSError, ValueError, RuntimeUnavailable) as exc:
        log.debug("%s: no tensor map (%s)", model.name, first_line(exc))
        return None
    if not isinstance(data, dict) or not isinstance(data.get("tensors"), dict):
        return None
    tensors = {str(k): v for k, v in data["tensors"].items() if isinstance(v, str)}
    layers = data.get("layers")
    return TensorMap(tensors, tuple(str(n) for n in layers) if isinstance(layers, list) else ())


def write_tensor_map(model: Path, tensor_map: TensorMap) -> None:
    """Store ``tensor_map`` as JSON in the metadata entry :data:`TENSOR_MAP_METADATA` of the .tflite file ``model``,
    in place (replacing an earlier one; the caller writes a staging file and commits it atomically)."""
    import json

    flatbuffer_utils = optional_import("ai_edge_litert.tools.flatbuffer_utils", extra="tflite", what="LiteRT")
    from ai_edge_litert import schema_py_generated as schema

    text = json.dumps({"tensors": dict(tensor_map.tensors), "layers": list(tensor_map.layers)})  # order kept
    fb = flatbuffer_utils.read_model(str(model))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(text.encode(), dtype=np.uint8).copy()
    fb.buffers = [*(fb.buffers or []), buffer]
    names = (TENSOR_MAP_METADATA, TENSOR_MAP_METADATA.encode())
    entry = schema.MetadataT()
    entry.name, entry.buffer = TENSOR_MAP_METADATA, len(fb.buffers) - 1
    fb.metadata = [*(m for m in (fb.metadata or []) if (m.name or b"") not in names), entry]
    staged = model.with_name(model.name + ".map-tmp")  # the model is replaced whole or not at all
    try:
        flatbuffer_utils.write_model(fb, str(staged))
        staged.replace(model)
    finally:
        staged.unlink(missing_ok=True)


def _metadata(data: bytes, name: str) -> bytes | None:
    """The bytes of the metadata entry ``name`` of a TFLite flatbuffer (None: no such entry)."""
    import_litert_interpreter()
    from ai_edge_litert import schema_py_generated as schema

    root = schema.Model.GetRootAs(data, 0)
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if entry.Name() is None or entry.Name().decode("utf-8", "replace") != name:
            continue
        buffer = root.Buffers(entry.Buffer())
        if buffer is None:
            return None
        if buffer.DataLength():
            return bytes(buffer.DataAsNumpy().tobytes())
        offset, size = int(buffer.Offset()), int(buffer.Size())  # a model > 2 GB keeps buffers after the flatbuffer
        return data[offset : offset + size] if offset > 1 and size else None
    return None


def mapped_names(
    tensors: Sequence[str], tensor_map: TensorMap | None
) -> tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Source names for TFLite tensors through a converter's :class:`TensorMap`.

    A TFLite tensor is named ``<model>/<layer>/<op>``, or several such names ``;``-joined where the TFLite converter
    fused ops, in no reliable order (a Conv fused with its Relu lists the Relu first, a FULLY_CONNECTED with its bias
    lists the MatMul first). Its value is the output of the listed layer that comes **last in the layer order**
    (the end of the fused chain). When source tensors map to that layer, the last of them in the source's order is
    the tensor's alias (onnx2tf may give an earlier source tensor the layer of a later op it merged it with), and the
    source tensors of the other listed layers were fused into it; when none does, the tensor is an intermediate of
    one source op (onnx2tf's HardSigmoid is a Mul, an Add and a clip) and gets no source name. A source name that
    several TFLite tensors resolve to goes to the last of them in execution order. Without a recorded layer order,
    the last listed source tensor in the source's order stands for the end of the chain.

    Returns:
        (tensor → aliases, tensor → fused source names), for the tensor names ``tensors`` (in execution order).
    """
    if tensor_map is None or not tensor_map.tensors:
        return {}, {}
    order = {source: i for i, source in enumerate(tensor_map.tensors)}
    depth = {layer: i for i, layer in enumerate(tensor_map.layers)}
    by_layer: dict[str, list[str]] = {}
    for source, layer in tensor_map.tensors.items():
        by_layer.setdefault(layer, []).append(source)
    holder: dict[str, str] = {}  # source name → the last TFLite tensor that resolves to it
    chains: dict[str, list[str]] = {}
    for name in tensors:
        listed = set(_layers(name, depth or by_layer))
        chain = sorted({s for layer in listed for s in by_layer.get(layer, ())}, key=order.__getitem__)
        if depth and listed:
            last = max(listed, key=depth.__getitem__)
            if last not in by_layer:  # an intermediate of one source op
                continue
            own = by_layer[last][-1]  # the last layer's last source tensor ends the chain
            chain = [s for s in chain if s != own] + [own]
        if chain:
            chains[name] = chain
            holder[chain[-1]] = name
    aliases: dict[str, tuple[str, ...]] = {}
    fused: dict[str, tuple[str, ...]] = {}
    for name, chain in chains.items():
        if holder[chain[-1]] == name:
            aliases[name] = (chain[-1],)
            if len(chain) > 1:
                fused[name] = tuple(chain[:-1])
    return aliases, fused


def _layers(name: str, known: Mapping[str, Any]) -> list[str]:
    """The known layer names in a (``;``-joined) TFLite tensor name, in order: the part after the model's name in
    each ``<model>/<layer>/<op>…`` segment, or the whole segment (inputs and outputs keep their source names)."""
    found = []
    for segment in name.split(";"):
        parts = segment.split("/")
        if segment in known:
            found.append(segment)
        elif len(parts) >= 2 and parts[1] in known:
            found.append(parts[1])
    return found


def _traced_ops(
    interp: Any, details: Mapping[int, Mapping[str, Any]]
) -> tuple[tuple[TracedOp, ...], dict[str, np.ndarray]]:
    """The invoked interpreter's ops in execution order (named ``<BUILTIN>#<index>``: TFLite ops have no names) and
    every op output's value, dequantized, by tensor name."""
    ops: list[TracedOp] = []
    tensors: dict[str, np.ndarray] = {}
    for op in interp._get_ops_details():
        outs = [int(i) for i in op["outputs"] if int(i) >= 0]
        ops.append(
            TracedOp(
                name=f"{op['op_name']}#{op['index']}",
                op_type=str(op["op_name"]),
                inputs=tuple(details[int(i)]["name"] for i in op["inputs"] if int(i) >= 0),
                outputs=tuple(details[i]["name"] for i in outs),
            )
        )
        for i in outs:
            if np.dtype(details[i]["dtype"]).kind == "O":  # a resource handle (VAR_HANDLE) or string: no values
                continue
            try:
                value = interp.get_tensor(i)
            except ValueError as exc:  # a tensor LiteRT cannot hand back (a variant, an unallocated one)
                log.debug("%s: not captured (%s)", details[i]["name"], first_line(exc))
                continue
            tensors.setdefault(details[i]["name"], dequantize(value, details[i]))
    return tuple(ops), tensors


def _trace_feeds(
    interp: Any, keys: Mapping[int, str], feeds: Mapping[str, np.ndarray], model: Path
) -> dict[int, np.ndarray]:
    """Input tensor index → the array to set: the feed by signature key or tensor name, quantized when the input is
    an integer tensor with a scale and the feed is float."""
    from modelport.errors import InvalidInputError

    out: dict[int, np.ndarray] = {}
    for d in interp.get_input_details():
        index = int(d["index"])
        names = [n for n in (keys.get(index), d["name"]) if n]
        feed = next((feeds[n] for n in names if n in feeds), None)
        if feed is None:
            raise InvalidInputError(f"no feed for input {names[0]!r}", path=model, hint=f"feeds given: {sorted(feeds)}")
        arr, dtype = np.asarray(feed), np.dtype(d["dtype"])
        scale, zero = d["quantization"]
        if scale and np.issubdtype(dtype, np.integer) and np.issubdtype(arr.dtype, np.floating):
            info = np.iinfo(dtype)
            arr = np.clip(np.round(arr / scale) + zero, info.min, info.max)
        out[index] = np.ascontiguousarray(arr.astype(dtype, copy=False))
    return out


def dequantize(value: np.ndarray, detail: Mapping[str, Any]) -> np.ndarray:
    """A tensor's float value: ``(q − zero_point) · scale`` for a quantized integer tensor (per channel along its
    ``quantized_dimension`` when it has several scales), a copy of it unchanged otherwise."""
    params = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", ()), dtype=np.float32)
    if not scales.size or not np.issubdtype(value.dtype, np.integer):
        return np.array(value, copy=True)
    zeros = np.asarray(params.get("zero_points", ()), dtype=np.float32)
    zeros = zeros if zeros.size == scales.size else np.zeros_like(scales)
    if scales.size > 1 and value.ndim:
        shape = [1] * value.ndim
        shape[int(params.get("quantized_dimension", 0))] = scales.size
        scales, zeros = scales.reshape(shape), zeros.reshape(shape)
    return ((value.astype(np.float32) - zeros) * scales).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# The descriptor

F32, F16, BF16, I8 = Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8

BACKEND = register_backend(
    Backend(
        name="litert",
        aliases=("tflite", "lite"),
        formats=(Format.TFLITE,),
        precisions=(("cpu", (F32, F16, I8)),),
        runner="modelport.backends.litert:LiteRTRunner",
        extra="tflite",
        inspector="modelport.inspection.tflite:inspect_tflite",
        tracer="modelport.backends.litert:trace_litert",
        probe="modelport.backends.litert:probe",
        engine="ai_edge_litert",
        quantizer="modelport.quantization.tflite",
        quantize_sources=(Format.ONNX, Format.SAVED_MODEL, Format.KERAS),
    )
)

NO_XNNPACK = register_backend(
    Backend(
        name="litert-noxnnpack",
        aliases=(),
        formats=(Format.TFLITE,),
        precisions=(("cpu", (F32, F16, I8)),),
        runner="modelport.backends.litert:LiteRTNoXnnpackRunner",
        extra="tflite",
        engine="ai_edge_litert",
        tracer="modelport.backends.litert:trace_litert",
    )
)
