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
* tensor and node names that are not TensorFlow scope names (``@``, ``;``, ``{``, ``"``, spaces …; graph inputs
  and outputs starting with a digit) are renamed in the copy (``[^A-Za-z0-9_.:/-]`` → ``_``, ``t_`` before a
  leading digit, a numeric suffix where that collides); onnx2tf itself maps ``:`` and a leading ``/``. The
  TFLite inputs, outputs and signature get the ONNX names back, and a failure names the original node;
* ``Erf`` (GELU) would become a Select-TF op that LiteRT cannot run: it is rewritten into builtins in the copy
  (:mod:`modelport.rules.erf`, Abramowitz–Stegun 7.1.26, ``|ε| ≤ 1.5e-7``, measured ``≤ 6e-7`` in float32);
* for models whose every input is 4-D with 3 channels it **downloads a calibration sample from GitHub**, even
  for float32 conversion (offline that is a ConnectionError): it looks for
  ``calibration_image_sample_data_20x128x128x3_float32.npy`` in its working directory first, so the worker
  runs in the working directory with a seeded U(0, 1) array of that shape there (onnx2tf only uses it for its
  own optional accuracy check);
* it prints a lot and keeps process-wide Keras state: it runs in a child process
  (:mod:`modelport.conversion._onnx2tf_worker`, protocol :mod:`modelport.conversion.worker`), which also keeps
  TensorFlow out of this process. When it fails, the error names the ONNX op and node its log blames.

**Settings ladder.** One set of onnx2tf settings does not fit every real model, so :func:`run_onnx2tf` tries the
rungs of :func:`settings_ladder` in order, at most four, within one time limit, until one converts *and* its
TFLite model matches the source (ONNX Runtime vs LiteRT on seeded feeds through the comparator, at the
precision's tolerance; a dynamic artifact also at a second size):

1. ``requested``: the shapes and layouts the caller asked for (NHWC; 4-D inputs declared channels-last
   ``[N, H, W, 1|3|4]`` keep that layout instead of being transposed as if they were NCHW);
2. ``static, optimized``: every free dim fixed, the batch too (onnx2tf handles many ops only with static
   shapes), and modelport's optimizer run on the copy (constant folding, no-op removal, fusions: what onnx2tf's
   own onnxsim step would do, which is off because it rewrites its input);
3. ``static, optimized, layouts kept``: also every input in its declared shape and layout
   (``keep_shape_absolutely_input_names``), grouped convolutions split (``disable_group_convolution``) and
   recurrent layers unrolled (``enable_rnn_unroll``) where the model has them;
4. ``as declared``: the model's own dims, nothing fixed — what onnx2tf does when called directly.

A rung that would repeat an earlier one is skipped. Every attempt is recorded (setting, outcome, seconds) in
the result and the conversion notes; when all fail, one error lists each attempt and why. A missing onnx2tf
converter for an op and a time-out end the ladder at once (no setting changes them).
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
from typing import Any

import numpy as np
import onnx

from modelport.conversion.base import ConversionReport, ConvertOptions, register_converter
from modelport.conversion.onnx2tf_prep import private_copy, restore_tflite_names
from modelport.conversion.worker import DEFAULT_TIMEOUT_S, WorkerFailure, run_worker
from modelport.errors import ConversionError, ModelportError, RuntimeUnavailable, first_line
from modelport.formats import Format, Precision
from modelport.inputs import TensorSpec, random_feeds, verification_shapes
from modelport.inspection.onnx_model import tensor_spec
from modelport.model_guard import all_nodes
from modelport.model_io import atomic_path, load_proto
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
        rewrites: ``(pass, nodes added)`` for each requested pass (and ``decompose-erf``) that changed the copy.
        renamed: ``(original, new)`` for each tensor or node name sanitised in the copy.
        attempts: every onnx2tf attempt of the settings ladder, the successful one last.
    """

    saved_model: Path
    outputs: tuple[str, ...]
    fixed_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    kept_nchw: tuple[str, ...] = ()
    rewrites: tuple[tuple[str, int], ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    attempts: tuple[Attempt, ...] = ()

    def notes(self) -> list[str]:
        """What was done, in words, for the conversion report."""
        notes = [a.note() for a in self.attempts]
        if self.fixed_shapes:
            notes.append(f"fixed input shapes {dict(self.fixed_shapes)}")
        keep = self.kept_nchw
        notes.append(f"inputs kept NCHW: {', '.join(keep)}" if keep else "4-D inputs/outputs NHWC (onnx2tf layout)")
        notes += [f"{name} rewrote the copy for onnx2tf ({added:+d} nodes)" for name, added in self.rewrites]
        if self.renamed:
            shown = ", ".join(f"{a!r} → {b!r}" for a, b in self.renamed[:3])
            more = f" and {len(self.renamed) - 3} more" if len(self.renamed) > 3 else ""
            notes.append(
                f"{len(self.renamed)} names sanitised for onnx2tf ({shown}{more}), ONNX names kept in the TFLite"
            )
        return notes

    def tflite(self, precision: Precision) -> Path:
        """The TFLite model onnx2tf wrote with ``precision`` weights (fp32 or fp16)."""
        return self.saved_model / _tflite_file(precision)


def _tflite_file(precision: Precision) -> str:
    if precision not in TFLITE_FILES:
        raise ConversionError(
            f"ONNX → TFLite writes fp32 or fp16, not {precision.value}", hint="int8 comes from `modelport quantize`"
        )
    return TFLITE_FILES[precision]


@dataclasses.dataclass(frozen=True)
class Setting:
    """One rung of the onnx2tf settings ladder.

    Attributes:
        label: how reports name it.
        dims: ``"requested"`` (the caller's shapes), ``"static"`` (every free dim fixed, the batch too) or
            ``"declared"`` (nothing fixed).
        keep_shape: every input keeps its declared shape and layout (``keep_shape_absolutely_input_names``).
        flags: further ``onnx2tf.convert`` switches set to True.
        optimize: run modelport's optimizer (default passes: constant folding, no-op removal, fusions) on the
            copy first, which onnx2tf's own onnxsim step would otherwise do (it is off: it rewrites its input).
    """

    label: str
    dims: str = "requested"
    keep_shape: bool = False
    flags: tuple[str, ...] = ()
    optimize: bool = False


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One onnx2tf attempt: its setting, whether it gave a verified model, what happened, how long it took."""

    setting: str
    ok: bool
    outcome: str
    seconds: float

    def note(self) -> str:
        return f"onnx2tf [{self.setting}]: {self.outcome} ({self.seconds:.0f} s)"


#: The most attempts :func:`run_onnx2tf` makes, and the least time left worth starting another one with.
MAX_ATTEMPTS = 4
MIN_ATTEMPT_S = 20.0
_RNN_OPS = frozenset({"LSTM", "GRU", "RNN"})


def settings_ladder(
    specs: Sequence[TensorSpec], op_types: frozenset[str], shapes: Mapping[str, tuple[int, ...]], grouped: bool
) -> list[Setting]:
    """The rungs for a model (see the module docstring), without those that would repeat an earlier rung.

    Args:
        specs: the model's real inputs.
        op_types: every op type in the model (subgraphs included).
        shapes: the shapes the caller fixed.
        grouped: the model has a grouped convolution.
    """
    free_left = any(not _static(s.shape) for s in specs if s.name not in shapes)
    flags = tuple(
        flag
        for flag, present in (("disable_group_convolution", grouped), ("enable_rnn_unroll", bool(op_types & _RNN_OPS)))
        if present
    )
    has_layout = any(s.shape is not None and 3 <= len(s.shape) <= 5 for s in specs)
    dims = "static" if free_left else "requested"
    base = "static, optimized" if free_left else "optimized"
    rungs = [Setting("requested"), Setting(base, dims, optimize=True)]
    if has_layout or flags:
        label = f"{base}, layouts kept" if has_layout else f"{base}, ops split"
        rungs.append(Setting(label, dims, keep_shape=has_layout, flags=flags, optimize=True))
    if shapes:
        rungs.append(Setting("as declared", dims="declared"))
    return rungs[:MAX_ATTEMPTS]


def _static(shape: tuple[Any, ...] | None) -> bool:
    return shape is not None and all(isinstance(d, int) and d >= 0 for d in shape)


def run_onnx2tf(
    src: str | Path,
    work: str | Path,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    keep_nchw: Sequence[str] = (),
    size_hints: Mapping[str, Sequence[int]] | None = None,
    passes: Sequence[str] = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
    precision: Precision = Precision.FP32,
    verify: bool = True,
) -> Onnx2tfOutput:
    """Convert the ONNX file ``src`` with onnx2tf into a SavedModel plus float32/float16 TFLite models, trying the
    settings ladder (module docstring) until a result converts and matches the source.

    Args:
        src: ONNX model (read only: onnx2tf works on a private copy in ``work``).
        work: an empty or new working directory (one folder per attempt: the copy, the request, the log, onnx2tf's
            output).
        input_shapes: fixed shapes for inputs with dynamic dims, by ONNX input name (as in the ONNX model).
        keep_nchw: ONNX inputs that keep their layout instead of becoming NHWC.
        passes: modelport passes to run on the copy first (e.g. ``zero-pad-maxpool``).
        timeout_s: limit for all attempts together.
        precision: the TFLite weights the check runs (fp32 or fp16), at that precision's tolerance.
        verify: check each result against the source (False: the first result that converts is taken).
        size_hints: sizes for the free dims ``input_shapes`` leaves, chosen by the caller (the chain: sizes the
            source runs at); the first rung keeps those dims as declared, the static rungs fix them at these sizes.

    Returns:
        Where the SavedModel and TFLite files are, what was done to the copy, and every attempt.

    Raises:
        ConversionError: every attempt failed (the message lists each; a single attempt's error names the ONNX op
            and node when onnx2tf's log does).
        RuntimeUnavailable: onnx2tf is missing.
        InvalidInputError: ``input_shapes`` or ``keep_nchw`` name no input of the model.
    """
    onnx2tf_version()
    src, work = Path(src), Path(work)
    _tflite_file(precision)
    work.mkdir(parents=True, exist_ok=True)
    proto = load_proto(src, check=False, load_external_data=False)
    init = {t.name for t in proto.graph.initializer}
    specs = [tensor_spec(i) for i in proto.graph.input if i.name not in init]
    names = [s.name for s in specs]
    shapes = {match_name(k, names): tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}
    keep = tuple(dict.fromkeys(match_name(k, names) for k in keep_nchw))
    op_types, grouped = _graph_traits(proto.graph)
    hints = {match_name(k, names): tuple(int(d) for d in v) for k, v in (size_hints or {}).items()}
    outputs = tuple(o.name for o in proto.graph.output)
    job = _Job(src, specs, shapes, keep, tuple(passes), precision, verify, outputs, hints)
    deadline = time.monotonic() + timeout_s
    attempts: list[Attempt] = []
    errors: list[ConversionError] = []
    for i, setting in enumerate(settings_ladder(specs, op_types, shapes, grouped)):
        left = deadline - time.monotonic()
        if attempts and left < MIN_ATTEMPT_S:
            attempts.append(Attempt(setting.label, False, f"not tried: {left:.0f} s of the time limit left", 0.0))
            break
        t0, folder = time.monotonic(), work / f"attempt{i + 1}"
        try:
            result, outcome = _attempt(job, setting, folder, left)
        except RuntimeUnavailable:
            raise
        except ModelportError as exc:  # onnx2tf failed, or preparing the copy for this rung did
            attempts.append(Attempt(setting.label, False, exc.message, time.monotonic() - t0))
            log.info("%s: %s", src.name, attempts[-1].note())
            errors.append(exc if isinstance(exc, ConversionError) else ConversionError(exc.message, path=src))
            _discard(folder)
            if _final(exc.message):
                break
            continue
        ok = outcome is None or not outcome.startswith("converted, but")
        attempts.append(Attempt(setting.label, ok, outcome or "converted and verified", time.monotonic() - t0))
        log.info("%s: %s", src.name, attempts[-1].note())
        if ok:
            return dataclasses.replace(result, attempts=tuple(attempts))
        errors.append(ConversionError(f"onnx2tf [{setting.label}]: {outcome}", path=src))
        _discard(folder)
    raise _exhausted(src, attempts, errors)


def _discard(folder: Path) -> None:
    """Remove a failed attempt's copy and output (its onnx2tf log stays for debugging)."""
    shutil.rmtree(folder / "out", ignore_errors=True)
    (folder / "model.onnx").unlink(missing_ok=True)


@dataclasses.dataclass(frozen=True)
class _Job:
    """What every attempt of one :func:`run_onnx2tf` call shares."""

    src: Path
    specs: Sequence[TensorSpec]
    shapes: Mapping[str, tuple[int, ...]]
    keep: tuple[str, ...]
    passes: tuple[str, ...]
    precision: Precision
    verify: bool
    outputs: tuple[str, ...]
    #: sizes for free dims the caller chose (the static rungs fix them there; not a request)
    hints: Mapping[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)


def _final(message: str) -> bool:
    """True for failures no other setting changes: an op onnx2tf has no converter for, a time-out."""
    return "has no converter for" in message or "took longer than" in message


def _exhausted(src: Path, attempts: Sequence[Attempt], errors: Sequence[ConversionError]) -> ConversionError:
    """One error for a ladder that found nothing: the only attempt's own error, or every attempt listed (led by
    the op and node when every attempt failed on the same one)."""
    if len(attempts) == 1 and errors:
        return errors[0]
    heads = {a.outcome.split(": ", 1)[0] for a in attempts}
    head = next(iter(heads)) if len(heads) == 1 else ""
    shared = head.startswith("onnx2tf cannot convert")
    tried = "; ".join(
        f"{i}. [{a.setting}] {first_line(a.outcome[len(head) + 2 :] if shared else a.outcome, 200)}"
        for i, a in enumerate(attempts, 1)
    )
    lead = head if shared else "onnx2tf failed"
    hint = errors[0].hint if errors and errors[0].hint else _HINT
    return ConversionError(f"{lead} with every setting tried ({len(attempts)}): {tried}", path=src, hint=hint)


def _graph_traits(graph: onnx.GraphProto) -> tuple[frozenset[str], bool]:
    """Every op type in the graph and its subgraphs, and whether any Conv is grouped."""
    ops: set[str] = set()
    grouped = False
    for node in all_nodes(graph):
        ops.add(node.op_type)
        if node.op_type in ("Conv", "ConvTranspose"):
            grouped |= any(a.name == "group" and a.i > 1 for a in node.attribute)
    return frozenset(ops), grouped


def _attempt(job: _Job, setting: Setting, work: Path, timeout_s: float) -> tuple[Onnx2tfOutput, str | None]:
    """One rung: private copy, onnx2tf, ONNX names back into the TFLite files, the check.

    Returns:
        The output and None (verified), ``"converted (not checked: …)"`` or ``"converted, but …"`` (a mismatch).
    """
    work = work.resolve()  # onnx2tf runs in it (run_worker): the paths it is given are absolute
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shapes = dict(job.shapes)
    if setting.dims == "static":
        first = verification_shapes(job.specs, {**job.hints, **shapes})[0]
        shapes = {s.name: tuple(first[s.name]) for s in job.specs if s.name in shapes or not _static(s.shape)}
    elif setting.dims == "declared":
        shapes = {}
    copy = work / "model.onnx"  # its stem names onnx2tf's TFLite files (TFLITE_FILES)
    rewrites, renamed = private_copy(job.src, copy, shapes, job.passes, setting.optimize)
    new = dict(renamed)  # original → copy's name
    np.save(work / CALIBRATION_FILE, np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32))
    request: dict[str, Any] = {
        "input_onnx_file_path": str(copy),
        "output_folder_path": str(work / "out"),
        "not_use_onnxsim": True,
        "non_verbose": True,
        "output_signaturedefs": True,
        "copy_onnx_input_output_names_to_tflite": True,
        "keep_ncw_or_nchw_or_ncdhw_input_names": [new.get(k, k) for k in job.keep] or None,
        "keep_nwc_or_nhwc_or_ndhwc_input_names": [new.get(k, k) for k in _channels_last(job.specs, job.keep)] or None,
    }
    if setting.keep_shape:
        request["keep_shape_absolutely_input_names"] = [new.get(s.name, s.name) for s in job.specs]
    request.update({flag: True for flag in setting.flags})
    back = {v: k for k, v in renamed}
    nodes = {back.get(k, k): v for k, v in _nodes(load_proto(copy, check=False, load_external_data=False)).items()}
    diagnose = functools.partial(_diagnose, src=job.src, nodes=nodes, back=back)
    run_worker(
        "modelport.conversion._onnx2tf_worker",
        request,
        work,
        what="onnx2tf",
        src=job.src,
        timeout_s=timeout_s,
        diagnose=diagnose,
    )
    if not (work / "out").is_dir():
        raise ConversionError("onnx2tf wrote no SavedModel", path=job.src)
    for file in TFLITE_FILES.values():
        if (work / "out" / file).exists():
            restore_tflite_names(work / "out" / file, back, job.outputs)
    result = Onnx2tfOutput(
        saved_model=work / "out",
        outputs=job.outputs,
        fixed_shapes=tuple(shapes.items()),
        kept_nchw=job.keep,
        rewrites=rewrites,
        renamed=renamed,
    )
    if not job.verify:
        return result, "converted (not checked)"
    return result, _check(job, result.tflite(job.precision), shapes)


def _channels_last(specs: Sequence[TensorSpec], keep: Sequence[str]) -> list[str]:
    """4-D inputs declared ``[N, H, W, C]`` with C in 1, 3, 4 and H not: onnx2tf would read H as channels."""
    found = []
    for s in specs:
        shape = s.shape or ()
        if s.name in keep or len(shape) != 4:
            continue
        if shape[3] in (1, 3, 4) and not (isinstance(shape[1], int) and shape[1] in (1, 3, 4)):
            found.append(s.name)
    return found


def _check(job: _Job, tflite: Path, fixed: Mapping[str, tuple[int, ...]]) -> str | None:
    """Run the source (ONNX Runtime) and the TFLite model (LiteRT) on seeded feeds at the verification sizes and
    compare them at the precision's tolerance; a dynamic TFLite model also at the second size set.

    Returns:
        None when it matches; ``"converted (not checked: …)"`` when the source cannot run at those sizes (the
        chain's own verification decides); ``"converted, but …"`` with the reason otherwise.
    """
    from modelport.backends import backend_for_format
    from modelport.backends.runner import RunnerOptions
    from modelport.verify.comparator import Subject, check, run
    from modelport.verify.tolerance import Tolerance

    try:
        sets = verification_shapes(job.specs, fixed)
    except ModelportError as exc:
        return f"converted (not checked: {first_line(exc.message, 200)})"
    options = RunnerOptions(precision=backend_for_format(Format.TFLITE).execution_precision(job.precision))
    tolerance = Tolerance.for_precision(job.precision)
    for i, shapes in enumerate(sets):
        feeds = random_feeds(job.specs, shapes, seed=i)
        text = ", ".join(f"{k}{list(v)}" for k, v in shapes.items())
        try:
            reference = run(Subject(job.src, Format.ONNX), feeds)
        except ModelportError as exc:
            return f"converted (not checked: the source does not run at {text}: {first_line(exc.message, 200)})"
        try:
            candidate = run(Subject(tflite, Format.TFLITE, options), feeds)
        except ModelportError as exc:
            return f"converted, but LiteRT cannot run it at {text}: {first_line(exc.message, 200)}"
        comparison = check(reference, candidate, tolerance)
        if not comparison.passed:
            return f"converted, but differs from the source at {text}: {first_line(comparison.reason(), 300)}"
        if all(spec.is_static for spec in candidate.input_specs):
            break  # a static artifact runs at its own sizes only
    return None


def _nodes(proto: onnx.ModelProto) -> dict[str, str]:
    """Node name (or first output) → op type, in graph order, for naming the node a failure is about."""
    return {(n.name or (n.output[0] if n.output else "")): n.op_type for n in proto.graph.node}


def _diagnose(
    failure: WorkerFailure, *, src: Path, nodes: Mapping[str, str], back: Mapping[str, str]
) -> ConversionError | None:
    """The ONNX op and node onnx2tf's log blames (by its name in ``src``), or None when it names none."""
    text = failure.log
    detail = _tf_detail(failure)
    op_types = re.findall(r"onnx_op_type:\s*(\S+)", text)
    node_names = re.findall(r"onnx_op_name:\s*(\S+)", text)
    missing = re.search(r"No module named '?onnx2tf\.ops\.(\w+)", f"{failure.error or ''}\n{text}")
    if missing:  # onnx2tf has one module per op it converts
        op = missing.group(1)
        node = next((name for name, t in nodes.items() if t == op), "?")
        detail = f"onnx2tf has no converter for {op}"
    elif node_names or op_types:
        node = node_names[-1] if node_names else "?"
        node = re.sub("^wa/", "/", node)  # onnx2tf's prefix for names starting with "/"
        node = back.get(node, node)
        op = op_types[-1] if op_types else nodes.get(node, "")
    else:
        return ConversionError(f"onnx2tf failed: {first_line(detail, 300)}", path=src, hint=_HINT)
    what = f"op {op} (node {node})" if op else f"node {node}"
    return ConversionError(f"onnx2tf cannot convert {what}: {first_line(detail, 300)}", path=src, hint=_HINT)


def _tf_detail(failure: WorkerFailure) -> str:
    """The failure's first useful line. TensorFlow's ``in user code:`` tracebacks: the exception line at their end
    (``ValueError: …``); Keras' ``Exception encountered when calling layer …``: plus the reason on the next line
    (``Dimensions must be equal, but are 32 and 2 …``)."""
    detail = failure.detail()
    error = failure.error or ""
    if detail.rstrip().endswith("in user code:"):
        lines = re.findall(r"^\s*(\w+(?:Error|Exception): .+)$", f"{error}\n{failure.log}", re.MULTILINE)
        return lines[-1].strip() if lines else detail
    if detail.startswith("Exception encountered when calling layer"):
        rest = [ln.strip() for ln in error.splitlines()[1:] if ln.strip()]
        if rest and not rest[0].startswith("Call arguments"):
            return f"{detail} {first_line(rest[0], 240)}"
    return detail


def tflite_from_onnx(
    src: str | Path,
    dst: str | Path,
    *,
    precision: Precision = Precision.FP32,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    keep_nchw: Sequence[str] = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
    verify: bool = True,
    size_hints: Mapping[str, Sequence[int]] | None = None,
) -> list[str]:
    """Convert the ONNX file ``src`` to the TFLite file ``dst`` with onnx2tf (float32 or float16 weights).

    Args:
        src: ONNX model (read only; onnx2tf works on a copy).
        dst: the .tflite file to write (atomically).
        precision: fp32 or fp16 weights.
        input_shapes: fixed shapes for inputs with dynamic dims, by ONNX input name (NCHW as in the ONNX model).
        keep_nchw: ONNX inputs that stay NCHW instead of becoming NHWC.
        size_hints: sizes for free dims the caller chose (not requested): the static rungs fix them there.
        timeout_s: limit for all onnx2tf attempts together.
        verify: check each attempt against the source before taking it (the settings ladder).

    Returns:
        Notes on what was done (each onnx2tf attempt, fixed shapes, layouts, renamed names, rewrites).

    Raises:
        ConversionError: every onnx2tf attempt failed (the message lists them; with one attempt it names the
            ONNX op and node when onnx2tf does).
        RuntimeUnavailable: onnx2tf or TensorFlow is missing.
    """
    src, dst = Path(src), Path(dst)
    _tflite_file(precision)  # fail before starting onnx2tf
    with tempfile.TemporaryDirectory(prefix="modelport-onnx2tf-") as tmp:
        result = run_onnx2tf(
            src,
            tmp,
            input_shapes=input_shapes,
            keep_nchw=keep_nchw,
            size_hints=size_hints,
            timeout_s=timeout_s,
            precision=precision,
            verify=verify,
        )
        produced = result.tflite(precision)
        if not produced.exists():
            raise ConversionError(f"onnx2tf wrote no {produced.name}", path=src)
        with atomic_path(dst) as out:
            shutil.copyfile(produced, out)
            mapped = store_tensor_map(Path(out), result)
    notes = result.notes()
    if mapped:
        notes.append(f"the ONNX names of {mapped} tensors recorded in the TFLite metadata (modelport.tensor_map)")
    return notes


def store_tensor_map(tflite: Path, result: Onnx2tfOutput) -> int:
    """Store the tensor-name map the onnx2tf worker captured (``{ONNX tensor name: Keras layer name}`` and the layer
    order, :data:`~modelport.conversion._onnx2tf_worker.TENSOR_MAP_FILE`) in ``tflite``'s metadata, keyed by the
    source model's names (the copy's sanitized names mapped back), so that per-tensor comparison can name the TFLite
    tensors (:func:`modelport.backends.litert.trace_litert`).

    Returns:
        How many tensors the stored map names (0: none captured, or it could not be stored; never raises).
    """
    import json

    from modelport.backends.litert import TensorMap, write_tensor_map
    from modelport.conversion._onnx2tf_worker import TENSOR_MAP_FILE

    try:
        captured = json.loads((result.saved_model / TENSOR_MAP_FILE).read_text(encoding="utf-8"))
        back = {new: old for old, new in result.renamed}
        tensors = {back.get(k, k): v for k, v in captured["tensors"].items() if isinstance(v, str)}
        if tensors:
            write_tensor_map(tflite, TensorMap(tensors, tuple(str(n) for n in captured.get("layers", ()))))
        return len(tensors)
    except Exception as exc:  # the map is optional: never fail a conversion over it
        log.debug("%s: tensor map not stored: %s", tflite.name, exc)
        return 0


@register_converter(Format.ONNX, Format.TFLITE)
def tflite_route_from_onnx(src: Path, out_dir: Path, options: ConvertOptions) -> ConversionReport:
    """Registered route ONNX → TFLite: ``out_dir/<name>.tflite`` through :func:`tflite_from_onnx`."""
    t0 = time.perf_counter()
    dst = out_dir / f"{options.name}.tflite"
    notes = tflite_from_onnx(
        src,
        dst,
        precision=options.precision,
        input_shapes=options.shapes(),
        keep_nchw=options.inputs_as_nchw,
        size_hints=dict(options.size_hints),
        verify=options.check_attempts,
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
