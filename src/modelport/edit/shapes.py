"""``set-batch``, ``set-input-shape`` and ``set-opset``: the optimizer's ``fix-dims`` and ``convert-opset`` passes as
edits of their own, verified against the original.

``set_batch(m, n)`` writes ``n`` into every input's dynamic leading dim, ``set_input_shape(m, {x: shape})`` whole
input shapes; both clear the inner shapes and re-run ONNX shape inference, so value_info and the outputs carry the
new sizes. A fixed dim is never changed: a contradiction is an error, as is an unknown input or a wrong rank. The
edited model :math:`m'` is the original restricted to the new shapes, so for feeds :math:`x` of those shapes
:math:`m'(x) = m(x)`: both run in ONNX Runtime on the same seeded feeds and the comparator checks it (bitwise equal
in practice: same kernels, same shapes). An original that does not run at the new shape (a Reshape with a baked-in
size) is an error naming the shape.

``set_opset(m, v)`` converts the default-domain opset with ``onnx.version_converter`` and checks
:math:`m_v(x) = m(x)` the same way. An op with no adapter to ``v`` (``LayerNormalization`` below opset 17) is one
error naming it.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Mapping, Sequence

import onnx
import onnx.defs
import onnx_ir as ir
import onnx_ir.passes.common as common

from modelport.edit.base import (
    DEFAULT_CHECK,
    CheckOptions,
    EditResult,
    Source,
    load_source,
    make_report,
    path_of,
    verify_against_original,
)
from modelport.errors import InvalidInputError, PassError
from modelport.model_io import check_proto, default_opset
from modelport.passes import run_passes
from modelport.passes.opset import ConvertOpsetOptions
from modelport.passes.shapes import FixDimsOptions

log = logging.getLogger(__name__)

#: the op a failed ``onnx.version_converter`` call names (``… for Relu``, ``… of LayerNormalization exists``)
_CONVERTER_OP = re.compile(r"(?:\bfor|\bof) ([A-Za-z][A-Za-z0-9_]*)(?: exists)?\s*$")


def set_batch(
    model: Source,
    batch: int,
    *,
    check: CheckOptions | None = None,
) -> EditResult:
    """Fix every input's dynamic leading dim to ``batch`` (inputs whose leading dim is already ``batch`` stay).

    Args:
        model: an .onnx path or a ModelProto (never modified).
        batch: the new leading dim.
        check: how the result is checked against the original (:class:`~modelport.edit.base.CheckOptions`); the
            verification runs at ``batch`` (``check.batch`` is not used), user feeds must fit the new shapes.

    Raises:
        InvalidInputError: ``batch`` ≤ 0, an input whose fixed leading dim differs, or an original that does not run
            at that batch.
    """
    if batch <= 0:
        raise InvalidInputError(f"the batch size must be positive, got {batch}")
    return _fix_dims(model, FixDimsOptions(batch=batch), "set-batch", check or DEFAULT_CHECK)


def set_input_shape(
    model: Source,
    shapes: Mapping[str, Sequence[int]],
    *,
    check: CheckOptions | None = None,
) -> EditResult:
    """Give the named inputs these whole shapes (the other inputs stay as they are).

    Args:
        model: an .onnx path or a ModelProto (never modified).
        shapes: ``{input name: shape}``.
        check: how the result is checked against the original (:class:`~modelport.edit.base.CheckOptions`); the
            verification runs at ``shapes`` (over ``check.input_shapes``), user feeds must fit them.

    Raises:
        InvalidInputError: an unknown input, a wrong rank, a non-positive dim, a fixed dim contradicted, or an
            original that does not run at that shape.
    """
    if not shapes:
        raise InvalidInputError("no input shape given", hint="give NAME:D0,D1,… for each input to change")
    items = tuple((name, tuple(int(d) for d in dims)) for name, dims in shapes.items())
    return _fix_dims(model, FixDimsOptions(input_shapes=items), "set-input-shape", check or DEFAULT_CHECK)


def _fix_dims(
    model: Source,
    options: FixDimsOptions,
    edit: str,
    check: CheckOptions,
) -> EditResult:
    start = time.perf_counter()
    source, label = load_source(model)
    work = ir.serde.deserialize_model(source)
    before = {v.name: _dims(v.shape) for v in work.graph.inputs}
    run_passes(work, ["fix-dims"], {"fix-dims": options})
    _reinfer_outputs(work)
    edited = ir.serde.serialize_model(work)
    check_proto(edited)
    changes = [
        f"input {v.name}: {before[v.name]} → {_dims(v.shape)}"
        for v in work.graph.inputs
        if v.name in before and before[v.name] != _dims(v.shape)
    ]
    outputs = [f"output {v.name}: {_dims(v.shape)}" for v in work.graph.outputs]
    comparison = None
    if check.verify:  # at the new sizes; the user's feeds must fit the edited model
        shapes = {**dict(check.input_shapes), **dict(options.input_shapes)}
        at = dataclasses.replace(check, input_shapes=tuple(shapes.items()), batch=options.batch or check.batch)
        comparison = verify_against_original(source, edited, at, label, feeds_for=edited)
    report = make_report(
        edit, [label], [source], edited, changes + outputs if changes else ["no input changed"], comparison, start
    )
    log.info("%s on %s: %s", edit, label, "; ".join(changes) or "no change")
    return EditResult(edited, report)


def _reinfer_outputs(model: ir.Model) -> None:
    """Infer the graph outputs' shapes afresh (fix-dims keeps their declared, often symbolic, dims): a dim inference
    finds as an integer replaces the declared one; the others stay as declared (a name beats ``unk__3``)."""
    declared = {id(v): v.shape for v in model.graph.outputs}
    for value in model.graph.outputs:
        value.shape = None
    common.ShapeInferencePass(strict_mode=False, data_prop=True)(model)
    for value in model.graph.outputs:
        old, new = declared[id(value)], value.shape
        if old is None or new is None or len(old) != len(new):
            value.shape = new if old is None else old
            continue
        value.shape = ir.Shape([n if isinstance(n, int) else o for o, n in zip(old.dims, new.dims, strict=True)])


def set_opset(
    model: Source,
    version: int,
    *,
    check: CheckOptions | None = None,
) -> EditResult:
    """Convert the default-domain opset to ``version`` with ``onnx.version_converter``.

    Args:
        model: an .onnx path or a ModelProto (never modified).
        version: the default-domain opset to convert to.
        check: how the result is checked against the original (:class:`~modelport.edit.base.CheckOptions`).

    Raises:
        InvalidInputError: a version onnx does not know, or an op the converter cannot take there (named).
        VerificationError: the converted model's outputs differ (or it does not run in ONNX Runtime).
    """
    start = time.perf_counter()
    source, label = load_source(model)
    newest = onnx.defs.onnx_opset_version()
    if not 1 <= version <= newest:
        raise InvalidInputError(
            f"opset {version} does not exist", hint=f"onnx {onnx.__version__} knows opsets 1–{newest}"
        )
    current = default_opset(source)
    work = ir.serde.deserialize_model(source)
    try:
        run_passes(work, ["convert-opset"], {"convert-opset": ConvertOpsetOptions(target=version)})
    except PassError as exc:
        raise _conversion_error(exc, current, version, label) from exc
    edited = ir.serde.serialize_model(work)
    check_proto(edited)
    changes = [f"opset {current} → {version}" if current != version else f"already at opset {version}"]
    ops = sorted({n.op_type for n in edited.graph.node} - {n.op_type for n in source.graph.node})
    if ops:
        changes.append(f"new op types: {', '.join(ops)}")
    check = check or DEFAULT_CHECK
    comparison = verify_against_original(source, edited, check, label) if check.verify else None
    report = make_report("set-opset", [label], [source], edited, changes, comparison, start)
    return EditResult(edited, report)


def _conversion_error(exc: PassError, current: int, version: int, label: str) -> InvalidInputError:
    """One error naming the op the converter stopped at."""
    text = exc.message.split(": ", 1)[-1]
    reason = text.split("failed: ", 1)[-1].strip()
    match = _CONVERTER_OP.search(reason)
    what = f"op {match.group(1)} cannot be converted ({reason})" if match else reason
    return InvalidInputError(
        f"cannot convert opset {current} → {version}: {what}",
        path=path_of(label),
        hint="choose an opset where every op of the model exists (`modelport inspect` lists them)",
    )


def _dims(shape: ir.Shape | None) -> str:
    if shape is None:
        return "[?]"
    return "[" + ", ".join(str(d) if isinstance(d, int) else str(d.value or "?") for d in shape.dims) + "]"
