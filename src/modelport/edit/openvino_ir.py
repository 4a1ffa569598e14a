"""OpenVINO IR edits (``.xml`` + ``.bin``) through OpenVINO's own API: ``ir-rename`` and ``ir-set-shape``.

``ir_rename`` gives input and output tensors new names (``port.get_tensor().set_names({new})``: the new name
replaces every alias the tensor had); ``ir_set_shape`` calls ``Model.reshape({name: shape})``, which re-runs
OpenVINO's shape inference through the whole graph. Both save with ``ov.save_model(…, compress_to_fp16=False)``, so
the weights stay bit for bit what they were.

Verification runs the original and the edited IR in OpenVINO (CPU, ``INFERENCE_PRECISION_HINT=f32``) on the same
seeded feeds and compares them with the one comparator. Ports keep their order through both edits, so input
:math:`i` of one model is fed what input :math:`i` of the other gets and output :math:`j` is compared with output
:math:`j`: a renamed IR must give identical outputs, a reshaped one the original's outputs at the new shape. An
original with static dims cannot run at another shape; then there is nothing to compare with and the report says
so (verification ``None``).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelport.backends import open_runner
from modelport.backends.openvino import error_text, import_openvino
from modelport.backends.runner import RunnerOptions
from modelport.edit.base import DEFAULT_CHECK, CheckOptions, EditReport, given_feeds, refuse_source
from modelport.errors import InferenceError, InvalidInputError, ModelLoadError, VerificationError
from modelport.formats import Format, sniff_format
from modelport.inputs import TensorSpec, random_feeds, verification_shapes
from modelport.model_io import atomic_files
from modelport.verify.comparator import Comparison, compare_outputs, worst_of
from modelport.verify.tolerance import Tolerance

log = logging.getLogger(__name__)

#: OpenVINO node types that are the graph's ends, not ops
_ENDS = frozenset({"Parameter", "Result"})


@dataclasses.dataclass(frozen=True)
class IrEditResult:
    """The edited OpenVINO model (an ``openvino.Model``) and its report; :meth:`write` saves ``.xml`` + ``.bin``."""

    model: Any
    report: EditReport

    def to_json(self, indent: int | None = 2) -> str:
        return self.report.to_json(indent)

    def write(self, path: str | Path) -> EditReport:
        """Save the IR to ``path`` (``.xml``) and its weights beside it (``.bin``), atomically.

        Raises:
            InvalidInputError: ``path`` does not end in ``.xml``, or it (or its ``.bin``) is the source's.
        """
        dst = Path(path)
        if dst.suffix.lower() != ".xml":
            raise InvalidInputError("an OpenVINO IR is written as NAME.xml (+ NAME.bin)", path=dst)
        refuse_source(dst, self.report.sources)  # the .xml and its .bin
        ov = import_openvino()
        with atomic_files(dst.parent) as staging:
            ov.save_model(self.model, str(staging / dst.name), compress_to_fp16=False)
        return dataclasses.replace(self.report, output=str(dst))


def read_ir(path: str | Path) -> Any:
    """Read an OpenVINO IR (never an ONNX or other file OpenVINO could also read).

    Raises:
        InvalidInputError: the file is another format.
        ModelLoadError: missing, unreadable, or OpenVINO refuses it.
    """
    p = Path(path)
    fmt = sniff_format(p)
    if fmt is not Format.OPENVINO_IR:
        raise InvalidInputError(
            f"not an OpenVINO IR (format: {fmt.value})",
            path=p,
            hint="ir-* edits take an IR .xml; for an ONNX model use the edits without the ir- prefix",
        )
    ov = import_openvino()
    try:
        return ov.Core().read_model(str(p))
    except RuntimeError as exc:
        raise ModelLoadError(f"OpenVINO cannot read the IR: {error_text(exc)}", path=p) from exc


def ir_rename(
    path: str | Path,
    mapping: Mapping[str, str],
    *,
    check: CheckOptions | None = None,
) -> IrEditResult:
    """Rename input/output tensors of an OpenVINO IR (``{old: new}``; nothing is written).

    Args:
        path: the IR's ``.xml`` (never modified).
        mapping: ``{old name: new name}`` of inputs/outputs.
        check: how the result is checked against the original in OpenVINO
            (:class:`~modelport.edit.base.CheckOptions`; shapes and feeds by the *new* input names).

    Raises:
        InvalidInputError: not an IR, no name given, a name no input or output has, an empty new name, or a new
            name another input/output already has (or two renamed to one).
    """
    start = time.perf_counter()
    if not mapping:
        raise InvalidInputError("nothing to rename", hint="give renamings OLD=NEW")
    before = read_ir(path)
    model = read_ir(path)
    ports = [*model.inputs, *model.outputs]
    owners = {name: i for i, port in enumerate(ports) for name in port.get_names()}
    targets: dict[int, str] = {}
    for old, new in mapping.items():
        if old not in owners:
            raise InvalidInputError(
                f"the IR has no input or output named {old!r}", path=path, hint=f"its ports: {_port_names(ports)}"
            )
        if not new:
            raise InvalidInputError(f"the new name for {old!r} is empty", hint="write OLD=NEW with a non-empty NEW")
        targets[owners[old]] = new
    taken: dict[str, int] = {n: i for n, i in owners.items() if i not in targets}
    for index, new in targets.items():
        if taken.setdefault(new, index) != index:
            raise InvalidInputError(
                f"renaming to {new!r} collides with another input/output of that name",
                hint="names of an IR's inputs and outputs must stay unique",
            )
    changes = []
    for index, new in targets.items():
        tensor = ports[index].get_tensor()
        changes.append(f"{_kind(index, model)} {', '.join(sorted(tensor.get_names()))} → {new}")
        tensor.set_names({new})
    check = check or DEFAULT_CHECK
    comparison = _verify(path, model, check) if check.verify else None
    report = _report("ir-rename", path, before, model, changes, comparison, start)
    return IrEditResult(model, report)


def ir_set_shape(
    path: str | Path,
    shapes: Mapping[str, Sequence[int]],
    *,
    check: CheckOptions | None = None,
) -> IrEditResult:
    """Give the named inputs of an OpenVINO IR these shapes (``Model.reshape``; ``-1`` keeps a dim dynamic).

    Args:
        path: the IR's ``.xml`` (never modified).
        shapes: ``{input name: shape}``.
        check: how the result is checked against the original in OpenVINO
            (:class:`~modelport.edit.base.CheckOptions`; feeds must fit the new shapes).

    Raises:
        InvalidInputError: not an IR, an unknown input, or a shape OpenVINO's shape inference rejects (its reason).
    """
    start = time.perf_counter()
    if not shapes:
        raise InvalidInputError("no input shape given", hint="give NAME:D0,D1,… for each input to change")
    before = read_ir(path)
    model = read_ir(path)
    ov = import_openvino()
    names = {name for port in model.inputs for name in port.get_names()}
    for name, dims in shapes.items():
        if name not in names:
            raise InvalidInputError(
                f"the IR has no input named {name!r}", path=path, hint=f"its inputs: {_port_names(model.inputs)}"
            )
        if any(int(d) == 0 or int(d) < -1 for d in dims):
            raise InvalidInputError(f"the shape for {name!r} has a dim that is not positive (or -1): {list(dims)}")
    old = {name: model.input(name).get_partial_shape() for name in shapes}
    try:
        model.reshape({name: ov.PartialShape([int(d) for d in dims]) for name, dims in shapes.items()})
    except RuntimeError as exc:
        raise InvalidInputError(
            f"OpenVINO cannot reshape the IR to {_shapes_text(shapes)}: {_reshape_reason(exc)}",
            path=path,
            hint="the model's other dims constrain this one: choose a shape its layers accept",
        ) from exc
    changes = [f"input {name}: {old[name]} → {model.input(name).get_partial_shape()}" for name in shapes]
    changes += [f"output {o.get_any_name()}: {o.get_partial_shape()}" for o in model.outputs]
    static = [
        f"{name} {old[name]}" for name, dims in shapes.items() if not old[name].compatible(ov.PartialShape(list(dims)))
    ]
    check = check or DEFAULT_CHECK
    comparison = None
    if check.verify and static:
        changes.append(f"not verified: the original IR fixes {', '.join(static)}, so it cannot run at the new shape")
    elif check.verify:
        comparison = _verify(path, model, check)
    report = _report("ir-set-shape", path, before, model, changes, comparison, start)
    return IrEditResult(model, report)


def _verify(original: str | Path, model: Any, check: CheckOptions) -> Comparison:
    """Both IRs in OpenVINO (fp32) on the same feeds (the user's, else seeded random ones at the edited model's
    verification sizes), port by port; the worst comparison.

    Raises:
        VerificationError: an output differs beyond the tolerance, or the edited IR fails where the original runs.
    """
    ov = import_openvino()
    tol = check.tolerance or Tolerance.for_precision("fp32")
    options = RunnerOptions(threads=check.threads)
    results: list[Comparison] = []
    with tempfile.TemporaryDirectory(prefix="modelport-ir-edit-") as tmp:
        edited = Path(tmp) / "edited.xml"
        ov.save_model(model, str(edited), compress_to_fp16=False)
        with open_runner("openvino", original, options) as ref, open_runner("openvino", edited, options) as cand:
            for feeds in _feed_sets(cand.input_specs, check):
                try:
                    got = cand.infer(feeds)
                except InferenceError as exc:
                    raise VerificationError(f"the edited IR fails to run: {exc.message}") from exc
                want = _by_port(ref, feeds, cand.input_specs, cand.output_names)
                results.append(
                    compare_outputs(want, got, tol, reference_label="original IR", candidate_label="edited IR")
                )
    return worst_of(results).require()


def _feed_sets(specs: Sequence[TensorSpec], check: CheckOptions) -> list[dict[str, np.ndarray]]:
    """The user's feeds as one set, else seeded random ones at the edited model's own (new) verification sizes."""
    if check.feeds is not None:
        return [given_feeds(check.feeds, specs)]
    sizes = verification_shapes(specs, check.shapes, check.batch)
    return [random_feeds(specs, shape, seed=check.seed + i) for i, shape in enumerate(sizes)]


def _by_port(
    ref: Any, feeds: Mapping[str, np.ndarray], specs: Sequence[Any], names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Run the original with the edited model's feeds given to its ports in order; outputs under the edited names."""
    ref_feeds = {mine.name: feeds[theirs.name] for mine, theirs in zip(ref.input_specs, specs, strict=True)}
    out = ref.infer(ref_feeds)
    return {new: out[old] for old, new in zip(ref.output_names, names, strict=True)}


def _report(
    edit: str,
    path: str | Path,
    before: Any,
    after: Any,
    changes: Sequence[str],
    comparison: Comparison | None,
    start: float,
) -> EditReport:
    ops_before, ops_after = _ops(before), _ops(after)
    return EditReport(
        edit=edit,
        sources=(str(path),),
        changes=tuple(changes),
        nodes_before=sum(ops_before.values()),
        nodes_after=sum(ops_after.values()),
        ops_before=ops_before,
        ops_after=ops_after,
        inputs=tuple(p.get_any_name() for p in after.inputs),
        outputs=tuple(p.get_any_name() for p in after.outputs),
        verification=comparison,
        seconds=time.perf_counter() - start,
    )


def _ops(model: Any) -> dict[str, int]:
    """``{OpenVINO op type: count}`` (Parameter and Result left out)."""
    counts = collections.Counter(op.get_type_name() for op in model.get_ordered_ops())
    return {k: v for k, v in sorted(counts.items()) if k not in _ENDS}


def _reshape_reason(exc: BaseException) -> str:
    """OpenVINO's shape-inference failure in one line: the node it validated and why it failed."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Check '", "Exception from"))]
    return " ".join(useful[:2]) if useful else error_text(exc)


def _kind(index: int, model: Any) -> str:
    return "input" if index < len(model.inputs) else "output"


def _port_names(ports: Sequence[Any]) -> str:
    return ", ".join(sorted(name for port in ports for name in port.get_names()))


def _shapes_text(shapes: Mapping[str, Sequence[int]]) -> str:
    return ", ".join(f"{name}[{','.join(str(int(d)) for d in dims)}]" for name, dims in shapes.items())
