"""``add-outputs`` / ``remove-outputs``: expose inner tensors as graph outputs, or drop outputs and what fed only them.

* :func:`add_outputs` makes computed tensors (node outputs, by name) graph outputs, typed by onnx's shape
  inference (run first; a tensor it leaves without a type is refused: fix the input shapes first). The model's
  own outputs stay first and unchanged.
* :func:`remove_outputs` drops graph outputs and then the nodes, initializers and opsets nothing else reads
  (modelport's ``remove-unused`` pass: onnx-ir's RemoveUnusedNodes/Functions/Opsets). At least one output must stay.

**Verification**: both run the result and the original in ONNX Runtime on the same seeded feeds and compare
with the comparator: the kept outputs must equal the original's (error 0: nothing upstream changes). The added
outputs are the original's inner tensors by construction; they are compared with the original run with those
tensors exposed, which checks that they exist and run, not an independent computation.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx.shape_inference
import onnx_ir as ir

from modelport.edit.base import (
    DEFAULT_CHECK,
    CheckOptions,
    EditResult,
    OnnxSession,
    Source,
    Tensors,
    feed_sets,
    load_source,
    make_report,
    path_of,
    source_run,
    verify_edit,
)
from modelport.errors import InvalidInputError
from modelport.passes import run_passes
from modelport.verify.comparator import Comparison

log = logging.getLogger(__name__)


# --- shared by the graph edits (merge, extract, outputs) ---------------------------------------------------------


def infer(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` with onnx's shape inference applied (data propagation on; the original when inference fails)."""
    try:
        return onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception as exc:  # inference raises InferenceError / ValueError on odd models: keep what we have
        log.debug("shape inference failed: %s", exc)
        return proto


def typed_tensors(proto: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Every main-graph tensor with a type: inputs, outputs, value infos, initializers."""
    found: dict[str, onnx.ValueInfoProto] = {}
    for t in proto.graph.initializer:
        found[t.name] = onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
    for seq in (proto.graph.value_info, proto.graph.input, proto.graph.output):
        for vi in seq:
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
                found[vi.name] = vi
    return found


def computed_tensors(graph: onnx.GraphProto) -> list[str]:
    """The main graph's node outputs, in node order."""
    return [o for node in graph.node for o in node.output if o]


def unknown_names(names: Iterable[str], known: Sequence[str], what: str, path: str | None) -> InvalidInputError:
    """The error for names the model lacks, with the nearest known names."""
    missing = list(names)
    near = sorted({m for n in missing for m in difflib.get_close_matches(n, known, n=3, cutoff=0.5)})
    hint = f"did you mean {', '.join(near)}?" if near else f"the model's {what}: {', '.join(list(known)[:12])}"
    if not near and len(known) > 12:
        hint += " …"
    return InvalidInputError(
        f"no {what.rstrip('s')} named {', '.join(repr(n) for n in missing)} in the model", path=path, hint=hint
    )


def with_outputs(
    proto: onnx.ModelProto, names: Sequence[str], types: Mapping[str, onnx.ValueInfoProto]
) -> onnx.ModelProto:
    """A copy of ``proto`` with the tensors ``names`` appended as graph outputs (typed from ``types``)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    have = {o.name for o in out.graph.output}
    for name in names:
        if name not in have:
            vi = onnx.ValueInfoProto()
            vi.CopyFrom(types[name])
            out.graph.output.append(vi)
            have.add(name)
    return out


def require_types(names: Iterable[str], types: Mapping[str, onnx.ValueInfoProto], path: str | None) -> None:
    """Refuse tensors shape inference left untyped."""
    untyped = [n for n in names if n not in types]
    if untyped:
        raise InvalidInputError(
            f"shape inference gives no type for {', '.join(repr(n) for n in untyped)}",
            path=path,
            hint="fix the model's input shapes first (modelport edit set-input-shape), then edit again",
        )


def add_outputs(
    model: Source,
    names: Sequence[str],
    *,
    check: CheckOptions | None = None,
) -> EditResult:
    """Make inner tensors graph outputs (after the model's own, typed by shape inference).

    Args:
        model: the ONNX file or proto (never modified).
        names: the computed tensors to expose.
        check: how the result is checked against the original (:class:`~modelport.edit.base.CheckOptions`; shapes
            and feeds by the original's input names).

    Raises:
        InvalidInputError: no names, a name no node computes (the message suggests near names), or a tensor
            shape inference cannot type.
    """
    start = time.perf_counter()
    source, label = load_source(model)
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise InvalidInputError("add-outputs needs the names of the tensors to expose")
    computed = computed_tensors(source.graph)
    missing = [n for n in wanted if n not in set(computed)]
    if missing:
        raise unknown_names(missing, computed, "computed tensors", path_of(label))
    existing = {o.name for o in source.graph.output}
    new = [n for n in wanted if n not in existing]
    types = typed_tensors(infer(source))
    require_types(new, types, path_of(label))
    result = with_outputs(source, new, types)
    changes = [f"added output {n}" for n in new] + [f"{n} is already an output" for n in wanted if n in existing]
    verification = _against_original(source, result, label, check or DEFAULT_CHECK, added=new)
    report = make_report("add-outputs", [label], [source], result, changes, verification, start)
    return EditResult(result, report)


def remove_outputs(
    model: Source,
    names: Sequence[str],
    *,
    check: CheckOptions | None = None,
) -> EditResult:
    """Drop graph outputs and prune the nodes and initializers only they used.

    Args:
        model: the ONNX file or proto (never modified).
        names: the graph outputs to drop.
        check: how the kept outputs are checked against the original's (:class:`~modelport.edit.base.CheckOptions`).

    Raises:
        InvalidInputError: no names, a name that is not a graph output, or every output named.
    """
    start = time.perf_counter()
    source, label = load_source(model)
    drop = list(dict.fromkeys(names))
    if not drop:
        raise InvalidInputError("remove-outputs needs the names of the outputs to drop")
    outputs = [o.name for o in source.graph.output]
    missing = [n for n in drop if n not in outputs]
    if missing:
        raise unknown_names(missing, outputs, "outputs", path_of(label))
    kept = [n for n in outputs if n not in drop]
    if not kept:
        raise InvalidInputError(
            "removing every output leaves a model that computes nothing", path=path_of(label), hint="keep one output"
        )
    copy = onnx.ModelProto()
    copy.CopyFrom(source)
    for out in [o for o in copy.graph.output if o.name in drop]:
        copy.graph.output.remove(out)
    ir_model = ir.serde.deserialize_model(copy)
    run_passes(ir_model, ["remove-unused"])
    result = ir.serde.serialize_model(ir_model)
    changes = [f"removed output {n}" for n in drop]
    pruned = len(source.graph.node) - len(result.graph.node)
    if pruned:
        changes.append(f"pruned {pruned} node(s) that fed only the removed outputs")
    verification = _against_original(source, result, label, check or DEFAULT_CHECK, kept=kept)
    report = make_report("remove-outputs", [label], [source], result, changes, verification, start)
    return EditResult(result, report)


def _against_original(
    source: onnx.ModelProto,
    result: onnx.ModelProto,
    label: str,
    check: CheckOptions,
    *,
    added: Sequence[str] = (),
    kept: Sequence[str] | None = None,
) -> Comparison | None:
    """The result against the original on the same feeds: its ``kept`` outputs (None: all) and, for the ``added``
    ones, the original's inner tensors (read from the result itself: they exist and run)."""
    if not check.verify:
        return None
    sets = feed_sets(source, check)
    with contextlib.ExitStack() as stack:
        original = source_run(stack.enter_context(OnnxSession(source, check.threads)), Path(label).name)
        run_all = stack.enter_context(OnnxSession(result, check.threads)) if added else None

        def reference(f: Tensors) -> dict[str, np.ndarray]:
            values = {n: v for n, v in original(f).items() if kept is None or n in kept}
            if run_all is not None:
                inner = run_all(f)
                values.update({n: inner[n] for n in added})
            return values

        return verify_edit(reference, result, sets, check, reference_label="original")
