"""``rename``: new names for tensors and/or nodes, by exact name or by substring, verified against the original.

A tensor name is a string that every place naming the tensor repeats: node inputs and outputs, graph inputs and
outputs, initializers (dense and sparse), ``value_info`` and quantization annotations, in the main graph and in every
sub-graph (an ``If``/``Loop`` body reads outer tensors by name). ONNX forbids a sub-graph to shadow an outer name, so
one renaming map applied to every graph is exact. Model-local functions have their own scope and are left alone.

The renaming is a map :math:`f` on the set :math:`T` of tensor names (and on the node names); it must be
injective (two names mapped to one would merge two tensors), never produce an empty name, and name only existing
names. The renamed model computes :math:`y'_{f(o)}(x'_{f(i)}) = y_o(x_i)` for every output :math:`o` and input
:math:`i`, which the verification checks: the original runs on the feeds under :math:`f^{-1}` and its outputs are
renamed with :math:`f` before the comparator pairs them by name.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from enum import Enum

import onnx

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
from modelport.errors import InvalidInputError
from modelport.model_guard import all_graphs, all_nodes
from modelport.model_io import check_proto

log = logging.getLogger(__name__)

#: how many renamings a change line lists before "…"
SHOWN = 6


class RenameWhat(str, Enum):
    """Which names a rename touches."""

    TENSORS = "tensors"
    NODES = "nodes"
    BOTH = "both"


_KIND = {RenameWhat.TENSORS: "tensor", RenameWhat.NODES: "node", RenameWhat.BOTH: "tensor or node"}


@dataclasses.dataclass(frozen=True)
class RenameOptions:
    """Options of :func:`rename`.

    Attributes:
        mapping: ``(old, new)`` exact renamings (``--map old=new``).
        replace: ``(old, new)`` substring replacements applied in order to every selected name (``--replace a:b``).
        what: tensors, nodes or both.
    """

    mapping: tuple[tuple[str, str], ...] = ()
    replace: tuple[tuple[str, str], ...] = ()
    what: RenameWhat = RenameWhat.TENSORS


def rename(
    model: Source,
    mapping: Mapping[str, str] | None = None,
    *,
    replace: Sequence[tuple[str, str]] = (),
    what: RenameWhat | str = RenameWhat.TENSORS,
    check: CheckOptions | None = None,
) -> EditResult:
    """Rename tensors and/or nodes of an ONNX model (the model is not modified; nothing is written).

    Args:
        model: an .onnx path or a ModelProto.
        mapping: exact renamings ``{old: new}``.
        replace: substring replacements ``[(old, new), …]``, applied in order to every selected name.
        what: ``"tensors"``, ``"nodes"`` or ``"both"``.
        check: how the result is checked against the original (:class:`~modelport.edit.base.CheckOptions`); its
            shapes and feeds are by the *original's* input names.

    Raises:
        InvalidInputError: an unknown exact name, an empty new name or substring, a replacement that matches no
            name, or a renaming that gives two tensors (or two nodes) one name.
    """
    try:
        kind = RenameWhat(what)
    except ValueError:
        raise InvalidInputError(f"what must be tensors, nodes or both, got {what!r}") from None
    options = RenameOptions(
        mapping=tuple((mapping or {}).items()),
        replace=tuple(replace),
        what=kind,
    )
    return rename_with(model, options, check=check)


def rename_with(model: Source, options: RenameOptions, *, check: CheckOptions | None = None) -> EditResult:
    """:func:`rename` with its options as a dataclass."""
    start = time.perf_counter()
    source, label = load_source(model)
    if not options.mapping and not options.replace:
        raise InvalidInputError(
            "nothing to rename", hint="give exact renamings OLD=NEW or substring replacements OLD:NEW"
        )
    if any(not old for old, _ in options.replace):
        raise InvalidInputError("a substring to replace is empty", hint="write OLD:NEW with a non-empty OLD")
    tensors_on = options.what in (RenameWhat.TENSORS, RenameWhat.BOTH)
    nodes_on = options.what in (RenameWhat.NODES, RenameWhat.BOTH)
    tensor_names = _tensor_names(source) if tensors_on else []
    node_names = list(dict.fromkeys(n.name for n in all_nodes(source.graph) if n.name)) if nodes_on else []
    _check_exact(options, set(tensor_names) | set(node_names), label)
    _check_replacements(options, [*tensor_names, *node_names])
    tensor_map = _plan(tensor_names, options, "tensor")
    node_map = _plan(node_names, options, "node")
    renamed = onnx.ModelProto()
    renamed.CopyFrom(source)
    _apply(renamed, tensor_map, node_map)
    check_proto(renamed)
    changes = [*_summary("tensor", tensor_map), *_summary("node", node_map)] or ["no name changed"]
    check = check or DEFAULT_CHECK
    comparison = None
    if check.verify:  # the renamed model on the original's feeds under the new names, against its renamed outputs
        comparison = verify_against_original(source, renamed, check, label, edited_label="renamed", renamed=tensor_map)
    report = make_report("rename", [label], [source], renamed, changes, comparison, start)
    log.info("renamed %d tensors and %d nodes of %s", len(tensor_map), len(node_map), label)
    return EditResult(renamed, report)


def _tensor_names(proto: onnx.ModelProto) -> list[str]:
    """Every tensor name of the model's graphs, once each, in a stable order."""
    seen: dict[str, None] = {}
    for name in _all_tensor_refs(proto.graph):
        if name:
            seen.setdefault(name, None)
    return list(seen)


def _all_tensor_refs(graph: onnx.GraphProto) -> Iterator[str]:
    for g in all_graphs(graph):
        for info in (*g.input, *g.output, *g.value_info):
            yield info.name
        for init in g.initializer:
            yield init.name
        for sparse in g.sparse_initializer:
            yield sparse.values.name
        for node in g.node:
            yield from node.input
            yield from node.output


def _check_exact(options: RenameOptions, known: set[str], label: str) -> None:
    what = _KIND[options.what]
    for old, new in options.mapping:
        if old not in known:
            close = sorted(n for n in known if old.lower() in n.lower())[:5]
            hint = f"names containing it: {', '.join(close)}" if close else "`modelport inspect` lists the names"
            raise InvalidInputError(f"no {what} named {old!r} in the model", path=path_of(label), hint=hint)
        if not new:
            raise InvalidInputError(f"the new name for {old!r} is empty", hint="write OLD=NEW with a non-empty NEW")


def _check_replacements(options: RenameOptions, names: Sequence[str]) -> None:
    for old, _new in options.replace:
        if not any(old in n for n in names):
            raise InvalidInputError(
                f"the substring {old!r} matches no {_KIND[options.what]} name",
                hint="`modelport inspect` lists the names",
            )


def _plan(names: Sequence[str], options: RenameOptions, kind: str) -> dict[str, str]:
    """``{old: new}`` for the names that change; InvalidInputError when two names end up the same or one empty."""
    exact = dict(options.mapping)
    result: dict[str, str] = {}
    for name in names:
        new = exact.get(name)
        if new is None:  # an exact renaming wins over the substring replacements
            new = name
            for old, repl in options.replace:
                new = new.replace(old, repl)
        if not new:
            raise InvalidInputError(f"renaming {kind} {name!r} leaves an empty name")
        if new != name:
            result[name] = new
    owner: dict[str, str] = {}
    for name in names:
        new = result.get(name, name)
        if new in owner:
            raise InvalidInputError(
                f"the renaming gives {kind}s {owner[new]!r} and {name!r} the same name {new!r}",
                hint=f"{kind} names must stay unique: choose another new name",
            )
        owner[new] = name
    return result


def _apply(proto: onnx.ModelProto, tensors: Mapping[str, str], nodes: Mapping[str, str]) -> None:
    """Rename in place, in every graph (not in model-local functions, which have their own scope)."""

    def sub(items: Sequence[str]) -> list[str]:
        return [tensors.get(n, n) if n else n for n in items]

    for g in all_graphs(proto.graph):
        for info in (*g.input, *g.output, *g.value_info):
            info.name = tensors.get(info.name, info.name)
        for init in g.initializer:
            init.name = tensors.get(init.name, init.name)
        for sparse in g.sparse_initializer:
            sparse.values.name = tensors.get(sparse.values.name, sparse.values.name)
        for annotation in g.quantization_annotation:
            annotation.tensor_name = tensors.get(annotation.tensor_name, annotation.tensor_name)
            for entry in annotation.quant_parameter_tensor_names:
                entry.value = tensors.get(entry.value, entry.value)
        for node in g.node:
            node.input[:] = sub(node.input)
            node.output[:] = sub(node.output)
            if node.name:
                node.name = nodes.get(node.name, node.name)


def _summary(kind: str, renamed: Mapping[str, str]) -> list[str]:
    if not renamed:
        return []
    shown = ", ".join(f"{old} → {new}" for old, new in list(renamed.items())[:SHOWN])
    more = f", … ({len(renamed) - SHOWN} more)" if len(renamed) > SHOWN else ""
    return [f"renamed {len(renamed)} {kind}{'s' if len(renamed) != 1 else ''}: {shown}{more}"]
