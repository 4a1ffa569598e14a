"""OpenVINO INT8 through NNCF: ``nncf.quantize``, or ``nncf.quantize_with_accuracy_control`` under ``--max-drop``.

NNCF inserts FakeQuantize operations (weights: symmetric int8 per output channel; activations: 8-bit per
tensor, unsigned after ReLU) tuned for ``TargetDevice.CPU``; on saving, OpenVINO stores the quantized weights as
int8 constants. The CPU plugin then runs convolutions and matrix products as u8×i8 oneDNN primitives (with VNNI
``vpdpbusd`` on AVX-512 VNNI / AVX-VNNI CPUs, AMX tiles where present). :func:`layer_summary` reads the
compiled model's executed graph, so the report says which layers really run in integer precision.

With accuracy control, NNCF evaluates the FP32 and INT8 models on the labelled evaluation data with our
validation function (top-1, and 1/0 per sample so it can rank layers), and returns layers to float, most
harmful first, until the drop is within ``max_drop`` (absolute, as a fraction: points / 100).

Accuracy recovery (:func:`recover`, when the first build fails its check): NNCF's mixed preset; then recurrent
layers and the ops into ``Log``/``Sqrt`` kept in float; then accuracy control driven by agreement with the FP32
outputs instead of labels (:class:`Agreement`: each evaluation item scores 1/(1 + ρ), ρ its worst ratio of
error to the int8 bound, so a minimum score ≥ 0.5 means every item is within the tolerance).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelport.backends.openvino import error_text, import_openvino
from modelport.data.samples import SampleSet, batch_for
from modelport.errors import ConversionError, InvalidInputError, first_line, optional_import
from modelport.formats import Format, sniff_format
from modelport.model_io import atomic_files
from modelport.quantization.engine import Built, Job
from modelport.quantization.feeds import batches
from modelport.quantization.options import CalibrationMethod, QuantizeOptions
from modelport.quantization.ov_validation import (
    AGREEMENT_DROP,
    AGREEMENT_ITEMS,
    MAX_REVERTED,
    RANKING_ITEMS,
    agreement_data,
    top1_validation,
)
from modelport.quantization.report import LayerSummary
from modelport.reports.environment import Environment

log = logging.getLogger(__name__)

#: ONNX op types → OpenVINO op types, for ``--exclude`` by type.
OV_TYPES = {
    "Conv": "Convolution",
    "ConvTranspose": "ConvolutionBackpropData",
    "Gemm": "MatMul",
    "Mul": "Multiply",
    "Sub": "Subtract",
    "Div": "Divide",
    "AveragePool": "AvgPool",
    "GlobalAveragePool": "ReduceMean",
}
#: executed layer types that carry weights: float ones are "left in float".
COMPUTE_LAYERS = frozenset(
    {"Convolution", "Deconvolution", "FullyConnected", "MatMul", "GroupConvolution", "RNNSeq", "RNNCell"}
)
INT8_PRECISIONS = frozenset({"u8", "i8"})


def import_nncf() -> Any:
    return optional_import("nncf", extra="openvino", what="NNCF")


def read_ov_model(src: Path) -> Any:
    """An ``ov.Model`` from an ONNX file or an OpenVINO IR."""
    ov = import_openvino()
    fmt = sniff_format(src)
    try:
        if fmt is Format.ONNX:
            from modelport.model_io import load_proto

            load_proto(src, check=False, load_external_data=False)  # a broken file: one clear error
            return ov.convert_model(str(src))
        if fmt is Format.OPENVINO_IR:
            return ov.Core().read_model(str(src))
    except RuntimeError as exc:
        raise ConversionError(f"OpenVINO cannot read the model: {error_text(exc)}", path=src) from exc
    raise InvalidInputError(
        f"OpenVINO quantization takes ONNX or OpenVINO IR, this is {fmt.value}",
        path=src,
        hint="convert it to ONNX first (`modelport convert`)",
    )


def explain(env: Environment) -> str:
    """Why NNCF's CPU INT8 suits (or does not suit) this CPU."""
    if env.has_flag("amx_int8"):
        return "NNCF for TargetDevice.CPU; this CPU has AMX: the CPU plugin runs u8×i8 layers on AMX tiles"
    vnni = [f for f in ("avx512_vnni", "avx_vnni") if env.has_flag(f)]
    if vnni:
        return (
            f"NNCF for TargetDevice.CPU; this CPU has {', '.join(vnni)} (no AMX): the CPU plugin runs u8 activations "
            "× s8 per-channel weights as oneDNN VNNI primitives"
        )
    return (
        "NNCF for TargetDevice.CPU; this CPU has no VNNI/AMX: int8 layers use slower AVX2/AVX-512 paths, "
        "measure the gain"
    )


def _dataset(nncf: Any, samples: SampleSet, batch: int, fixed: bool, labels: bool = False, whole: bool = False) -> Any:
    items: list[Any] = []
    start = 0
    for feeds, n in batches(samples, batch, fixed, whole):
        if labels:
            assert samples.labels is not None
            items.append((feeds, samples.labels[start : start + n], n))
        else:
            items.append(feeds)
        start += n
    return nncf.Dataset(items, (lambda item: item[0]) if labels else None)


def _ignored_scope(nncf: Any, model: Any, exclude: Sequence[str], recipe: Recipe | None = None) -> Any:
    """NNCF's ignored scope: ``--exclude`` names and op types, and what ``recipe`` keeps in float."""
    ops = list(model.get_ordered_ops())
    kept = sorted(recurrent_types(model)) if recipe and recipe.recurrent_float else []
    kept_names = list(range_sensitive_ops(model)) if recipe and recipe.range_float else []
    if not exclude:
        return nncf.IgnoredScope(names=kept_names, types=kept, validate=False) if kept or kept_names else None
    names = {op.get_friendly_name() for op in ops}
    types = {op.get_type_name() for op in ops}
    by_name, by_type = [], []
    for item in exclude:
        if item in names:
            by_name.append(item)
        elif OV_TYPES.get(item, item) in types:
            by_type.append(OV_TYPES.get(item, item))
        else:
            raise InvalidInputError(
                f"--exclude {item!r} is neither a layer name nor an op type of the OpenVINO model",
                hint=f"op types here: {', '.join(sorted(types))}",
            )
    # every name and type was checked above: NNCF's own check would also reject an op its graph drops
    return nncf.IgnoredScope(names=sorted({*by_name, *kept_names}), types=sorted({*by_type, *kept}), validate=False)


#: OpenVINO's recurrent ops. The CPU plugin runs an LSTM/GRU whose weights NNCF quantized as a u8 oneDNN RNN
#: primitive once the weights are stored as int8 (measured: ddddocr's CRNN, relative L2 0.35 → 4.7 of the int8
#: bound); NNCF's accuracy control cannot see that, since it validates with float weights behind FakeQuantize.
RECURRENT_TYPES = frozenset({"LSTMSequence", "GRUSequence", "RNNSequence", "LSTMCell", "GRUCell", "RNNCell"})


#: ops that compress a range (small inputs matter most) and the ops a walk up from them stops at.
RANGE_SENSITIVE = frozenset({"Log", "Sqrt"})
_WALK_STOPS = frozenset(
    {"Convolution", "GroupConvolution", "ConvolutionBackpropData", "MatMul", "Parameter", "Constant", "Concat"}
)
#: ops followed up from a Log/Sqrt at most.
WALK_DEPTH = 6


def range_sensitive_ops(model: Any) -> tuple[str, ...]:
    """Names of the ops on the paths into each ``Log``/``Sqrt`` (up to a weighted layer, a concat or an input).

    Per-tensor INT8 rounds the small values of a power or magnitude spectrum to 0, and ``log``/``sqrt`` turn that
    into the largest error of the model (measured: basic-pitch's CQT, ``Σ x²`` → FakeQuantize → Sqrt → Log).
    """
    names: list[str] = []

    def walk(node: Any, depth: int) -> None:
        for i in range(node.get_input_size()):
            producer = node.input_value(i).get_node()
            name = producer.get_friendly_name()
            if depth and producer.get_type_name() not in _WALK_STOPS and name not in names:
                names.append(name)
                walk(producer, depth - 1)

    for op in model.get_ordered_ops():
        if op.get_type_name() in RANGE_SENSITIVE:
            walk(op, WALK_DEPTH)
    return tuple(names)


def recurrent_types(model: Any) -> frozenset[str]:
    """The recurrent op types the OpenVINO model holds."""
    return frozenset(op.get_type_name() for op in model.get_ordered_ops()) & RECURRENT_TYPES


def _advanced(nncf: Any, method: CalibrationMethod | None) -> Any:
    if method is None:
        return None
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    ranges = {
        CalibrationMethod.MINMAX: RangeEstimatorParametersSet.MINMAX,
        CalibrationMethod.PERCENTILE: RangeEstimatorParametersSet.MEAN_QUANTILE,
        CalibrationMethod.ENTROPY: RangeEstimatorParametersSet.HISTOGRAM,
    }[method]
    return AdvancedQuantizationParameters(activations_range_estimator_params=ranges)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How NNCF is called: the first build uses the defaults, each recovery candidate moves further from them.

    Attributes:
        mixed: ``QuantizationPreset.MIXED`` (asymmetric activations) instead of NNCF's performance preset.
        transformer: ``ModelType.TRANSFORMER`` (NNCF's patterns for attention blocks).
        agreement: accuracy control driven by agreement with the FP32 outputs (no labels needed).
        recurrent_float: recurrent layers (LSTM, GRU, RNN) left out of quantization (:data:`RECURRENT_TYPES`).
        range_float: the ops on the paths into ``Log``/``Sqrt`` left out of quantization (:func:`range_sensitive_ops`).
    """

    mixed: bool = False
    transformer: bool = False
    agreement: bool = False
    recurrent_float: bool = False
    range_float: bool = False


def looks_like_transformer(model: Any) -> bool:
    """Whether the OpenVINO model multiplies two activations (attention scores, attention × values)."""
    for op in model.get_ordered_ops():
        if op.get_type_name() == "MatMul" and not any(_is_constant(op.input_value(i).get_node()) for i in (0, 1)):
            return True
    return False


def _is_constant(node: Any) -> bool:
    while node.get_type_name() in ("Convert", "Reshape", "Transpose", "Unsqueeze", "Squeeze"):
        node = node.input_value(0).get_node()
    return bool(node.get_type_name() == "Constant")


@contextlib.contextmanager
def _quiet_nncf(nncf: Any) -> Iterator[None]:
    """NNCF logs at INFO and draws progress bars on stdout: keep stdout for results (bars go to stderr)."""
    from nncf.common.logging import nncf_logger

    level = nncf_logger.level
    nncf.set_log_level(logging.WARNING)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        nncf.set_log_level(level)


def quantize_ir(
    src: Path,
    out_dir: Path,
    name: str,
    calib: SampleSet,
    options: QuantizeOptions,
    *,
    batch: int,
    fixed_batch: bool,
    evaluation: SampleSet | None = None,
    whole: bool = False,
    recipe: Recipe = Recipe(),
) -> tuple[Path, list[Path], tuple[tuple[str, str], ...]]:
    """Quantize ``src`` with NNCF and save ``out_dir/<name>.xml/.bin``; returns (xml, files, settings).

    Accuracy control runs on labels when ``options.max_drop`` is set and ``evaluation`` is labelled, else on
    agreement with FP32 when ``recipe.agreement`` is set and ``evaluation`` is given.
    """
    ov = import_openvino()
    nncf = import_nncf()
    model = read_ov_model(src)
    calibration = _dataset(nncf, calib, batch, fixed_batch, whole=whole)
    common: dict[str, Any] = {
        "target_device": nncf.TargetDevice.CPU,
        "subset_size": len(calib),
        "ignored_scope": _ignored_scope(nncf, model, options.exclude, recipe),
        "preset": nncf.QuantizationPreset.MIXED if recipe.mixed else None,
        "model_type": nncf.ModelType.TRANSFORMER if recipe.transformer else None,
    }
    advanced = _advanced(nncf, options.method)
    labelled = options.max_drop is not None and evaluation is not None and evaluation.labelled
    agreement = recipe.agreement and not labelled and evaluation is not None
    settings = _settings(options, recipe, len(calib), labelled or agreement)
    try:
        with _quiet_nncf(nncf):
            if labelled or agreement:
                assert evaluation is not None
                quantized = _controlled(
                    nncf,
                    model,
                    calibration,
                    evaluation,
                    options,
                    common,
                    advanced,
                    settings,
                    batch=batch,
                    fixed=fixed_batch,
                    whole=whole,
                    labelled=labelled,
                )
            else:
                quantized = nncf.quantize(model, calibration, advanced_parameters=advanced, **common)
    except (InvalidInputError, ConversionError):
        raise
    except Exception as exc:  # NNCF raises its own error types and plain RuntimeErrors from OpenVINO
        text = error_text(exc) if isinstance(exc, RuntimeError) else first_line(exc)
        raise ConversionError(f"NNCF quantization failed: {text}", path=src) from exc
    xml = f"{name}.xml"
    with atomic_files(out_dir) as staging:
        ov.save_model(quantized, str(staging / xml), compress_to_fp16=False)
    files = [out_dir / xml, out_dir / f"{name}.bin"]
    return out_dir / xml, files, tuple(settings)


def _settings(options: QuantizeOptions, recipe: Recipe, subset: int, controlled: bool) -> list[tuple[str, str]]:
    preset = (
        "mixed (symmetric weights, asymmetric activations)"
        if recipe.mixed
        else "NNCF default (performance: symmetric weights and activations)"
    )
    settings = [
        ("engine", "nncf.quantize_with_accuracy_control" if controlled else "nncf.quantize"),
        ("target_device", "CPU"),
        ("preset", preset),
        ("weights", "s8 symmetric per output channel"),
        ("activations", "8-bit per tensor " + ("(asymmetric)" if recipe.mixed else "(u8 after ReLU)")),
        ("calibration", options.method.value if options.method else "NNCF default range estimators"),
        ("subset_size", str(subset)),
    ]
    if recipe.transformer:
        settings.append(("model_type", "transformer"))
    if recipe.range_float:
        settings.append(("float_ops", "the ops into Log/Sqrt (a spectrum's small values would round to 0)"))
    if recipe.recurrent_float:
        settings.append(("recurrent_layers", "kept in float (the CPU plugin's u8 RNN primitive adds the error)"))
    return settings


def _controlled(
    nncf: Any,
    model: Any,
    calibration: Any,
    evaluation: SampleSet,
    options: QuantizeOptions,
    common: dict[str, Any],
    advanced: Any,
    settings: list[tuple[str, str]],
    *,
    batch: int,
    fixed: bool,
    whole: bool,
    labelled: bool,
) -> Any:
    """``nncf.quantize_with_accuracy_control``: top-1 on labels (``--max-drop``), else agreement with FP32."""
    if labelled:
        assert options.max_drop is not None
        settings.append(("max_drop", f"{options.max_drop:g} points (absolute top-1)"))
        return nncf.quantize_with_accuracy_control(
            model,
            calibration,
            _dataset(nncf, evaluation, batch, fixed, labels=True),
            top1_validation,
            max_drop=options.max_drop / 100.0,
            drop_type=nncf.DropType.ABSOLUTE,
            advanced_quantization_parameters=advanced,
            **common,
        )
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    items = evaluation.subset(np.arange(min(len(evaluation), AGREEMENT_ITEMS)))
    validation, score = agreement_data(nncf, model, items, batch, fixed, whole, options.tolerance)
    restorer = AdvancedAccuracyRestorerParameters(max_num_iterations=MAX_REVERTED, ranking_subset_size=RANKING_ITEMS)
    settings.append(
        (
            "accuracy_control",
            f"agreement with FP32 on {len(items)} evaluation samples (score 1/(1 + error/int8 bound), "
            f"max_drop {AGREEMENT_DROP:g}); at most {MAX_REVERTED} layer groups back to float",
        )
    )
    return nncf.quantize_with_accuracy_control(
        model,
        calibration,
        validation,
        score,
        max_drop=AGREEMENT_DROP,
        drop_type=nncf.DropType.ABSOLUTE,
        advanced_quantization_parameters=advanced,
        advanced_accuracy_restorer_parameters=restorer,
        **common,
    )


def layer_summary(artifact: Path, threads: int | None = None) -> LayerSummary:
    """Executed precision per layer from the compiled model's runtime graph, FakeQuantize count from the IR."""
    ov = import_openvino()
    core = ov.Core()
    model = core.read_model(str(artifact))
    quant_nodes = sum(1 for op in model.get_ordered_ops() if op.get_type_name() == "FakeQuantize")
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(model, "CPU", config)
    counts: collections.Counter[str] = collections.Counter()
    int8 = 0
    floats: list[str] = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str)
        precision = info["runtimePrecision"].astype(str)
        if layer in ("Const", "Input", "Output"):
            continue
        counts[f"{layer}/{precision}"] += 1
        if precision in INT8_PRECISIONS:
            int8 += 1
        elif layer in COMPUTE_LAYERS:
            floats.append(f"{layer}:{info['originalLayersNames'].astype(str)}")
    return LayerSummary(
        int8_ops=int8, float_layers=tuple(floats), quant_nodes=quant_nodes, op_counts=tuple(sorted(counts.items()))
    )


def engine_name() -> str:
    import importlib.metadata

    ov = import_openvino()
    try:
        nncf_version = importlib.metadata.version("nncf")
    except importlib.metadata.PackageNotFoundError:
        nncf_version = "?"
    return f"nncf {nncf_version} + openvino {ov.get_version()}"


def build(job: Job, work: Path) -> Built:
    """NNCF post-training quantization (with accuracy control under --max-drop)."""
    job.say("OpenVINO: NNCF quantization" + (" with accuracy control" if job.options.max_drop is not None else ""))
    xml, files, settings = quantize_ir(
        job.src,
        job.out_dir,
        f"{job.name}.int8",
        job.calib,
        job.options,
        batch=batch_for(job.specs, 1),
        fixed_batch=job.fixed,
        evaluation=job.evaluation if job.options.max_drop is not None else None,
        whole=job.whole,
    )
    return Built(xml, tuple(files), engine_name(), settings, explain(job.env))


def recover(job: Job, work: Path, built: Built) -> Iterator[tuple[str, Callable[[], tuple[Built, tuple[str, ...]]]]]:
    """Recovery candidates (:mod:`modelport.quantization.recover`), each built in its own folder under ``work``.

    1. NNCF's mixed preset (asymmetric activations: a range that does not start at 0 keeps its 256 steps), with
       NNCF's transformer patterns when the model multiplies two activations;
    2. when the model has LSTM/GRU/RNN layers or a ``Log``/``Sqrt``: those layers and the ops into the
       ``Log``/``Sqrt`` kept in float (:data:`RECURRENT_TYPES`, :func:`range_sensitive_ops`);
    3. with those in float too, accuracy control driven by agreement with FP32 (no labels needed): NNCF returns
       the layers that add the most error to float, ranked by its own algorithm, until every evaluation item is
       within the int8 tolerance (skipped under ``--max-drop``: the first build already ran accuracy control on
       the labels).
    """
    model = read_ov_model(job.src)
    transformer = looks_like_transformer(model)
    recurrent = bool(recurrent_types(model))
    ranged = bool(range_sensitive_ops(model))
    kind = ", transformer model type" if transformer else ""
    recipes = [(f"NNCF mixed preset (asymmetric activations{kind})", Recipe(mixed=True, transformer=transformer))]
    if recurrent or ranged:
        what = " and ".join(w for w, on in (("recurrent layers", recurrent), ("ops into Log/Sqrt", ranged)) if on)
        structural = Recipe(True, transformer, recurrent_float=recurrent, range_float=ranged)
        recipes.append((f"NNCF mixed preset, {what} kept in float", structural))
    if job.options.max_drop is None:
        control = Recipe(True, transformer, agreement=True, recurrent_float=recurrent, range_float=ranged)
        recipes.append(("NNCF accuracy control on agreement with FP32", control))
    for i, (label, recipe) in enumerate(recipes, start=1):
        yield label, functools.partial(_candidate, job, work / f"openvino-recover-{i}", built, recipe)


def _candidate(job: Job, folder: Path, built: Built, recipe: Recipe) -> tuple[Built, tuple[str, ...]]:
    """One recovery candidate and the compute layers it keeps in float that the first build ran in integer."""
    folder.mkdir(parents=True, exist_ok=True)
    xml, files, settings = quantize_ir(
        job.src,
        folder,
        f"{job.name}.int8",
        job.calib,
        job.options,
        batch=batch_for(job.specs, 1),
        fixed_batch=job.fixed,
        evaluation=job.evaluation if recipe.agreement else None,
        whole=job.whole,
        recipe=recipe,
    )
    kept: tuple[str, ...] = ()
    if recipe.agreement or recipe.recurrent_float or recipe.range_float:
        before = frozenset(layer_summary(built.artifact, job.options.threads).float_layers)
        kept = tuple(f for f in layer_summary(xml, job.options.threads).float_layers if f not in before)
    if recipe.range_float:
        kept += range_sensitive_ops(read_ov_model(job.src))
    return Built(xml, tuple(files), engine_name(), settings, explain(job.env)), kept
