"""ONNX Runtime runner: CPU, plus the CUDA and TensorRT execution providers when present.

Backend: ONNX Runtime: runs ONNX on CPU (and CUDA / TensorRT execution providers); INT8 through its static/dynamic
quantizer.

Engine settings (``RunnerOptions.engine``, ``SessionOptions`` attribute names): ``execution_mode`` sequential
(ORT's default) or parallel (independent branches on the inter-op pool); ``inter_op_num_threads`` that pool's size.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.backends import register_backend
from modelport.backends.base import Backend
from modelport.backends.runner import EngineSetting, Precision, Runner, RunnerInfo, RunnerOptions
from modelport.backends.trace import Trace, TracedOp
from modelport.errors import InferenceError, ModelLoadError, RuntimeUnavailable, first_line, optional_import
from modelport.formats import Format, sniff_format
from modelport.inputs import TensorSpec

log = logging.getLogger(__name__)

_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(bfloat16)": "bfloat16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


def import_ort() -> Any:
    """Import onnxruntime or raise RuntimeUnavailable."""
    return optional_import("onnxruntime", extra="all", what="onnxruntime", hint="pip install onnxruntime")


class OnnxRuntimeRunner(Runner):
    """Runs an .onnx file in ONNX Runtime.

    The precision is the model's own (an fp16 target is an fp16 model); ``graph_optimization=False`` sets
    ORT_DISABLE_ALL so that tests measure modelport's passes, not ORT's.
    """

    name = "onnxruntime"
    ENGINE_SETTINGS = (
        EngineSetting("execution_mode", ("sequential", "parallel"), doc="run independent nodes in parallel"),
        EngineSetting("inter_op_num_threads", integer=True, doc="threads of the parallel mode's inter-op pool"),
    )

    def load(self) -> None:
        ort = import_ort()
        device = self.options.device.lower()
        if device not in _PROVIDERS:
            raise RuntimeUnavailable(
                f"onnxruntime has no device {device!r}", hint=f"choose from {', '.join(_PROVIDERS)}"
            )
        providers = _PROVIDERS[device]
        available = ort.get_available_providers()
        if providers[0] not in available:
            raise RuntimeUnavailable(
                f"onnxruntime here has no {providers[0]} (available: {', '.join(available)})",
                hint="install onnxruntime-gpu for CUDA/TensorRT, or use --device cpu",
            )
        so = ort.SessionOptions()
        so.log_severity_level = 4  # fatal only: ORT's own error lines would precede our one-line error
        parallel = self.engine.get("execution_mode") == "parallel"
        if self.options.threads:
            so.intra_op_num_threads = self.options.threads
            if not parallel:  # the inter-op pool only runs in parallel mode
                so.inter_op_num_threads = 1
        if parallel:
            so.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        if "inter_op_num_threads" in self.engine:
            so.inter_op_num_threads = int(self.engine["inter_op_num_threads"])
        if not self.options.graph_optimization:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        fmt = sniff_format(self.model_path)  # missing, empty or not a model: ModelLoadError
        if fmt is not Format.ONNX:
            raise ModelLoadError(
                f"onnxruntime runs ONNX models, this is {fmt.value}",
                path=self.model_path,
                hint="convert it first with `modelport convert`",
            )
        from modelport.model_guard import check_model_file

        try:  # ORT reads external data itself: vet locations and sizes first
            proto = check_model_file(self.model_path)
        except ModelLoadError as exc:
            raise ModelLoadError(
                f"onnxruntime cannot load the model: {exc.message}", path=self.model_path, hint=exc.hint
            ) from exc
        try:
            self._session = ort.InferenceSession(str(self.model_path), so, providers=providers)
        except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, …)
            raise _load_error(exc, self.model_path) from exc
        self._inputs = [
            TensorSpec(i.name, _ORT_TYPES.get(i.type, i.type), tuple(_dim(d) for d in i.shape))
            for i in self._session.get_inputs()
        ]
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._executed = model_precision(self.model_path, proto)
        self._ort_version = ort.__version__
        self._threads = self.options.threads
        applied = self._session.get_session_options()  # what the session runs with, read back
        parallel = applied.execution_mode == ort.ExecutionMode.ORT_PARALLEL
        self._applied = (
            ("execution_mode", "parallel" if parallel else "sequential"),
            ("inter_op_num_threads", str(applied.inter_op_num_threads or "default")),
        )

    def close(self) -> None:
        self._session = None

    def info(self) -> RunnerInfo:
        providers = self._session.get_providers()
        executed = self._executed
        return RunnerInfo(
            runtime=self.name,
            version=self._ort_version,
            device=self.options.device,
            requested_precision=self.options.precision.value,
            executed_precision=executed,
            threads=self._threads,
            details=(
                ("providers", ",".join(providers)),
                ("graph_optimization", "all" if self.options.graph_optimization else "disabled"),
                *self._applied,
                *self.config_details(),
            ),
        )

    def _run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return list(self._session.run(self._outputs, feeds))  # type: ignore[arg-type]
        except Exception as exc:
            first = first_line(exc)
            raise InferenceError(f"onnxruntime failed: {first}", path=self.model_path) from exc


#: ORT's load errors for a node whose op it does not know: ``domain:Type(since_version) is not a registered
#: function/op`` (custom domains), ``In Node, ("name", Type, "domain", -1) … No Op registered for Type`` (ONNX's)
_UNREGISTERED_OP = (
    re.compile(r"(?P<domain>[\w.]*):(?P<op>[\w.]+)\(-?\d+\) is not a registered function/op"),
    re.compile(r'In Node, \("[^"]*", (?P<op>[\w.]+), "(?P<domain>[^"]*)".*No Op registered for (?P=op)\b'),
)


def _load_error(exc: Exception, path: Path) -> ModelLoadError:
    """ONNX Runtime's load failure as one error; an op it does not know is named with its nodes and the cut to make."""
    found = next((m for m in (p.search(str(exc)) for p in _UNREGISTERED_OP) if m is not None), None)
    if found is None:
        return ModelLoadError(f"onnxruntime cannot load the model: {first_line(exc)}", path=path)
    from modelport.model_io import load_proto, op_use

    try:
        use = op_use(load_proto(path, check=False, load_external_data=False), found["op"], found["domain"])
    except ModelLoadError:  # unreadable after all: ORT's own words
        return ModelLoadError(f"onnxruntime cannot load the model: {first_line(exc)}", path=path)
    return ModelLoadError(f"onnxruntime has no implementation of {use.describe()}", path=path, hint=use.hint())


def _dim(d: object) -> int | str | None:
    if isinstance(d, int):
        return d
    if isinstance(d, str):
        return d
    return None


def model_precision(path: Path, proto: Any = None) -> str:
    """The precision an ONNX file computes in: int8 if it holds quantized ops, else the float type holding most weights.

    ORT runs exactly what the model holds, so this is what it executes. ``proto``: the model already parsed
    (without external data), to spare a second parse.
    """
    import onnx

    if proto is None:
        proto = onnx.load(str(path), load_external_data=False)
    if any(is_quantized_op(n.op_type) for n in proto.graph.node):
        return Precision.INT8.value
    sizes: dict[int, int] = {}
    for t in proto.graph.initializer:
        sizes[t.data_type] = sizes.get(t.data_type, 0) + int(np.prod(t.dims, dtype=np.int64))
    names: dict[int, Precision] = {
        onnx.TensorProto.FLOAT: Precision.FP32,
        onnx.TensorProto.FLOAT16: Precision.FP16,
        onnx.TensorProto.BFLOAT16: Precision.BF16,
    }
    floats = {k: v for k, v in sizes.items() if k in names}
    if not floats:
        return Precision.FP32.value
    return names[max(floats, key=lambda k: floats[k])].value


#: ONNX ops that compute on quantized integers (standard and com.microsoft): a model holding any runs in int8.
QUANT_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "ConvInteger",
        "MatMulInteger",
        "MatMulIntegerToFloat",
        "MatMulNBits",
        "QGemm",
        "QAttention",
    }
)
QUANT_PREFIXES = ("QLinear", "DynamicQuantize", "QOrdered")


def is_quantized_op(op_type: str) -> bool:
    """Whether an ONNX op computes on quantized integers (:data:`QUANT_OPS`, ``QLinear*`` …)."""
    return op_type in QUANT_OPS or op_type.startswith(QUANT_PREFIXES)


def probe() -> tuple[str, tuple[str, ...]]:
    """The engine's version and the devices it sees here (imports the engine; RuntimeUnavailable without it)."""
    m = import_ort()
    return str(m.__version__), tuple(m.get_available_providers())


# ---------------------------------------------------------------------------------------------------
# Tracing: every node output made a graph output


def trace_onnx(model: Path, feeds: Mapping[str, np.ndarray], options: RunnerOptions | None = None) -> Trace:
    """Run an ONNX model once with every node output of its main graph exposed (see :mod:`modelport.backends.trace`).

    Shape inference gives the outputs' element types; every node output with a known tensor type becomes a graph
    output (tensors inside If/Loop bodies are not exposed). ``Constant`` nodes stay in :attr:`Trace.ops` but their
    values are weights, like initializers, and are not captured (other runtimes do not trace weights either). ORT's
    graph optimizations are off, so the tensors are the graph's own, not those of fused kernels. Nameless nodes are
    named ``op_type#index``.

    Raises:
        ModelLoadError: not ONNX, unreadable, or ORT cannot load it.
        InferenceError: the run failed.
    """
    import onnx

    from modelport.model_io import load_proto

    opts = options or RunnerOptions()
    proto = load_proto(model, check=False, load_external_data=False)
    ops, typed = _onnx_ops(proto)
    outputs = tuple(o.name for o in proto.graph.output)
    exposed = [
        name for op in ops if op.op_type != "Constant" for name in op.outputs if name in typed and name not in outputs
    ]
    exposed = list(dict.fromkeys(exposed))
    for name in exposed:  # the type only: a shape inferred for other feeds must not constrain this run
        proto.graph.output.append(
            onnx.helper.make_tensor_value_info(name, typed[name].type.tensor_type.elem_type, None)
        )
    session = _trace_session(proto, model, opts)
    names = [o.name for o in session.get_outputs()]
    try:
        values = session.run(names, dict(feeds))
    except Exception as exc:  # ORT's own exception types
        raise InferenceError(f"onnxruntime failed: {first_line(exc)}", path=model) from exc
    got = dict(zip(names, values, strict=True))
    order = [name for op in ops for name in op.outputs if name in got]
    tensors = {name: np.asarray(got[name]) for name in dict.fromkeys(order)}
    return Trace(
        runtime=OnnxRuntimeRunner.name,
        model=Path(model),
        ops=ops,
        tensors=tensors,
        inputs={k: np.asarray(v) for k, v in feeds.items()},
        outputs=outputs,
    )


def _onnx_ops(proto: Any) -> tuple[tuple[TracedOp, ...], dict[str, Any]]:
    """The main graph's nodes as traced ops, and ``{tensor: ValueInfoProto}`` of every node output whose tensor
    element type is known after shape inference."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
    except Exception as exc:  # inference is best effort: the declared value_info still counts
        log.warning("shape inference failed (%s); exposing the tensors whose types the model declares", exc)
        inferred = proto
    graph = inferred.graph
    infos = {v.name: v for v in (*graph.value_info, *graph.output)}
    typed = {
        name: info
        for name, info in infos.items()
        if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type != onnx.TensorProto.UNDEFINED
    }
    ops = tuple(
        TracedOp(
            name=node.name or f"{node.op_type}#{i}",
            op_type=node.op_type,
            inputs=tuple(n for n in node.input if n),
            outputs=tuple(n for n in node.output if n),
        )
        for i, node in enumerate(proto.graph.node)
    )
    return ops, typed


def _trace_session(proto: Any, model: Path, options: RunnerOptions) -> Any:
    """An ORT CPU session of ``proto`` with graph optimizations off; external data is read from beside ``model``."""
    ort = import_ort()
    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if options.threads:
        so.intra_op_num_threads = options.threads
    so.add_session_config_entry("session.model_external_initializers_file_folder_path", str(Path(model).parent))
    try:
        return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, …)
        raise _load_error(exc, Path(model)) from exc


# ---------------------------------------------------------------------------------------------------
# The descriptor

F32, F16, BF16, I8 = Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8

BACKEND = register_backend(
    Backend(
        name="onnxruntime",
        aliases=("ort", "onnx"),
        formats=(Format.ONNX,),
        precisions=(("cpu", (F32, F16, I8)), ("cuda", (F32, F16, I8)), ("tensorrt", (F32, F16, I8))),
        runner="modelport.backends.onnxruntime:OnnxRuntimeRunner",
        extra="all",
        inspector="modelport.inspection.onnx_model:inspect_onnx",
        tracer="modelport.backends.onnxruntime:trace_onnx",
        probe="modelport.backends.onnxruntime:probe",
        engine="onnxruntime",
        quantizer="modelport.quantization.ort",
        quantize_sources=(Format.ONNX,),
    )
)
