"""OpenVINO INT8 through NNCF: ``nncf.quantize``, or ``nncf.quantize_with_accuracy_control`` under ``--max-drop``.

NNCF inserts FakeQuantize operations (weights: symmetric int8 per output channel; activations: 8-bit per
tensor, unsigned after ReLU) tuned for ``TargetDevice.CPU``; on saving, OpenVINO stores the quantized weights as
int8 constants. The CPU plugin then runs convolutions and matrix products as u8×i8 oneDNN primitives (with VNNI
``vpdpbusd`` on AVX-512 VNNI / AVX-VNNI CPUs, AMX tiles where present). :func:`layer_summary` reads the
compiled model's executed graph, so the report says which layers really run in integer precision.

With accuracy control, NNCF evaluates the FP32 and INT8 models on the labelled evaluation data with our
validation function (top-1, and 1/0 per sample so it can rank layers), and returns layers to float, most
harmful first, until the drop is within ``max_drop`` (absolute, as a fraction: points / 100).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
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
COMPUTE_LAYERS = frozenset({"Convolution", "Deconvolution", "FullyConnected", "MatMul", "GroupConvolution"})
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


def _ignored_scope(nncf: Any, model: Any, exclude: Sequence[str]) -> Any:
    if not exclude:
        return None
    ops = list(model.get_ordered_ops())
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
    return nncf.IgnoredScope(names=by_name, types=by_type)


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


def _top1_validation(compiled: Any, data: Any) -> tuple[float, list[float]]:
    """NNCF validation function: top-1 over the items, and each item's accuracy (for ranking layers)."""
    per_item: list[float] = []
    total = 0
    hits = 0.0
    output = compiled.outputs[0]
    for feeds, labels, n in data:
        logits = np.asarray(compiled(feeds)[output])[:n].reshape(n, -1)
        correct = (np.argmax(logits, axis=1) == labels).astype(np.float64)
        per_item.append(float(correct.mean()))
        hits += float(correct.sum())
        total += n
    return hits / max(total, 1), per_item


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
) -> tuple[Path, list[Path], tuple[tuple[str, str], ...]]:
    """Quantize ``src`` with NNCF and save ``out_dir/<name>.xml/.bin``; returns (xml, files, settings).

    Accuracy control runs when ``options.max_drop`` is set and ``evaluation`` is labelled.
    """
    ov = import_openvino()
    nncf = import_nncf()
    model = read_ov_model(src)
    calibration = _dataset(nncf, calib, batch, fixed_batch, whole=whole)
    common: dict[str, Any] = {
        "target_device": nncf.TargetDevice.CPU,
        "subset_size": len(calib),
        "ignored_scope": _ignored_scope(nncf, model, options.exclude),
    }
    advanced = _advanced(nncf, options.method)
    controlled = options.max_drop is not None and evaluation is not None and evaluation.labelled
    settings = [
        ("engine", "nncf.quantize_with_accuracy_control" if controlled else "nncf.quantize"),
        ("target_device", "CPU"),
        ("preset", "NNCF default (performance: symmetric weights and activations)"),
        ("weights", "s8 symmetric per output channel"),
        ("activations", "8-bit per tensor (u8 after ReLU)"),
        ("calibration", options.method.value if options.method else "NNCF default range estimators"),
        ("subset_size", str(len(calib))),
    ]
    try:
        with _quiet_nncf(nncf):
            if controlled:
                assert evaluation is not None and options.max_drop is not None
                quantized = nncf.quantize_with_accuracy_control(
                    model,
                    calibration,
                    _dataset(nncf, evaluation, batch, fixed_batch, labels=True),
                    _top1_validation,
                    max_drop=options.max_drop / 100.0,
                    drop_type=nncf.DropType.ABSOLUTE,
                    advanced_quantization_parameters=advanced,
                    **common,
                )
                settings.append(("max_drop", f"{options.max_drop:g} points (absolute top-1)"))
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
