"""OpenVINO runner: CPU (and GPU when the plugin sees one), with the execution precision set explicitly.

OpenVINO's CPU plugin defaults ``INFERENCE_PRECISION_HINT`` to bf16 on CPUs with AVX512-BF16 or AMX, which
changes numerics silently. By default this runner sets the hint from the requested precision and reports the
precision the compiled model actually executes in.

Engine settings (``RunnerOptions.engine``, OpenVINO's property names): ``PERFORMANCE_HINT`` LATENCY (the default
here) or THROUGHPUT; ``NUM_STREAMS`` a count or AUTO; ``INFERENCE_PRECISION_HINT`` f32, bf16, f16 or ``none``: set
no precision hint and let the plugin choose (bf16 on AMX/AVX512-BF16 CPUs), which is what INT8 IRs want — their
float parts then run in the plugin's fastest precision, and the executed precision read back says which.

Backend: OpenVINO: runs its IR (and ONNX) on CPU and Intel GPUs; INT8 through NNCF. fp16 IRs hold compressed weights and
compute at f32 on CPU.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.backends import register_backend
from modelport.backends.base import Backend
from modelport.backends.runner import EngineSetting, Precision, Runner, RunnerInfo, RunnerOptions
from modelport.backends.trace import Trace, TracedOp
from modelport.errors import InferenceError, ModelLoadError, RuntimeUnavailable, optional_import
from modelport.formats import Format, sniff_format
from modelport.inputs import TensorSpec

_HINTS = {Precision.FP32: "f32", Precision.FP16: "f16", Precision.BF16: "bf16"}
_EXECUTED = {
    "f32": "fp32",
    "f16": "fp16",
    "bf16": "bf16",
    "float32": "fp32",
    "float16": "fp16",
    "bfloat16": "bf16",
}


def import_openvino() -> Any:
    """Import openvino or raise RuntimeUnavailable naming the extra.

    OpenVINO's converter sends usage telemetry over the network from helper processes unless ``openvino_telemetry``
    is missing (then it uses its built-in no-op); modelport makes it missing: no network at run time, no child
    processes printing tracebacks on Ctrl-C, and ``convert_model`` ~1 s faster.
    """
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    return optional_import("openvino", extra="openvino", what="OpenVINO")


_SOURCE_LOCATION = re.compile(r"^(Exception from|Check '.*' failed at) \S+:\d+:?$")


#: the summary line of OpenVINO's frontends when ops have no conversion rule (names as ``domain.Type``)
_NO_RULE = re.compile(r"No conversion rule found for operations:\s*(.+)")


def unconverted_ops(exc: BaseException) -> tuple[str, ...]:
    """The op types an OpenVINO frontend said it has no conversion rule for (``com.example.Op``, ``Erf`` …)."""
    found = _NO_RULE.search(str(exc))
    return tuple(op.strip() for op in found.group(1).split(",") if op.strip()) if found else ()


def _input_name(port: Any) -> str:
    """An input's name: its Parameter's own name when the tensor has several (an ONNX input that feeds a Cast is
    also called ``/Cast_1_output_0``, and ``get_any_name`` may pick that one), else the only one."""
    names = port.get_names()
    own = port.get_node().get_friendly_name()
    return own if own in names else port.get_any_name()


def error_text(exc: BaseException) -> str:
    """The first informative line of an OpenVINO exception (skipping its "Exception from file.cpp:84:" lines); for
    ops a frontend cannot convert, the line naming them (the first line only says "OpConversionFailure")."""
    ops = unconverted_ops(exc)
    if ops:
        return f"no conversion rule for op(s) {', '.join(ops)}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not _SOURCE_LOCATION.match(line)]
    return (useful or lines or [type(exc).__name__])[0]


def read_ir(core: Any, path: Path) -> Any:
    """``core.read_model`` with a damaged file's error as :class:`ModelLoadError` (one line, naming the file).

    OpenVINO's IR reader raises ``RuntimeError`` for malformed XML, bad attributes, edges to missing layers, a .bin
    too short for its constants, and shapes its ops reject; every one of those is a file that cannot be read.
    """
    try:
        return core.read_model(str(path))
    except (RuntimeError, ValueError, TypeError, IndexError, OverflowError) as exc:
        is_ir = Path(path).suffix.lower() == ".xml"
        hint = (
            "an IR is its .xml with the matching .bin beside it; re-export it if either is damaged" if is_ir else None
        )
        raise ModelLoadError(f"OpenVINO cannot read the model: {error_text(exc)}", path=path, hint=hint) from exc


#: the highest opset version OpenVINO's ONNX frontend is given: it looks up each node's converter by counting down
#: from the model's opset (about 0.2 µs per version and node: opset 2^31 − 1 runs for many minutes)
MAX_ONNX_OPSET = 1000


def check_onnx_opsets(proto: Any, path: Path) -> None:
    """Raise :class:`ModelLoadError` for an opset version no ONNX release has (negative or above
    :data:`MAX_ONNX_OPSET`): a damaged file, on which OpenVINO's frontend would not return."""
    for opset in proto.opset_import:
        if not 0 <= int(opset.version) <= MAX_ONNX_OPSET:
            domain = opset.domain or "ai.onnx"
            raise ModelLoadError(
                f"opset {domain} {opset.version} is not a version any ONNX release defines (the file is damaged?)",
                path=path,
                hint="re-export the model, or set its opset with `modelport edit set-opset`",
            )


def ov_type_name(element_type: Any) -> str:
    """numpy dtype name of an OpenVINO element type."""
    return str(np.dtype(element_type.to_dtype()))


class OpenVINORunner(Runner):
    """Runs an OpenVINO IR (.xml + .bin) or an .onnx file with OpenVINO.

    Precision: fp32 → hint f32, bf16 → hint bf16, fp16 → hint f16 (the CPU plugin runs f16 only where the ISA
    has it, otherwise f32: the executed precision says which). int8 models run their quantized ops with an
    f32 hint for the rest.
    """

    name = "openvino"
    ENGINE_SETTINGS = (
        EngineSetting("PERFORMANCE_HINT", ("LATENCY", "THROUGHPUT"), doc="tune for one or many requests"),
        EngineSetting("NUM_STREAMS", ("AUTO",), integer=True, doc="parallel execution streams"),
        EngineSetting(
            "INFERENCE_PRECISION_HINT", ("f32", "bf16", "f16", "none"), doc="float precision; none: the plugin's choice"
        ),
    )

    def load(self) -> None:
        ov = import_openvino()
        core = ov.Core()
        device = self.options.device.upper()
        if device not in core.available_devices and device not in {"AUTO", "MULTI", "HETERO"}:
            raise RuntimeUnavailable(
                f"OpenVINO has no device {device} here (available: {', '.join(core.available_devices)})",
                hint="use --device cpu",
            )
        # missing, empty, not a model or a broken ONNX file: a clear error before OpenVINO's frontends (which try
        # every format in turn and log each failure to stderr)
        if sniff_format(self.model_path) is Format.ONNX:
            from modelport.model_io import load_proto

            check_onnx_opsets(load_proto(self.model_path, check=False, load_external_data=False), self.model_path)
        config = self._config(core, device)
        try:
            model = read_ir(core, self.model_path)
            self._compiled = core.compile_model(model, device, config)
        except RuntimeError as exc:
            raise ModelLoadError(f"OpenVINO cannot load the model: {error_text(exc)}", path=self.model_path) from exc
        self._request = self._compiled.create_infer_request()
        self._inputs = [
            TensorSpec(_input_name(p), ov_type_name(p.get_element_type()), _shape(p.get_partial_shape()))
            for p in self._compiled.inputs
        ]
        self._outputs = [p.get_any_name() for p in self._compiled.outputs]
        executed = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        name = executed.get_type_name() if hasattr(executed, "get_type_name") else str(executed)
        self._executed = _EXECUTED.get(name.lower(), name)
        if self.options.precision is Precision.INT8:
            self._executed = f"int8+{self._executed}"
        self._version = ov.get_version()
        known = device in core.available_devices
        self._device_name = str(core.get_property(device, "FULL_DEVICE_NAME")) if known else device
        self._threads = int(self._compiled.get_property("INFERENCE_NUM_THREADS"))
        self._applied = _applied(self._compiled, config)

    def _config(self, core: Any, device: str) -> dict[str, Any]:
        """The compile config: the engine settings over the defaults (LATENCY, the hint of the precision)."""
        engine = self.engine
        config: dict[str, Any] = {"PERFORMANCE_HINT": engine.get("PERFORMANCE_HINT", "LATENCY")}
        if "NUM_STREAMS" in engine:
            streams = engine["NUM_STREAMS"]
            config["NUM_STREAMS"] = int(streams) if streams.isdigit() else streams
        hint = engine.get("INFERENCE_PRECISION_HINT") or _HINTS.get(self.options.precision, "f32")
        if hint == "f16" and device in core.available_devices and not _has_capability(core, device, "FP16"):
            hint = "f32"  # the CPU plugin would quietly run bf16 (coarser than asked) where the ISA lacks f16
        if hint != "none":
            config["INFERENCE_PRECISION_HINT"] = hint
        if self.options.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.options.threads)
        return config

    def close(self) -> None:
        self._request = None
        self._compiled = None

    def info(self) -> RunnerInfo:
        return RunnerInfo(
            runtime=self.name,
            version=self._version,
            device=self.options.device,
            requested_precision=self.options.precision.value,
            executed_precision=self._executed,
            threads=self._threads,
            details=(
                ("device_name", self._device_name),
                ("inference_precision_hint", self._executed),
                *self._applied,
                *self.config_details(),
            ),
        )

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        # _run returns views into the request's output tensors; callers of infer keep the arrays.
        return {k: np.array(v, copy=True) for k, v in super().infer(feeds).items()}

    def _run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            self._request.infer(feeds)
        except RuntimeError as exc:
            raise InferenceError(f"OpenVINO failed: {error_text(exc)}", path=self.model_path) from exc
        return [self._request.get_output_tensor(i).data for i in range(len(self._outputs))]


def _applied(compiled: Any, config: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """What the engine settings came to, read back from the compiled model: the performance hint, the streams, and
    the precision hint as set (``none``: left to the plugin)."""
    return (
        ("performance_hint", _property(compiled, "PERFORMANCE_HINT")),
        ("num_streams", _property(compiled, "NUM_STREAMS")),
        ("precision_hint_set", str(config.get("INFERENCE_PRECISION_HINT", "none"))),
    )


def _property(compiled: Any, name: str) -> str:
    try:
        value = compiled.get_property(name)
    except RuntimeError:
        return "?"
    text = str(value)
    return text.rsplit(".", 1)[-1] if text.startswith("PerformanceMode.") else text


def _has_capability(core: Any, device: str, capability: str) -> bool:
    try:
        return capability in core.get_property(device, "OPTIMIZATION_CAPABILITIES")
    except RuntimeError:
        return False


def _shape(partial: Any) -> tuple[int | str | None, ...] | None:
    if partial.rank.is_dynamic:
        return None
    dims: list[int | str | None] = []
    for d in partial:
        dims.append(d.get_length() if d.is_static else None)
    return tuple(dims)


def probe() -> tuple[str, tuple[str, ...]]:
    """The engine's version and the devices it sees here (imports the engine; RuntimeUnavailable without it)."""
    m = import_openvino()
    return str(m.__version__), tuple(m.Core().available_devices)


# ---------------------------------------------------------------------------------------------------
# Tracing: a Result on every op output

#: op types whose outputs are not computed tensors (inputs, weights, the graph's own results)
_NOT_TRACED = frozenset({"Parameter", "Constant", "Result"})

#: OpenVINO's converter folds a constant Multiply/Add (a BatchNorm's scale) into the convolution or MatMul before it and
#: names the fused node after the folded op (``Multiply_5032``, a GroupConvolution), while its output may keep the
#: convolution's framework name: the value is no longer that tensor's, so such an output is not matched by name
_FOLDED = frozenset({"Multiply", "Add", "Subtract", "Divide"})
_FOLDS_INTO = frozenset(
    {"Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData", "GroupConvolutionBackpropData"}
)
_AUTO_NAME = re.compile(r"^(?P<type>[A-Za-z]+)_\d+$")


def trace_openvino(model: Path, feeds: Mapping[str, np.ndarray], options: RunnerOptions | None = None) -> Trace:
    """Run an OpenVINO IR or ONNX file once with every op output exposed (see :mod:`modelport.backends.trace`).

    Every output of every op but Parameter, Constant and Result gets a Result (``Model.add_outputs``); the model is
    compiled on CPU at ``INFERENCE_PRECISION_HINT=f32`` so values compare with a float reference. A tensor is named
    by one of its framework names (ONNX names survive ``read_model`` and conversion to IR), its other names are its
    aliases; a tensor without names (an op OpenVINO's frontend added) is ``<op friendly name>:<port>``, and so is the
    output of a convolution an IR's converter folded a BatchNorm scale into (its kept name no longer fits its value).

    Raises:
        ModelLoadError: OpenVINO cannot read or compile the model.
        InferenceError: the run failed.
    """
    ov = import_openvino()
    opts = options or RunnerOptions()
    core = ov.Core()
    try:
        ov_model = core.read_model(str(model))
    except RuntimeError as exc:
        raise ModelLoadError(f"OpenVINO cannot read the model: {error_text(exc)}", path=model) from exc
    ordered = list(ov_model.get_ordered_ops())
    names = {_port_key(out): _tensor_name(out) for op in ordered for out in op.outputs()}
    aliases = {
        names[_port_key(out)]: tuple(sorted(_tensor_names(out) - {names[_port_key(out)]}))
        for op in ordered
        for out in op.outputs()
        if len(_tensor_names(out)) > 1
    }
    outputs = tuple(names[_port_key(r.input_value(0))] for r in ov_model.get_results())
    ops = tuple(_traced_op(op, names) for op in ordered if op.get_type_name() not in _NOT_TRACED)
    ov_model.add_outputs([out for op in ordered if op.get_type_name() not in _NOT_TRACED for out in op.outputs()])
    sources = [names[_port_key(r.input_value(0))] for r in ov_model.get_results()]  # compiled output order
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if opts.threads:
        config["INFERENCE_NUM_THREADS"] = int(opts.threads)
    try:
        request = core.compile_model(ov_model, "CPU", config).create_infer_request()
        request.infer(dict(feeds))
    except RuntimeError as exc:
        raise InferenceError(f"OpenVINO failed to run the traced model: {error_text(exc)}", path=model) from exc
    got = {name: np.array(request.get_output_tensor(i).data, copy=True) for i, name in enumerate(sources)}
    order = [name for op in ops for name in op.outputs if name in got]
    return Trace(
        runtime=OpenVINORunner.name,
        model=Path(model),
        ops=ops,
        tensors={name: got[name] for name in dict.fromkeys(order)},
        inputs={k: np.asarray(v) for k, v in feeds.items()},
        outputs=outputs,
        aliases=aliases,
        fused=_fused_names(ordered, names),
    )


def _fused_names(ordered: Any, names: Mapping[tuple[int, int], str]) -> dict[str, tuple[str, ...]]:
    """Op output → the friendly names of the source ops OpenVINO merged into its op (rt_info ``fused_names_0``,
    minus the op's own name), for the ops whose rt_info keeps it. OpenVINO 2026's ``convert_model``/``save_model``
    write none (checked on Conv+BatchNorm and Swish): the comparison then bounds fused tensors by the graph."""
    fused: dict[str, tuple[str, ...]] = {}
    for op in ordered:
        try:
            info = op.get_rt_info()
            if "fused_names_0" not in info:
                continue
            text = str(info["fused_names_0"].astype(str))
        except (RuntimeError, TypeError, AttributeError):
            continue
        merged = tuple(n for n in dict.fromkeys(text.split(",")) if n and n != op.get_friendly_name())
        if merged and op.get_output_size():
            fused[names[_port_key(op.output(0))]] = merged
    return fused


def _port_key(output: Any) -> tuple[int, int]:
    """An op output's identity: its node's instance id and the port index."""
    return int(output.get_node().get_instance_id()), int(output.get_index())


def _tensor_name(output: Any) -> str:
    """The tensor's name (one of its framework names), or ``<op friendly name>:<port>`` when it has none or when its
    names are stale (:func:`_folded`)."""
    if output.get_names() and not _folded(output.get_node()):
        return str(output.get_any_name())
    return f"{output.get_node().get_friendly_name()}:{output.get_index()}"


def _tensor_names(output: Any) -> set[str]:
    """The framework names of an op output that still name its value (none for a folded op, :func:`_folded`)."""
    return set() if _folded(output.get_node()) else set(output.get_names())


def _folded(node: Any) -> bool:
    """Whether ``node`` is a convolution or MatMul that a constant elementwise op was folded into (named after it)."""
    found = _AUTO_NAME.match(str(node.get_friendly_name()))
    return found is not None and found["type"] in _FOLDED and node.get_type_name() in _FOLDS_INTO


def _traced_op(op: Any, names: Mapping[tuple[int, int], str]) -> TracedOp:
    """One OpenVINO op: its friendly name, type, the tensors it reads and the ones it writes."""
    return TracedOp(
        name=str(op.get_friendly_name()),
        op_type=str(op.get_type_name()),
        inputs=tuple(names[_port_key(i.get_source_output())] for i in op.inputs()),
        outputs=tuple(names[_port_key(o)] for o in op.outputs()),
    )


# ---------------------------------------------------------------------------------------------------
# The descriptor

F32, F16, BF16, I8 = Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8

BACKEND = register_backend(
    Backend(
        name="openvino",
        aliases=("ov",),
        formats=(Format.OPENVINO_IR, Format.ONNX),
        precisions=(("cpu", (F32, F16, BF16, I8)), ("gpu", (F32, F16, I8))),
        runner="modelport.backends.openvino:OpenVINORunner",
        extra="openvino",
        inspector="modelport.inspection.openvino:inspect_openvino",
        tracer="modelport.backends.openvino:trace_openvino",
        probe="modelport.backends.openvino:probe",
        engine="openvino",
        weights_only=(F16,),
        quantizer="modelport.quantization.openvino",
        quantize_sources=(Format.ONNX, Format.OPENVINO_IR),
    )
)
