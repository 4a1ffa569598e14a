"""ONNX → TFLite (LiteRT) float32/float16 through onnx2tf, and the one place modelport calls onnx2tf.

onnx2tf rewrites the graph to TensorFlow's NHWC layout: a 4-D image input ``[N, C, H, W]`` becomes
``[N, H, W, C]`` in the TFLite model, and 4-D outputs come out NHWC too (verification transposes; see
:mod:`modelport.verify.matching`). Inputs named in ``inputs_as_nchw`` keep their NCHW layout
(``keep_ncw_or_nchw_or_ncdhw_input_names``).

:func:`run_onnx2tf` is the entry point for every caller (this converter and the LiteRT INT8 quantizer, which
takes onnx2tf's SavedModel). It contains onnx2tf's habits once:

* it runs ``onnxsim`` from PATH and **rewrites its input .onnx in place** (1.28.8 does so even with
  ``not_use_onnxsim=True``): it always gets ``not_use_onnxsim=True`` and a private copy in the working directory,
  never the caller's file;
* its ``overwrite_input_shape`` only reaches onnxsim, so with onnxsim off it does nothing: dynamic dims are
  fixed in the private copy with modelport's ``fix-dims`` pass instead (other passes a caller asks for, such as
  ``zero-pad-maxpool``, run on the copy too);
* for models whose every input is 4-D with 3 channels it **downloads a calibration sample from GitHub**, even
  for float32 conversion (offline that is a ConnectionError): it looks for
  ``calibration_image_sample_data_20x128x128x3_float32.npy`` in its working directory first, so the worker
  runs in the working directory with a seeded U(0, 1) array of that shape there (onnx2tf only uses it for its
  own optional accuracy check);
* it prints a lot and keeps process-wide Keras state: it runs in a child process
  (:mod:`modelport.conversion._onnx2tf_worker`, protocol :mod:`modelport.conversion.worker`), which also keeps
  TensorFlow out of this process. When it fails, the error names the ONNX op and node its log blames.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx

from modelport.conversion.base import ConversionReport, ConvertOptions, register_converter
from modelport.conversion.worker import DEFAULT_TIMEOUT_S, WorkerFailure, run_worker
from modelport.errors import ConversionError, RuntimeUnavailable, first_line, optional_import
from modelport.formats import Format, Precision
from modelport.model_io import atomic_path, external_data_files, load_proto
from modelport.verify.matching import match_name

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
#: The TFLite files onnx2tf writes beside its SavedModel, by weight precision (named after the private copy).
TFLITE_FILES = {Precision.FP32: "model_float32.tflite", Precision.FP16: "model_float16.tflite"}
_HINT = (
    "simplify the model first (`modelport optimize`), fix its dynamic shapes with --input-shape, "
    "or replace the op before converting"
)


def onnx2tf_version() -> str:
    """The installed onnx2tf version, or RuntimeUnavailable naming the extra (onnx2tf is not imported here)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onnx2tf")
    except PackageNotFoundError as exc:
        raise RuntimeUnavailable("onnx2tf is not installed", hint="pip install 'modelport[tflite]'") from exc


@dataclasses.dataclass(frozen=True)
class Onnx2tfOutput:
    """What :func:`run_onnx2tf` produced.

    Attributes:
        saved_model: onnx2tf's output folder, a SavedModel (``saved_model.pb``, ``variables/``) with the
            float32 and float16 TFLite models beside it (:meth:`tflite`).
        outputs: the ONNX model's output names, in order (onnx2tf calls them ``Identity``, ``Identity_1`` …).
        fixed_shapes: ``(input, shape)`` pairs fixed in the copy onnx2tf converted.
        kept_nchw: inputs that kept their NCHW layout.
        rewrites: ``(pass, nodes added)`` for each requested pass that changed the copy.
    """

    saved_model: Path
    outputs: tuple[str, ...]
    fixed_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    kept_nchw: tuple[str, ...] = ()
    rewrites: tuple[tuple[str, int], ...] = ()

    def tflite(self, precision: Precision) -> Path:
        """The TFLite model onnx2tf wrote with ``precision`` weights (fp32 or fp16)."""
        return self.saved_model / _tflite_file(precision)


def _tflite_file(precision: Precision) -> str:
    if precision not in TFLITE_FILES:
        raise ConversionError(
            f"ONNX → TFLite writes fp32 or fp16, not {precision.value}", hint="int8 comes from `modelport quantize`"
        )
    return TFLITE_FILES[precision]


def run_onnx2tf(
    src: str | Path,
    work: str | Path,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    keep_nchw: Sequence[str] = (),
    passes: Sequence[str] = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Onnx2tfOutput:
    """Convert the ONNX file ``src`` with onnx2tf into a SavedModel plus float32/float16 TFLite models.

    Args:
        src: ONNX model (read only: onnx2tf works on a private copy in ``work``).
        work: an empty or new working directory (the copy, the request, the log, onnx2tf's output).
        input_shapes: fixed shapes for inputs with dynamic dims, by ONNX input name (as in the ONNX model).
        keep_nchw: ONNX inputs that keep their layout instead of becoming NHWC.
        passes: modelport passes to run on the copy first (e.g. ``zero-pad-maxpool``).
        timeout_s: limit for the onnx2tf process.

    Returns:
        Where the SavedModel and TFLite files are, and what was done to the copy.

    Raises:
        ConversionError: onnx2tf failed (the message names the ONNX op and node when onnx2tf's log does).
        RuntimeUnavailable: onnx2tf is missing.
        InvalidInputError: ``input_shapes`` or ``keep_nchw`` name no input of the model.
    """
    onnx2tf_version()
    src, work = Path(src), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    graph = load_proto(src, check=False, load_external_data=False).graph
    names = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    shapes = {match_name(k, names): tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}
    keep = tuple(dict.fromkeys(match_name(k, names) for k in keep_nchw))
    copy = work / "model.onnx"  # its stem names onnx2tf's TFLite files (TFLITE_FILES)
    rewrites = _private_copy(src, copy, shapes, passes)
    # onnx2tf downloads a calibration sample for 3-channel image models unless this file is in its directory
    np.save(work / CALIBRATION_FILE, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    request = {
        "input_onnx_file_path": str(copy),
        "output_folder_path": str(work / "out"),
        "not_use_onnxsim": True,
        "non_verbose": True,
        "output_signaturedefs": True,
        "copy_onnx_input_output_names_to_tflite": True,
        "keep_ncw_or_nchw_or_ncdhw_input_names": list(keep) or None,
    }
    diagnose = functools.partial(
        _diagnose, src=src, nodes=_nodes(load_proto(copy, check=False, load_external_data=False))
    )
    run_worker(
        "modelport.conversion._onnx2tf_worker",
        request,
        work,
        what="onnx2tf",
        src=src,
        timeout_s=timeout_s,
        diagnose=diagnose,
    )
    if not (work / "out").is_dir():
        raise ConversionError("onnx2tf wrote no SavedModel", path=src)
    return Onnx2tfOutput(
        saved_model=work / "out",
        outputs=tuple(o.name for o in graph.output),
        fixed_shapes=tuple(shapes.items()),
        kept_nchw=keep,
        rewrites=rewrites,
    )


def _private_copy(
    src: Path, copy: Path, shapes: Mapping[str, tuple[int, ...]], passes: Sequence[str]
) -> tuple[tuple[str, int], ...]:
    """Write the model onnx2tf may rewrite: the file itself, or the result of ``fix-dims`` and ``passes``."""
    if not shapes and not passes:
        shutil.copyfile(src, copy)
        for extra in external_data_files(src):
            shutil.copyfile(src.parent / extra, copy.parent / extra)
        return ()
    from modelport.model_io import load_model, save_model
    from modelport.passes import resolve_passes, run_passes
    from modelport.passes.shapes import FixDimsOptions

    model = load_model(src, check=False)
    names = resolve_passes([*passes, *(("fix-dims", "shape-inference") if shapes else ())])
    options = {"fix-dims": FixDimsOptions(input_shapes=tuple(shapes.items()))} if shapes else {}
    stats, _ = run_passes(model, names, options)
    save_model(model, copy)
    done = tuple((s.name, s.nodes_after - s.nodes_before) for s in stats if s.modified and s.name in passes)
    for name, added in done:
        log.info("%s: %s changed the copy for onnx2tf (%+d nodes)", src.name, name, added)
    return done


def _nodes(proto: onnx.ModelProto) -> dict[str, str]:
    """Node name (or first output) → op type, in graph order, for naming the node a failure is about."""
    return {(n.name or (n.output[0] if n.output else "")): n.op_type for n in proto.graph.node}


def _diagnose(failure: WorkerFailure, *, src: Path, nodes: Mapping[str, str]) -> ConversionError | None:
    """The ONNX op and node onnx2tf's log blames, or None when it names none."""
    text = failure.log
    detail = failure.detail()
    op_types = re.findall(r"onnx_op_type:\s*(\S+)", text)
    node_names = re.findall(r"onnx_op_name:\s*(\S+)", text)
    missing = re.search(r"No module named '?onnx2tf\.ops\.(\w+)", f"{failure.error or ''}\n{text}")
    if missing:  # onnx2tf has one module per op it converts
        op = missing.group(1)
        node = next((name for name, t in nodes.items() if t == op), "?")
        detail = f"onnx2tf has no converter for {op}"
    elif node_names or op_types:
        node = node_names[-1] if node_names else "?"
        op = op_types[-1] if op_types else nodes.get(node, "")
    else:
        return None
    what = f"op {op} (node {node})" if op else f"node {node}"
    return ConversionError(f"onnx2tf cannot convert {what}: {first_line(detail, 300)}", path=src, hint=_HINT)


def tflite_from_onnx(
    src: str | Path,
    dst: str | Path,
    *,
    precision: Precision = Precision.FP32,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    keep_nchw: Sequence[str] = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[str]:
    """Convert the ONNX file ``src`` to the TFLite file ``dst`` with onnx2tf (float32 or float16 weights).

    Args:
        src: ONNX model (read only; onnx2tf works on a copy).
        dst: the .tflite file to write (atomically).
        precision: fp32 or fp16 weights.
        input_shapes: fixed shapes for inputs with dynamic dims, by ONNX input name (NCHW as in the ONNX model).
        keep_nchw: ONNX inputs that stay NCHW instead of becoming NHWC.
        timeout_s: limit for the onnx2tf process.

    Returns:
        Notes on what was done (fixed shapes, layouts).

    Raises:
        ConversionError: onnx2tf failed (the message names the ONNX op and node when onnx2tf does).
        RuntimeUnavailable: onnx2tf or TensorFlow is missing.
    """
    src, dst = Path(src), Path(dst)
    _tflite_file(precision)  # fail before starting onnx2tf
    with tempfile.TemporaryDirectory(prefix="modelport-onnx2tf-") as tmp:
        result = run_onnx2tf(src, tmp, input_shapes=input_shapes, keep_nchw=keep_nchw, timeout_s=timeout_s)
        produced = result.tflite(precision)
        if not produced.exists():
            raise ConversionError(f"onnx2tf wrote no {produced.name}", path=src)
        with atomic_path(dst) as out:
            name_tflite_outputs(produced, out, result.outputs)
    notes = [f"fixed input shapes {dict(result.fixed_shapes)}"] if result.fixed_shapes else []
    keep = result.kept_nchw
    notes.append(f"inputs kept NCHW: {', '.join(keep)}" if keep else "4-D inputs/outputs NHWC (onnx2tf layout)")
    return notes


def name_tflite_outputs(src: Path, dst: Path, names: Sequence[str]) -> None:
    """Copy a single-subgraph TFLite file, naming its output tensors ``names`` in order.

    onnx2tf keeps the ONNX input names but calls the outputs ``Identity``, ``Identity_1`` …; it keeps the
    ONNX output order, so positional renaming restores the names.
    """
    flatbuffer_utils = optional_import("ai_edge_litert.tools.flatbuffer_utils", extra="tflite", what="LiteRT")
    model = flatbuffer_utils.read_model(str(src))
    graph = model.subgraphs[0]
    if len(model.subgraphs) != 1 or len(graph.outputs) != len(names):
        shutil.copyfile(src, dst)
        return
    for index, name in zip(graph.outputs, names, strict=True):
        graph.tensors[index].name = name.encode()
    flatbuffer_utils.write_model(model, str(dst))


@register_converter(Format.ONNX, Format.TFLITE)
def tflite_route_from_onnx(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Registered route ONNX → TFLite: ``out_dir/<name>.tflite`` through :func:`tflite_from_onnx`."""
    t0 = time.perf_counter()
    dst = out_dir / f"{options.name}.tflite"
    notes = tflite_from_onnx(
        src, dst, precision=options.precision, input_shapes=options.shapes(), keep_nchw=options.inputs_as_nchw
    )
    return ConversionReport.for_file(
        src,
        Format.ONNX,
        Format.TFLITE,
        options.precision,
        dst,
        t0,
        f"onnx2tf {onnx2tf_version()}",
        notes=tuple(notes),
    )
