"""LiteRT (TFLite) full-integer INT8 with a representative dataset, from ONNX (through onnx2tf) or SavedModel/Keras.

Route: ONNX → onnx2tf's SavedModel (inputs kept NCHW, so every variant takes the source's feeds and the same
calibration/evaluation samples) → TensorFlow's ``TFLiteConverter`` with the calibration samples as the
representative dataset and ``TFLITE_BUILTINS_INT8`` only: weights int8 symmetric per output channel,
activations int8 asymmetric per tensor, every op an int8 kernel (the conversion fails rather than leave float
ops). Inputs and outputs stay float (a QUANTIZE/DEQUANTIZE at each edge) unless ``int8_io`` asks for int8 ones,
as microcontroller and NPU deployments want; modelport then quantizes the feeds and dequantizes the outputs with
the model's own (scale, zero point) when it measures. The FP32 and FP16 variants come from the same SavedModel
with the same converter, so the comparison is between TFLite models on LiteRT.

onnx2tf runs through modelport's one entry point, :func:`modelport.conversion.onnx_tflite.run_onnx2tf` (a private
copy of the model, offline, and the failing ONNX op and node named in errors), with the ``zero-pad-maxpool`` pass
applied to that copy: onnx2tf pads MaxPool with −3.4e38, and calibrated, that tensor's scale (~1e36) wrecks the
INT8 model (XNNPACK refused resnet50); after a non-negative op, zero padding is exact (see
:mod:`modelport.passes.maxpool_padding`). Remaining degenerate ranges are caught by :func:`check_ranges`.

TensorFlow and onnx2tf run in child processes (:mod:`modelport.quantization._tflite_worker`,
:mod:`modelport.conversion._onnx2tf_worker`, one protocol: :mod:`modelport.conversion.worker`): they are slow to
import, print a lot, and keep process-wide state.
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from modelport.backends import open_runner
from modelport.backends.litert import LiteRTRunner
from modelport.backends.runner import Runner, RunnerInfo, RunnerOptions
from modelport.conversion.worker import DEFAULT_TIMEOUT_S, run_worker
from modelport.errors import ConversionError, InvalidInputError, RuntimeUnavailable, optional_import
from modelport.formats import Format, Precision, sniff_format
from modelport.inputs import TensorSpec
from modelport.model_io import atomic_files
from modelport.quantization.engine import Built, Job
from modelport.quantization.report import LayerSummary

if TYPE_CHECKING:
    from modelport.conversion.onnx_tflite import Onnx2tfOutput

log = logging.getLogger(__name__)

#: TFLite ops that carry weights: when their input is float they compute in float.
COMPUTE_OPS = frozenset(
    {"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL", "CONV_3D"}
)
QUANT_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})
INT_DTYPES = (np.int8, np.uint8, np.int16)


def source_specs(src: Path, threads: int | None = None) -> list[TensorSpec]:
    """The inputs every TFLite variant takes: the ONNX model's (kept NCHW) or the SavedModel/Keras signature's."""
    runtime = "onnxruntime" if sniff_format(src) is Format.ONNX else "tensorflow"
    with open_runner(runtime, src, RunnerOptions(threads=threads)) as runner:
        return list(runner.input_specs)


def check_ranges(path: Path, limit: float = 1e10) -> None:
    """ConversionError naming the tensor when calibration gave one a degenerate scale (LiteRT cannot run it)."""
    from modelport.backends.litert import import_litert_interpreter

    interp = import_litert_interpreter().Interpreter(model_path=str(path))
    for t in interp.get_tensor_details():
        scales = t["quantization_parameters"]["scales"]
        if len(scales) and float(np.max(scales)) > limit:
            scale = float(np.max(scales))
            raise ConversionError(
                f"INT8 tensor {t['name']!r} got a degenerate range (scale {scale:.3g}) from calibration",
                path=path,
                hint="an op fed by ±3.4e38 padding or constants (e.g. MaxPool padding on inputs that can be "
                "negative); calibrate on real data, or quantize for onnxruntime/openvino",
            )


#: The passes the copy onnx2tf converts gets first (exact rewrites that keep calibration ranges sane).
ONNX2TF_PASSES = ("zero-pad-maxpool",)


def _onnx_saved_model(src: Path, work: Path, specs: Sequence[TensorSpec]) -> Onnx2tfOutput:
    """onnx2tf's SavedModel of the ONNX file, every input of rank ≥ 3 kept in its ONNX layout."""
    from modelport.conversion.onnx_tflite import run_onnx2tf

    keep = [s.name for s in specs if s.shape and len(s.shape) >= 3]
    return run_onnx2tf(src, work / "onnx2tf", keep_nchw=keep, passes=ONNX2TF_PASSES, timeout_s=DEFAULT_TIMEOUT_S)


def _name_outputs(path: Path, names: Sequence[str]) -> None:
    """Name the signature outputs (and output tensors) of a single-output model after the source's output."""
    if len(names) != 1:
        return
    flatbuffer_utils = optional_import("ai_edge_litert.tools.flatbuffer_utils", extra="tflite", what="LiteRT")
    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    if len(graph.outputs) != 1:
        return
    graph.tensors[graph.outputs[0]].name = names[0].encode()
    for sig in model.signatureDefs or []:
        if len(sig.outputs) == 1:
            sig.outputs[0].name = names[0].encode()
    flatbuffer_utils.write_model(model, str(path))


def check_options(job: Job) -> None:
    if job.options.exclude:
        raise InvalidInputError(
            "TFLite full-integer quantization converts every op to int8; --exclude is for onnxruntime and openvino",
            hint="drop --exclude, or quantize for another runtime",
        )


def build(job: Job, work: Path) -> Built:
    """The FP32, FP16 and INT8 TFLite models of the source, from one SavedModel with one converter."""
    from modelport.conversion.onnx2tf_prep import restore_tflite_names

    check_options(job)
    fmt = sniff_format(job.src)
    if fmt is Format.ONNX:
        job.say("LiteRT: ONNX → SavedModel (onnx2tf, inputs kept NCHW)")
        onnx2tf = _onnx_saved_model(job.src, work, job.specs)
        source, kind, route = onnx2tf.saved_model, "saved_model", "onnx2tf SavedModel"
        outputs = list(onnx2tf.outputs)
        rewrites = [f"{name} ({added:+d} nodes)" for name, added in onnx2tf.rewrites]
        back = {new: old for old, new in onnx2tf.renamed}
    else:
        source, kind, route = job.src, ("saved_model" if fmt is Format.SAVED_MODEL else "keras"), fmt.value
        outputs, rewrites, back = [], [], {}
    calib = work / "calib.npz"
    np.savez(calib, **{k: np.ascontiguousarray(v) for k, v in job.calib.inputs.items()})  # type: ignore[arg-type]
    names = {p: f"{job.name}.{p}.tflite" for p in ("fp32", "fp16", "int8")}
    job.say(f"LiteRT: TFLiteConverter full-integer INT8 ({len(job.calib)} representative samples)")
    with atomic_files(job.out_dir) as staging:
        request = {  # absolute paths: the worker runs in ``work``
            "source": str(Path(source).resolve()),
            "kind": kind,
            "calib": str(calib.resolve()),
            "outputs": {p: str((staging / n).resolve()) for p, n in names.items()},
            "int8_io": job.options.int8_io,
        }
        run_worker(
            "modelport.quantization._tflite_worker",
            request,
            work,
            what="the TFLite converter",
            src=job.src,
            timeout_s=DEFAULT_TIMEOUT_S,
        )
        for n in names.values():
            if back:  # the names onnx2tf's copy had sanitised: the TFLite inputs get the ONNX ones back
                restore_tflite_names(staging / n, back, ())
            _name_outputs(staging / n, outputs)
        check_ranges(staging / names["int8"])
    files = {p: job.out_dir / n for p, n in names.items()}
    settings = (
        ("route", f"{route} → TFLiteConverter"),
        ("ops", "TFLITE_BUILTINS_INT8 (every op an int8 kernel)"),
        ("weights", "s8 symmetric per output channel"),
        ("activations", "s8 asymmetric per tensor"),
        ("inputs/outputs", "int8" if job.options.int8_io else "float32 (QUANTIZE/DEQUANTIZE at the edges)"),
        ("calibration", f"representative dataset, {len(job.calib)} samples (min/max)"),
        *((("onnx rewrites", "; ".join(rewrites)),) if rewrites else ()),
    )
    return Built(
        artifact=files["int8"],
        files=tuple(files.values()),
        engine=engine_name(),
        settings=settings,
        choice=explain(job.env),
        reference=files["fp32"],
        fp16=files["fp16"],
    )


def explain(env: Any) -> str:
    """Why full-integer INT8 is the TFLite format to ship."""
    isa = "ARM dot-product" if env.machine.lower() in ("aarch64", "arm64") else "x86 AVX2/AVX-512"
    return (
        f"TFLite full-integer INT8: LiteRT's XNNPACK runs int8 (QS8) convolutions and fully connected layers with "
        f"{isa} kernels; mixed float/int8 graphs or dynamic-range models fall back to float kernels"
    )


def engine_name() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist in ("tensorflow", "onnx2tf", "ai-edge-litert"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            continue
    if not any(p.startswith("tensorflow") for p in parts):
        raise RuntimeUnavailable("TFLite quantization needs TensorFlow", hint="pip install 'modelport[tf]'")
    return " + ".join(parts)


class FloatIORunner(Runner):
    """A LiteRT runner that takes and returns float arrays for a model with int8 inputs/outputs.

    Feeds are quantized with each input's ``(scale, zero_point)`` (``round(x / scale) + zero_point``, clipped to
    the integer range) and outputs dequantized (``(q - zero_point) · scale``), so INT8-I/O models are measured on
    the same float samples as their FP32 source. Timing includes these two numpy steps.
    """

    name = "litert"
    ENGINE_SETTINGS = LiteRTRunner.ENGINE_SETTINGS  # the inner LiteRT runner applies them

    def __init__(self, model: str | Path, options: RunnerOptions | None = None) -> None:
        super().__init__(model, options)
        self._inner = open_runner("litert", model, options)

    def load(self) -> None:
        self._inner.__enter__()
        quant = self._inner.quantization()  # type: ignore[attr-defined]
        self._in_q = {s.name: (quant[s.name], np.dtype(s.dtype)) for s in self._inner.input_specs if s.name in quant}
        self._out_q = {n: quant[n] for n in self._inner.output_names if n in quant}
        self._specs = [
            TensorSpec(s.name, "float32", s.shape) if s.name in self._in_q else s for s in self._inner.input_specs
        ]

    def close(self) -> None:
        self._inner.__exit__(None, None, None)

    @property
    def input_specs(self) -> list[TensorSpec]:
        return list(self._specs)

    @property
    def output_names(self) -> list[str]:
        return self._inner.output_names

    def info(self) -> RunnerInfo:
        inner = self._inner.info()
        io = ("io", "int8, quantized/dequantized by modelport") if self._in_q or self._out_q else ("io", "float32")
        return RunnerInfo(**{**inner.to_dict(), "details": (*inner.details, io)})

    def _run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        ready = dict(feeds)
        for name, ((scale, zero), dtype) in self._in_q.items():
            info = np.iinfo(dtype)
            q = np.round(np.asarray(feeds[name], np.float32) / np.float32(scale)) + zero
            ready[name] = np.clip(q, info.min, info.max).astype(dtype)
        outs = self._inner.run_raw(ready)
        result = []
        for name, arr in zip(self._inner.output_names, outs, strict=True):
            if name in self._out_q:
                scale, zero = self._out_q[name]
                arr = (arr.astype(np.float32) - np.float32(zero)) * np.float32(scale)
            result.append(arr)
        return result


def runner(path: Path, precision: Precision, threads: int | None) -> Runner:
    """A LiteRT runner taking float feeds whatever the model's input type, on every core unless told otherwise.

    LiteRT's own default (``num_threads=None``) ran the float MNIST ConvNet 8× slower at batch 64 than with an
    explicit thread count here (22 ms vs 2.8 ms; the int8 model was unaffected), which would flatter INT8.
    """
    return FloatIORunner(path, RunnerOptions(threads=threads or os.cpu_count() or 1, precision=precision))


def layer_summary(path: Path, threads: int | None = None) -> LayerSummary:
    """Int8 ops, float compute ops and QUANTIZE/DEQUANTIZE ops of a TFLite model (from LiteRT's op details)."""
    from modelport.backends.litert import import_litert_interpreter

    interp = import_litert_interpreter().Interpreter(model_path=str(path))
    tensors = {t["index"]: np.dtype(t["dtype"]) for t in interp.get_tensor_details()}
    counts: collections.Counter[str] = collections.Counter()
    int8 = quant = 0
    floats: list[str] = []
    for op in interp._get_ops_details():
        name = str(op["op_name"])
        if name == "DELEGATE":
            continue
        dtypes = [tensors[i] for i in op["inputs"] if i >= 0]
        integer = bool(dtypes) and dtypes[0] in INT_DTYPES
        counts[f"{name}/{'int8' if integer else 'float'}"] += 1
        if name in QUANT_OPS:
            quant += 1
        elif integer:
            int8 += 1
        elif name in COMPUTE_OPS:
            floats.append(f"{name}:{op['index']}")
    return LayerSummary(
        int8_ops=int8, float_layers=tuple(floats), quant_nodes=quant, op_counts=tuple(sorted(counts.items()))
    )
