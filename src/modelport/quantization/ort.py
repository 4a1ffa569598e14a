"""ONNX Runtime INT8: static QDQ (calibrated) or dynamic quantization, with the integer types chosen per CPU.

ONNX Runtime runs a QDQ model fast only where its graph optimizer fuses each ``DequantizeLinear → op →
QuantizeLinear`` group into an integer kernel (QLinearConv, QGemm, QLinearAdd …); what it cannot fuse runs in
float between extra (de)quantization steps, which can make INT8 *slower* than FP32. Which groups fuse depends
on the types: ORT's x86 kernels (MLAS) multiply unsigned 8-bit activations by signed 8-bit weights (``vpdpbusd``
with VNNI), so on x86 U8S8 fuses everything while S8S8 leaves part of the graph in float (resnet50 here: S8S8
left 20 Conv and 16 Add in float and was 1.2× faster than FP32, U8S8 fused all 53 Conv and was 3× faster).
ARM kernels prefer symmetric S8S8. Without VNNI, u8×s8 products can saturate the 16-bit intermediate sums of
AVX2's ``vpmaddubsw``, so weights are reduced to 7 bits (``reduce_range``).

The choice is then measured: :func:`build` times each candidate against FP32 and keeps the first that is faster
(else the fastest). :func:`layer_summary` reads ORT's own optimized graph to say what runs in
integer kernels and which compute layers stayed in float.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelport.backends import open_runner
from modelport.backends.runner import RunnerOptions
from modelport.data.samples import SampleSet, batch_for
from modelport.errors import ConversionError, InvalidInputError, first_line
from modelport.formats import Precision
from modelport.model_io import atomic_path, default_opset, load_model, load_proto, save_model
from modelport.quantization.engine import Built, Job, speedup
from modelport.quantization.feeds import batches
from modelport.quantization.measure import bench_feeds, interleaved_latency
from modelport.quantization.options import CalibrationMethod, Mode, QuantizeOptions, QuantTypes
from modelport.quantization.report import LayerSummary, Trial
from modelport.reports.environment import Environment

log = logging.getLogger(__name__)

#: quantization modes this engine has (the others quantize statically only).
MODES = (Mode.STATIC, Mode.DYNAMIC)

#: calibration batch on models with a dynamic batch dimension, at most; and the input elements one calibration batch
#: may hold (a batch of 16 images of 3×640×640 timed out at 400 s on a real detector where calibrating one at a
#: time took 132 s).
CALIB_BATCH = 16
CALIB_ELEMENTS = 1 << 21


def calibration_batch(samples: SampleSet) -> int:
    """Samples per calibration batch: :data:`CALIB_BATCH`, fewer for large inputs (:data:`CALIB_ELEMENTS`)."""
    per_sample = sum(int(np.prod(v.shape[1:], dtype=np.int64)) for v in samples.inputs.values())
    return max(1, min(CALIB_BATCH, CALIB_ELEMENTS // max(per_sample, 1)))


#: ops of ORT's optimized graph that run integer kernels.
INT8_OP_PREFIXES = ("QLinear", "QGemm", "QAttention", "QOrdered", "DynamicQuantize")
INT8_OPS = frozenset({"MatMulInteger", "ConvInteger", "MatMulIntegerToFloat", "NhwcMaxPool"})
#: compute layers: when one of these is left in the optimized graph, it runs in float.
FLOAT_LAYER_OPS = frozenset(
    {"Conv", "FusedConv", "ConvTranspose", "MatMul", "FusedMatMul", "Gemm", "FusedGemm", "Einsum"}
    | {"Attention", "MultiHeadAttention", "LSTM", "GRU", "RNN"}
)
QUANT_NODES = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
#: how often a candidate ONNX Runtime cannot load is rebuilt with the node it names kept in float.
LOAD_RETRIES = 4
_FAILING_NODE = re.compile(r"Node \(([^)]+)\) Op \(")


@dataclasses.dataclass(frozen=True)
class OrtSetting:
    """One ONNX Runtime quantization setting."""

    mode: Mode
    activation: str  # "u8" / "s8" (static only)
    weight: str  # "s8" / "u8"
    per_channel: bool
    reduce_range: bool
    method: CalibrationMethod

    @property
    def label(self) -> str:
        if self.mode is Mode.DYNAMIC:
            text = f"dynamic {self.weight.upper()} weights"
        else:
            text = f"static QDQ {self.activation.upper()}{self.weight.upper()} {self.method.value}"
        text += " per-channel" if self.per_channel else " per-tensor"
        return text + (" reduce-range" if self.reduce_range else "")

    def items(self) -> tuple[tuple[str, str], ...]:
        return (
            ("mode", self.mode.value),
            ("activations", self.activation if self.mode is Mode.STATIC else "u8 (dynamic)"),
            ("weights", self.weight),
            ("per_channel", str(self.per_channel)),
            ("reduce_range", str(self.reduce_range)),
            ("calibration", self.method.value if self.mode is Mode.STATIC else "none (dynamic)"),
            ("format", "QDQ" if self.mode is Mode.STATIC else "MatMulInteger/ConvInteger"),
        )


def plan(options: QuantizeOptions, env: Environment) -> tuple[list[OrtSetting], str]:
    """Candidate settings in the order to try, and why the first one.

    ``types=auto`` picks by CPU (x86: U8S8, 7-bit weights without VNNI; ARM: S8S8) and lists the alternatives,
    which are built and timed only when the first is not faster than FP32. Explicit types give one candidate.
    """
    x86 = env.machine.lower() in ("x86_64", "amd64", "i686", "x86")
    vnni = [f for f in VNNI_FLAGS if env.has_flag(f)]
    reduce = x86 and not vnni
    if options.mode is Mode.DYNAMIC:
        order = ["u8s8", "u8u8"] if x86 else ["u8s8"]
        why = "dynamic quantization: weights int8 ahead of time, activations quantized to u8 per batch at run time"
    elif x86:
        order = ["u8s8", "s8s8", "u8u8"]
        why = (
            f"x86 with {', '.join(vnni)}: ORT's int8 kernels multiply u8 activations by s8 weights (VNNI); "
            "U8S8 lets its optimizer fuse every QDQ group, S8S8 leaves part of the graph in float"
            if vnni
            else "x86 without VNNI: U8S8 with 7-bit weights (reduce_range) so u8×s8 sums cannot saturate AVX2's "
            "16-bit intermediates"
        )
    else:
        order = ["s8s8", "u8s8"]
        why = f"{env.machine}: ORT's ARM int8 kernels prefer symmetric s8 activations and s8 weights (S8S8)"
    if options.types is not QuantTypes.AUTO:
        order = [options.types.value]
        why = f"{options.types.value.upper()} as asked (--types)"
    settings = [
        OrtSetting(
            mode=options.mode,
            activation=t[:2],
            weight=t[2:],
            per_channel=options.per_channel,
            reduce_range=reduce and t == "u8s8",
            method=options.method or CalibrationMethod.MINMAX,
        )
        for t in order
    ]
    return settings, why


@contextlib.contextmanager
def _in_directory(path: Path) -> Iterator[None]:
    """Run with ``path`` as the working directory: ORT's symbolic shape inference, when it cannot finish, saves
    ``sym_shape_infer_temp.onnx`` and its external data into the *current* directory (onnxruntime 1.32,
    ``tools/symbolic_shape_infer.py``); this keeps them in modelport's own work folder, never in the user's."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def preprocess(src: Path, dst: Path) -> str:
    """ORT's ``quant_pre_process`` (basic graph optimizations such as Conv+BN folding, shape inference).

    Falls back to fewer steps when symbolic shape inference or the optimizer fails; returns what it did.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    attempts: tuple[tuple[str, dict[str, bool]], ...] = (
        ("quant_pre_process (ORT basic optimizations, symbolic + ONNX shape inference)", {}),
        ("quant_pre_process (ORT basic optimizations, ONNX shape inference)", {"skip_symbolic_shape": True}),
    )
    for text, kwargs in attempts:
        try:
            with _in_directory(dst.parent):
                quant_pre_process(str(src.resolve()), str(dst.resolve()), **kwargs)
            return text
        except Exception as exc:  # symbolic shape inference raises assorted errors on unusual graphs
            log.info("%s failed on %s: %s", text, src.name, exc)
    dst.write_bytes(src.read_bytes())
    return "none (quant_pre_process failed; quantizing the model as it is)"


class _Reader:
    """A CalibrationDataReader over padded batches (or whole feeds) of a SampleSet."""

    def __init__(self, samples: SampleSet, batch: int, fixed: bool, whole: bool = False) -> None:
        self._samples, self._batch, self._fixed, self._whole = samples, batch, fixed, whole
        self._it: Iterator[tuple[dict[str, np.ndarray], int]] = batches(samples, batch, fixed, whole)

    def get_next(self) -> dict[str, np.ndarray] | None:
        item = next(self._it, None)
        return None if item is None else item[0]

    def rewind(self) -> None:
        self._it = batches(self._samples, self._batch, self._fixed, self._whole)


def _reader(samples: SampleSet, batch: int, fixed: bool, whole: bool = False) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(_Reader, CalibrationDataReader):  # type: ignore[misc]
        pass

    return Reader(samples, batch, fixed, whole)


def resolve_exclusions(model: Path, exclude: Sequence[str]) -> list[str]:
    """Node names to keep in float: each item is a node name or an op type of ``model``.

    Raises:
        InvalidInputError: an item matches neither.
    """
    nodes = load_proto(model, check=False, load_external_data=False).graph.node
    names = {n.name for n in nodes}
    excluded: list[str] = []
    for item in exclude:
        if item in names:
            excluded.append(item)
            continue
        by_type = [n.name for n in nodes if n.op_type == item]
        if not by_type:
            types = sorted({n.op_type for n in nodes})
            raise InvalidInputError(
                f"--exclude {item!r} is neither a node name nor an op type of the model",
                hint=f"op types here: {', '.join(types)}",
            )
        excluded += by_type
    return excluded


def _producers(model: Path, names: Sequence[str]) -> list[str]:
    """Nodes producing the first (activation) input of the named nodes."""
    nodes = load_proto(model, check=False, load_external_data=False).graph.node
    by_output = {o: n.name for n in nodes for o in n.output}
    inputs = [n.input[0] for n in nodes if n.name in names and n.input]
    return [by_output[i] for i in inputs if i in by_output]


def quantize_onnx(
    pre: Path,
    dst: Path,
    samples: SampleSet,
    setting: OrtSetting,
    *,
    batch: int,
    fixed_batch: bool,
    exclude: Sequence[str] = (),
    whole: bool = False,
) -> None:
    """Write the INT8 model of the pre-processed ``pre`` to ``dst`` (atomically).

    Excluded compute layers must stay float in what ORT executes, but ORT's WeightBiasQuantization re-quantizes
    the float weights of a Gemm/Conv whose input arrives through a DequantizeLinear. When ORT's optimized graph
    holds fewer float compute layers than were excluded, the producers of their inputs are excluded too (up to
    three steps), which keeps their inputs float.
    """
    nodes = resolve_exclusions(pre, exclude) if exclude else []
    proto_nodes = load_proto(pre, check=False, load_external_data=False).graph.node
    compute = [n.name for n in proto_nodes if n.name in nodes and n.op_type in FLOAT_LAYER_OPS]
    with atomic_path(dst) as tmp:
        for step in range(4):
            _run_quantizer(pre, tmp, samples, setting, (batch, fixed_batch, whole), nodes)
            if not compute or len(layer_summary(tmp).float_layers) >= len(compute) or step == 3:
                break
            more = [p for p in _producers(pre, nodes) if p not in nodes]
            if not more:
                break
            log.info("ORT re-quantized excluded layers; also keeping %s in float", ", ".join(more))
            nodes += more


def _run_quantizer(
    pre: Path,
    dst: Path,
    samples: SampleSet,
    setting: OrtSetting,
    batching: tuple[int, bool, bool],
    nodes: Sequence[str],
) -> None:
    from onnxruntime.quantization import CalibrationMethod as OrtMethod
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    qtype = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}
    method = {
        CalibrationMethod.MINMAX: OrtMethod.MinMax,
        CalibrationMethod.ENTROPY: OrtMethod.Entropy,
        CalibrationMethod.PERCENTILE: OrtMethod.Percentile,
    }[setting.method]
    try:
        if setting.mode is Mode.DYNAMIC:
            quantize_dynamic(
                str(pre),
                str(dst),
                per_channel=setting.per_channel,
                reduce_range=setting.reduce_range,
                weight_type=qtype[setting.weight],
                nodes_to_exclude=list(nodes) or None,
            )
        else:
            quantize_static(
                str(pre),
                str(dst),
                _reader(samples, *batching),
                quant_format=QuantFormat.QDQ,
                per_channel=setting.per_channel,
                reduce_range=setting.reduce_range,
                activation_type=qtype[setting.activation],
                weight_type=qtype[setting.weight],
                nodes_to_exclude=list(nodes) or None,
                calibrate_method=method,
            )  # no CalibMaxIntermediateOutputs: ORT 1.32's MinMax calibrator drops the batches it flushes
    except Exception as exc:  # the quantizer raises plain exceptions on graphs it cannot handle
        first = first_line(exc)
        raise ConversionError(f"ONNX Runtime quantization failed: {first}", path=pre) from exc


def _load_error(path: Path) -> str | None:
    """None when ONNX Runtime loads ``path``, else the first line of its error."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/RuntimeException types
        return first_line(exc)
    return None


def quantize_loadable(job: Job, pre: Path, dst: Path, setting: OrtSetting, batch: int) -> tuple[str, ...]:
    """:func:`quantize_onnx`, rebuilt while ONNX Runtime cannot load the result; the nodes kept in float for it.

    ORT's quantizer can write a graph its own loader rejects (on a real TF-exported audio model it quantized a
    weight that a Transpose then reads with the wrong rank). The loader names the node; that node is kept in float
    and the model quantized again, up to :data:`LOAD_RETRIES` times.

    Raises:
        ConversionError: the result still does not load, naming each node tried.
    """
    extra: list[str] = []
    names = {n.name for n in load_proto(pre, check=False, load_external_data=False).graph.node}
    while True:
        exclude = (*job.options.exclude, *extra)
        quantize_onnx(
            pre, dst, job.calib, setting, batch=batch, fixed_batch=job.fixed, exclude=exclude, whole=job.whole
        )
        error = _load_error(dst)
        if error is None:
            return tuple(extra)
        found = _FAILING_NODE.search(error)
        node = found.group(1) if found else None
        if node is None or node not in names or node in extra or len(extra) >= LOAD_RETRIES:
            kept = f" (kept in float so far: {', '.join(extra)})" if extra else ""
            raise ConversionError(
                f"ONNX Runtime cannot load its own quantization of the model: {error}{kept}",
                path=job.src,
                hint="keep the failing node in float with --exclude NODE, or quantize for another runtime",
            )
        log.warning("%s: ONNX Runtime cannot load the INT8 model at node %s; keeping it in float", job.src.name, node)
        job.say(f"ONNX Runtime: node {node} breaks the INT8 graph, kept in float")
        extra.append(node)


def layer_summary(artifact: Path, threads: int | None = None) -> LayerSummary:
    """What ORT executes: integer kernels and float compute layers in its optimized graph, Q/DQ in the file."""
    import onnx
    import onnxruntime as ort

    source = load_proto(artifact, check=False, load_external_data=False)
    quant_nodes = sum(1 for n in source.graph.node if n.op_type in QUANT_NODES)
    with tempfile.TemporaryDirectory(prefix="modelport-ort-") as tmp:
        so = ort.SessionOptions()
        so.log_severity_level = 3  # the "hardware specific optimizations" warning on saving is expected here
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        if threads:
            so.intra_op_num_threads = threads
        ort.InferenceSession(str(artifact), so, providers=["CPUExecutionProvider"])
        optimized = onnx.load(so.optimized_model_filepath, load_external_data=False)
    counts = collections.Counter(n.op_type for n in optimized.graph.node)
    int8 = sum(c for op, c in counts.items() if op in INT8_OPS or op.startswith(INT8_OP_PREFIXES))
    floats = tuple(f"{n.op_type}:{n.name}" for n in optimized.graph.node if n.op_type in FLOAT_LAYER_OPS)
    return LayerSummary(
        int8_ops=int8, float_layers=floats, quant_nodes=quant_nodes, op_counts=tuple(sorted(counts.items()))
    )


def engine_name() -> str:
    import onnxruntime

    return f"onnxruntime.quantization {onnxruntime.__version__}"


def build(job: Job, work: Path) -> Built:
    """Pre-process, then build and time each candidate setting until one beats FP32 (else keep the fastest)."""
    settings, why = plan(job.options, job.env)
    pre = work / "preprocessed.onnx"
    job.say("ONNX Runtime: pre-processing (quant_pre_process)")
    pre_text = preprocess(job.src, pre)
    calib_batch = batch_for(job.specs, calibration_batch(job.calib))
    feeds = bench_feeds(job.calib, job.batch, job.whole)
    trials: list[Trial] = []
    paths: list[Path] = []
    kept: list[tuple[str, ...]] = []
    for i, setting in enumerate(settings):
        job.say(f"ONNX Runtime: {setting.label}")
        cand = work / f"candidate{i}.onnx"
        kept.append(quantize_loadable(job, pre, cand, setting, calib_batch))
        with (
            open_runner("onnxruntime", job.src, RunnerOptions(threads=job.options.threads)) as f32,
            open_runner("onnxruntime", cand, RunnerOptions(threads=job.options.threads, precision=Precision.INT8)) as q,
        ):
            base, lat = interleaved_latency([f32, q], feeds, job.options.bench)
        layers = layer_summary(cand, job.options.threads)
        speed = speedup(base.p50_ms, lat.p50_ms)
        trials.append(Trial(setting.label, lat.p50_ms, speed, layers.int8_ops, len(layers.float_layers), False))
        paths.append(cand)
        if speed > 1.0:
            break
        if i + 1 < len(settings):
            log.warning(
                "%s: INT8 %s ran at %.2f× FP32's speed; trying the next setting", job.src.name, setting.label, speed
            )
    beat = trials[-1].speedup > 1.0
    best = len(trials) - 1 if beat else max(range(len(trials)), key=lambda i: trials[i].speedup)
    trials[best] = dataclasses.replace(trials[best], chosen=True)
    if beat and best == 0:
        choice = why
    elif beat:
        choice = f"{why}; measured here {trials[0].setting} was not faster than FP32, {trials[best].setting} was"
    else:
        choice = f"{why}; measured here no setting beat FP32, the fastest was kept ({trials[best].setting})"
    dst = job.out_dir / f"{job.name}.int8.onnx"
    with atomic_path(dst) as tmp:
        shutil.copyfile(paths[best], tmp)
    return Built(
        artifact=dst,
        files=(dst,),
        engine=engine_name(),
        settings=(
            ("pre-processing", pre_text),
            *settings[best].items(),
            *((("kept in float (ORT could not load them quantized)", ", ".join(kept[best])),) if kept[best] else ()),
        ),
        choice=choice,
        trials=tuple(trials),
    )


#: how many more of the most error-adding node groups each recovery candidate keeps in float (re-ranked each time).
RECOVER_FLOAT_STEPS = (1, 2, 4, 8, 16)
#: the share of compute layers (Conv, Gemm, MatMul …) recovery may keep in float: beyond it the model is not INT8.
MAX_FLOAT_SHARE = 0.5
#: per-channel scales are DequantizeLinear's ``axis`` attribute, which exists from opset 13 on.
PER_CHANNEL_OPSET = 13
#: evaluation samples the sensitivity ranking runs on (every activation of both models is held in memory).
RANK_SAMPLES = 4


def recover(job: Job, work: Path, built: Built) -> Iterator[tuple[str, Callable[[], tuple[Built, tuple[str, ...]]]]]:
    """Recovery candidates after the first build failed its check (:mod:`modelport.quantization.recover`).

    1. per-channel weight scales (when they were per-tensor): one scale per output channel absorbs the outlier
       channels that batch-norm folding leaves in a convolution's weights;
    2. the nodes that add the most error (:mod:`~modelport.quantization.ort_sensitivity`, on the evaluation
       samples) kept in float, cumulatively, :data:`RECOVER_FLOAT_STEPS` more groups each time, ranked again on the
       latest candidate (per-channel from the moment that built);
    3. dynamic quantization (U8S8, activation ranges measured on each input at run time) — before step 2 when
       the graph multiplies activations by activations (attention) or has recurrent layers, where ONNX Runtime's
       documentation recommends it and random or narrow calibration data misjudges the ranges.

    Starts from a static build only; the pre-processed model from :func:`build` (``work/preprocessed.onnx``) is
    quantized again with the chosen integer types.
    """
    pre = work / "preprocessed.onnx"
    if job.options.mode is not Mode.STATIC or not pre.is_file():
        return
    settings, _ = plan(job.options, job.env)
    chosen = next((t.setting for t in built.trials if t.chosen), settings[0].label)
    setting = next((s for s in settings if s.label == chosen), settings[0])
    calib_batch = batch_for(job.specs, calibration_batch(job.calib))
    made: list[Path] = []

    def make(
        sub: Job, src: Path, cand: Path, chosen: OrtSetting, nodes: tuple[str, ...]
    ) -> tuple[Built, tuple[str, ...]]:
        if src != pre and not src.is_file():
            upgrade_opset(pre, src, PER_CHANNEL_OPSET)
        kept = (*nodes, *quantize_loadable(sub, src, cand, chosen, calib_batch))
        made.append(cand)
        return _candidate(built, cand, chosen, kept), kept

    base, source = built.artifact, pre
    if not setting.per_channel:
        channel = dataclasses.replace(setting, per_channel=True)
        cand = work / "recover-per-channel.onnx"
        upgraded = (
            pre
            if default_opset(load_proto(pre, check=False, load_external_data=False)) >= PER_CHANNEL_OPSET
            else work / "preprocessed-opset13.onnx"
        )
        yield "per-channel weight scales", functools.partial(make, job, upgraded, cand, channel, ())
        if cand in made:  # it built: keep per-channel scales from here on
            setting, base, source = channel, cand, upgraded
    dynamic = dataclasses.replace(setting, mode=Mode.DYNAMIC, activation="u8", reduce_range=False)
    dynamic_label = "dynamic quantization (activation ranges measured per inference)"
    attention = _matmul_heavy(pre)
    if attention:  # ORT's advice for transformers and recurrent nets, before giving up INT8 layer by layer
        yield dynamic_label, functools.partial(make, job, source, work / "recover-dynamic.onnx", dynamic, ())
    yield from _float_steps(job, work, make, setting, source, base, made)
    if not attention:
        yield dynamic_label, functools.partial(make, job, source, work / "recover-dynamic.onnx", dynamic, ())


def _float_steps(
    job: Job,
    work: Path,
    make: Callable[..., tuple[Built, tuple[str, ...]]],
    setting: OrtSetting,
    source: Path,
    base: Path,
    made: list[Path],
) -> Iterator[tuple[str, Callable[[], tuple[Built, tuple[str, ...]]]]]:
    """The candidates keeping more and more of the most error-adding nodes in float, re-ranked on each build, until
    more than :data:`MAX_FLOAT_SHARE` of the compute layers would be float."""
    compute = {
        n.name
        for n in load_proto(source, check=False, load_external_data=False).graph.node
        if n.op_type in FLOAT_LAYER_OPS
    }
    kept: tuple[str, ...] = ()
    for step, more in enumerate(RECOVER_FLOAT_STEPS):
        groups = [g for g in _ranked(job, source, base) if not set(g) <= set(kept)][:more]
        if not groups:
            return
        kept = tuple(dict.fromkeys((*kept, *(name for group in groups for name in group))))
        if len(compute & set(kept)) > MAX_FLOAT_SHARE * len(compute):
            log.info("%s: recovery stops before keeping most compute layers in float", job.src.name)
            return
        sub = dataclasses.replace(job, options=dataclasses.replace(job.options, exclude=(*job.options.exclude, *kept)))
        cand = work / f"recover-float-{step}.onnx"
        label = f"{len(kept)} error-adding node{'s' * (len(kept) > 1)} kept in float (+{len(groups)} ranked)"
        yield label, functools.partial(make, sub, source, cand, setting, kept)
        if cand not in made:
            return
        base = cand


def _matmul_heavy(path: Path) -> bool:
    """Whether matrix products between activations (attention) or recurrent layers are in the graph."""
    graph = load_proto(path, check=False, load_external_data=False).graph
    constants = {t.name for t in graph.initializer}
    for node in graph.node:
        if node.op_type in ("LSTM", "GRU", "RNN", "Attention", "MultiHeadAttention"):
            return True
        if node.op_type == "MatMul" and len(node.input) == 2 and not set(node.input) & constants:
            return True
    return False


def upgrade_opset(src: Path, dst: Path, version: int) -> None:
    """``src`` converted to opset ``version`` (the optimizer's ``convert-opset`` pass), written to ``dst``.

    Raises:
        PassError: ONNX's version converter cannot convert an op of the model.
    """
    from modelport.passes.opset import ConvertOpset, ConvertOpsetOptions

    model = load_model(src, check=False)
    ConvertOpset(ConvertOpsetOptions(target=version)).apply(model)
    save_model(model, dst)


def _ranked(job: Job, pre: Path, qdq: Path) -> list[tuple[str, ...]]:
    """Groups of quantized node names, most error-adding first; [] when the ranking cannot run."""
    from modelport.quantization.ort_sensitivity import rank_nodes

    sample = job.evaluation.take(min(RANK_SAMPLES, len(job.evaluation)), seed=job.options.seed)
    try:
        feeds = [feed for feed, _ in batches(sample, 1, job.fixed, job.whole)]
        return [group for group, _ in rank_nodes(pre, qdq, feeds)]
    except Exception as exc:  # the debugger runs ORT on augmented graphs: any failure ends the ladder here
        log.warning("%s: cannot rank layers by quantization error: %s", job.src.name, first_line(exc))
        return []


def _candidate(built: Built, path: Path, setting: OrtSetting, kept: tuple[str, ...]) -> Built:
    pre_text = dict(built.settings).get("pre-processing", "")
    settings = (("pre-processing", pre_text), *setting.items())
    if kept:
        settings = (*settings, ("kept in float", ", ".join(kept)))
    return dataclasses.replace(built, artifact=path, files=(path,), settings=settings)
