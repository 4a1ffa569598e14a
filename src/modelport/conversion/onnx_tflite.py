"""ONNX → TFLite (LiteRT) float32/float16 through onnx2tf.

onnx2tf rewrites the graph to TensorFlow's NHWC layout: a 4-D image input ``[N, C, H, W]`` becomes
``[N, H, W, C]`` in the TFLite model, and 4-D outputs come out NHWC too (verification transposes; see
:mod:`modelport.conversion.io_match`). Inputs named in ``inputs_as_nchw`` keep their NCHW layout
(``keep_ncw_or_nchw_or_ncdhw_input_names``). Dynamic input dims are fixed from ``input_shapes``
(``overwrite_input_shape``).

Three onnx2tf habits are contained here:

* it runs ``onnxsim`` from PATH and **overwrites the input .onnx in place**: modelport passes
  ``not_use_onnxsim=True`` and hands it a copy in a staging directory, never the user's file;
* for models whose every input is 4-D with 3 channels it **downloads a calibration sample from GitHub**, even
  for float32 conversion (offline that is a ConnectionError): it looks for
  ``calibration_image_sample_data_20x128x128x3_float32.npy`` in its working directory first, so the worker
  runs in the staging directory with a seeded U(0, 1) array of that shape there (onnx2tf only uses it for its
  own optional accuracy check);
* it prints a lot and keeps process-wide Keras state: it runs in a child process
  (:mod:`modelport.conversion._onnx2tf_worker`), which also keeps TensorFlow out of this process.

Public API for other modules (e.g. quantization): :func:`tflite_from_onnx`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from modelport.conversion.base import ConversionReport, ConvertOptions, register_converter
from modelport.conversion.io_match import match_name
from modelport.errors import ConversionError, RuntimeUnavailable
from modelport.formats import Format, Precision
from modelport.model_io import atomic_path, external_data_files, load_proto

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
_SUFFIX = {Precision.FP32: "_float32.tflite", Precision.FP16: "_float16.tflite"}


def onnx2tf_version() -> str:
    """The installed onnx2tf version, or RuntimeUnavailable naming the extra."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("onnx2tf")
    except PackageNotFoundError as exc:
        raise RuntimeUnavailable("onnx2tf is not installed", hint="pip install 'modelport[tflite]'") from exc


def tflite_from_onnx(
    src: str | Path,
    dst: str | Path,
    *,
    precision: Precision = Precision.FP32,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    keep_nchw: Sequence[str] = (),
    timeout_s: float = 1800.0,
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
    if precision not in _SUFFIX:
        raise ConversionError(
            f"ONNX → TFLite writes fp32 or fp16, not {precision.value}", hint="int8 comes from `modelport quantize`"
        )
    onnx2tf_version()
    proto = load_proto(src, check=False, load_external_data=False)
    names = [i.name for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    shapes = {match_name(k, names): tuple(v) for k, v in (input_shapes or {}).items()}
    keep = [match_name(k, names) for k in keep_nchw]
    with tempfile.TemporaryDirectory(prefix="modelport-onnx2tf-") as tmp:
        work = Path(tmp)
        copy = work / "model.onnx"
        shutil.copyfile(src, copy)
        for extra in external_data_files(src):
            shutil.copyfile(src.parent / extra, work / extra)
        rng = np.random.default_rng(0)
        np.save(work / CALIBRATION_FILE, rng.random((20, 128, 128, 3), dtype=np.float32))
        request = {
            "input_onnx_file_path": str(copy),
            "output_folder_path": str(work / "out"),
            "not_use_onnxsim": True,
            "non_verbose": True,
            "output_signaturedefs": True,
            "copy_onnx_input_output_names_to_tflite": True,
            "overwrite_input_shape": [f"{k}:{','.join(str(d) for d in v)}" for k, v in shapes.items()] or None,
            "keep_ncw_or_nchw_or_ncdhw_input_names": keep or None,
            "result": str(work / "result.json"),
        }
        (work / "request.json").write_text(json.dumps(request), encoding="utf-8")
        nodes: dict[str, list[str]] = {}
        for node in proto.graph.node:
            nodes.setdefault(node.op_type, []).append(node.name or node.output[0])
        _run_worker(work, src, timeout_s, nodes)
        produced = work / "out" / f"model{_SUFFIX[precision]}"
        if not produced.exists():
            raise ConversionError(f"onnx2tf wrote no {produced.name}", path=src)
        outputs = [o.name for o in proto.graph.output]
        with atomic_path(dst) as out:
            name_tflite_outputs(produced, out, outputs)
    notes = [f"fixed input shapes {shapes}"] if shapes else []
    notes.append(f"inputs kept NCHW: {', '.join(keep)}" if keep else "4-D inputs/outputs NHWC (onnx2tf layout)")
    return notes


def name_tflite_outputs(src: Path, dst: Path, names: Sequence[str]) -> None:
    """Copy a single-subgraph TFLite file, naming its output tensors ``names`` in order.

    onnx2tf keeps the ONNX input names but calls the outputs ``Identity``, ``Identity_1`` …; it keeps the
    ONNX output order, so positional renaming restores the names.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(src))
    graph = model.subgraphs[0]
    if len(model.subgraphs) != 1 or len(graph.outputs) != len(names):
        shutil.copyfile(src, dst)
        return
    for index, name in zip(graph.outputs, names, strict=True):
        graph.tensors[index].name = name.encode()
    flatbuffer_utils.write_model(model, str(dst))


def _run_worker(work: Path, src: Path, timeout_s: float, nodes: Mapping[str, list[str]]) -> None:
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
    }
    cmd = [sys.executable, "-m", "modelport.conversion._onnx2tf_worker", str(work / "request.json")]
    try:
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise ConversionError(f"onnx2tf took longer than {timeout_s:.0f} s", path=src) from exc
    result_file = work / "result.json"
    result = json.loads(result_file.read_text(encoding="utf-8")) if result_file.exists() else None
    if proc.returncode == 0 and result is not None and result.get("error") is None:
        return
    log.debug("onnx2tf output:\n%s\n%s", proc.stdout[-8000:], proc.stderr[-8000:])
    raise _onnx2tf_error(proc.stdout + proc.stderr, result, src, nodes)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _onnx2tf_error(
    output: str, result: dict[str, str] | None, src: Path, nodes: Mapping[str, list[str]]
) -> ConversionError:
    text = _ANSI.sub("", output)
    op = re.findall(r"onnx_op_type:\s*(\S+)", text)
    node = re.findall(r"onnx_op_name:\s*(\S+)", text)
    errors = [line.strip() for line in text.splitlines() if line.strip().startswith("ERROR:")]
    detail = (result or {}).get("error") or (errors[-1] if errors else "") or "no message"
    missing = re.search(r"No module named 'onnx2tf\.ops\.(\w+)'", detail)
    if missing:  # onnx2tf has one module per op it converts
        op, node = [missing.group(1)], nodes.get(missing.group(1), ["?"])[:1]
        detail = f"onnx2tf has no converter for {op[0]}"
    if op:
        return ConversionError(
            f"onnx2tf cannot convert op {op[-1]} (node {node[-1] if node else '?'}): {detail.strip()[:300]}",
            path=src,
            hint="simplify the model first (`modelport optimize`), fix its dynamic shapes with --input-shape, "
            "or replace the op before converting",
        )
    return ConversionError(f"onnx2tf failed: {detail.strip().splitlines()[0][:300]}", path=src)


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
