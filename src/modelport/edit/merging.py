"""``merge``: several ONNX models into one graph, chained (outputs feed inputs) or side by side.

The engine is onnx's own composer (``onnx.compose.merge_models`` / ``add_prefix``); this module resolves the
user's connections, aligns opsets and IR versions, picks name prefixes, and checks the result against the sources.

**Chain** (``connect`` given): models ``0 … N-1`` are merged left to right; a connection ``SRC:DST`` wires an
output of an earlier model to an input of a later one. An endpoint is a bare tensor name (looked up among the
outputs, resp. inputs, of every model; it must name exactly one) or ``K.name`` with ``K`` the 0-based position of
the model on the command line (``0.logits:1.x``). Tensor names may contain ``:`` (``input:0``): every split of
the text at a ``:`` is tried and the one whose halves resolve is used. One output may feed several inputs; a
model input no connection feeds stays a graph input of the result (a model may take some inputs from connections
and others from the caller; one no connection feeds runs beside the others). An output a connection consumes is no
longer a graph output; every other output stays.

**Parallel**: all models run side by side in one graph. An input with the same name, dtype and shape in several
models (a dynamic dim matches any dynamic dim) is shared — one graph input feeds them all; every other input and
output stays its model's own.

**Names**: when two models share a name (node, tensor, initializer; the shared inputs and a connection's consumed
input excepted), every model's inner names get the prefix ``m{K}/``; a graph input or output keeps its name unless
that name collides too (two outputs ``y`` become ``m0/y`` and ``m1/y``; the change lines list each renamed
input/output), so what the user feeds and reads stays readable. Without a collision every name stays as it is.
``prefixes`` overrides this (one string per model, ``""`` for none; everything of that model, inputs and outputs
too, is prefixed). Shared parallel inputs always keep their name. ``input_shapes`` uses the result's input names.

**Opsets**: the default-domain opsets are aligned to the highest among the sources (or ``opset``) with
``onnx.version_converter``, the IR version to the highest; a model that cannot be converted (an op without an
adapter, say) is one :class:`~modelport.errors.InvalidInputError` naming the model and the op, nothing written.

**Verification**: the sources (as given, unconverted) are run in ONNX Runtime one after the other on the same
seeded feeds — in a chain, each connection carries the earlier model's output into the later one's input — and
their outputs are compared with the merged model's by name with the comparator (fp32 tolerance by default). A
merge is a re-wiring, so the error is 0 unless an opset conversion changed an op's numerics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx.compose
import onnx.version_converter

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
from modelport.errors import InvalidInputError, first_line

log = logging.getLogger(__name__)

#: a connection: ``"SRC:DST"`` or ``(SRC, DST)``, each endpoint ``name`` or ``K.name``
ConnectionSpec = str | tuple[str, str]

_INDEXED = re.compile(r"^(\d+)\.(.+)$")
_SHARED_MARK = "__modelport_shared_{}__"


@dataclasses.dataclass(frozen=True)
class Connection:
    """One resolved wire: output ``src`` of model ``src_model`` feeds input ``dst`` of model ``dst_model``."""

    src_model: int
    src: str
    dst_model: int
    dst: str


# --- names and types ----------------------------------------------------------------------------------------


def graph_inputs(graph: onnx.GraphProto) -> list[str]:
    """The graph's inputs that are not initializers (what a caller feeds)."""
    inits = {t.name for t in graph.initializer}
    return [i.name for i in graph.input if i.name not in inits]


def type_signature(vi: onnx.ValueInfoProto) -> tuple[int, tuple[int | None, ...] | None] | None:
    """``(elem_type, dims)`` of a tensor's value info (a dim None when dynamic, dims None when the rank is unknown);
    None when it carries no tensor type."""
    if not vi.type.HasField("tensor_type"):
        return None
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return tt.elem_type, None
    return tt.elem_type, tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)


def _describe(sig: tuple[int, tuple[int | None, ...] | None] | None) -> str:
    if sig is None:
        return "untyped"
    elem, dims = sig
    name = onnx.helper.tensor_dtype_to_np_dtype(elem).name if elem else "undefined"
    shape = "?" if dims is None else "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"
    return f"{name}{shape}"


def _mismatch(a: onnx.ValueInfoProto, b: onnx.ValueInfoProto) -> str | None:
    """Why ``a`` cannot feed ``b`` (dtype, rank or a static dim differ); None when it can (or a type is unknown)."""
    sa, sb = type_signature(a), type_signature(b)
    if sa is None or sb is None:
        return None
    if sa[0] and sb[0] and sa[0] != sb[0]:
        return f"dtypes differ: {_describe(sa)} → {_describe(sb)}"
    if sa[1] is None or sb[1] is None:
        return None
    if len(sa[1]) != len(sb[1]):
        return f"ranks differ: {_describe(sa)} → {_describe(sb)}"
    if any(x is not None and y is not None and x != y for x, y in zip(sa[1], sb[1], strict=True)):
        return f"static shapes differ: {_describe(sa)} → {_describe(sb)}"
    return None


def _same_input(a: onnx.ValueInfoProto, b: onnx.ValueInfoProto) -> bool:
    """Same dtype and shape, a dynamic dim matching any dynamic dim."""
    sa, sb = type_signature(a), type_signature(b)
    return sa is not None and sa == sb


def _names(graph: onnx.GraphProto, skip: set[str]) -> set[str]:
    """Every name a merge can collide on: nodes, tensors, initializers, value infos (sub-graphs included)."""
    found: set[str] = set()

    def walk(g: onnx.GraphProto) -> None:
        found.update(i.name for i in g.input)
        found.update(o.name for o in g.output)
        found.update(t.name for t in g.initializer)
        found.update(v.name for v in g.value_info)
        for node in g.node:
            found.update(n for n in (node.name, *node.input, *node.output) if n)
            for attr in node.attribute:
                for sub in (attr.g,) if attr.HasField("g") else attr.graphs:
                    walk(sub)

    walk(graph)
    return found - skip


def rename_tensors(graph: onnx.GraphProto, mapping: Mapping[str, str]) -> None:
    """Rename tensors in place everywhere they appear (node inputs/outputs, graph I/O, value infos, initializers,
    sub-graphs)."""

    def walk(g: onnx.GraphProto) -> None:
        for seq in (g.input, g.output, g.value_info):
            for vi in seq:
                vi.name = mapping.get(vi.name, vi.name)
        for t in g.initializer:
            t.name = mapping.get(t.name, t.name)
        for node in g.node:
            for k, n in enumerate(node.input):
                node.input[k] = mapping.get(n, n)
            for k, n in enumerate(node.output):
                node.output[k] = mapping.get(n, n)
            for attr in node.attribute:
                for sub in (attr.g,) if attr.HasField("g") else attr.graphs:
                    walk(sub)

    walk(graph)


# --- connections ----------------------------------------------------------------------------------------------


def _endpoint(text: str, names: Sequence[Sequence[str]]) -> list[tuple[int, str]]:
    """Every (model, tensor) ``text`` can mean among ``names[model]`` (bare name or ``K.name``)."""
    found = [(k, text) for k, model_names in enumerate(names) if text in model_names]
    m = _INDEXED.match(text)
    if m is not None and int(m.group(1)) < len(names) and m.group(2) in names[int(m.group(1))]:
        found.append((int(m.group(1)), m.group(2)))
    return list(dict.fromkeys(found))


def _listing(labels: Sequence[str], names: Sequence[Sequence[str]], what: str) -> str:
    return "; ".join(f"model {k} ({Path(lab).name}) {what}: {', '.join(n) or 'none'}" for k, (lab, n) in enumerate(
        zip(labels, names, strict=True)))  # fmt: skip


def resolve_connection(
    spec: ConnectionSpec, outputs: Sequence[Sequence[str]], inputs: Sequence[Sequence[str]], labels: Sequence[str]
) -> Connection:
    """The wire ``spec`` names (see the module docstring for the syntax).

    Raises:
        InvalidInputError: an endpoint names no output/input of any model (the message lists them), or means
            several wires, or goes from a model to itself or an earlier one.
    """
    if isinstance(spec, str):
        splits = [(spec[:k], spec[k + 1 :]) for k in range(len(spec)) if spec[k] == ":"]
        if not splits:
            raise InvalidInputError(
                f"connection {spec!r} has no ':' between an output and an input", hint="write SRC:DST, e.g. 0.y:1.x"
            )
    else:
        splits = [(spec[0], spec[1])]
    text = spec if isinstance(spec, str) else f"{spec[0]}:{spec[1]}"
    candidates = [
        Connection(s_model, s_name, d_model, d_name)
        for src, dst in splits
        for s_model, s_name in _endpoint(src, outputs)
        for d_model, d_name in _endpoint(dst, inputs)
    ]
    forward = [c for c in candidates if c.src_model < c.dst_model]
    if len(forward) == 1:
        return forward[0]
    if len(forward) > 1:
        options = ", ".join(f"{c.src_model}.{c.src}:{c.dst_model}.{c.dst}" for c in forward)
        raise InvalidInputError(f"connection {text!r} is ambiguous: it can mean {options}", hint="write K.name")
    if candidates:
        c = candidates[0]
        raise InvalidInputError(
            f"connection {text!r} goes from model {c.src_model} to model {c.dst_model}: a connection feeds a later "
            "model from an earlier one",
            hint="order the models so that each one comes after the models it reads from",
        )
    src_ok = any(_endpoint(src, outputs) for src, _ in splits)
    if not src_ok:
        heads = ", ".join(repr(s) for s, _ in splits)
        raise InvalidInputError(
            f"connection {text!r}: {heads} is no output of any model",
            hint=_listing(labels, outputs, "outputs"),
        )
    tails = ", ".join(repr(d) for _, d in splits)
    raise InvalidInputError(
        f"connection {text!r}: {tails} is no input of a later model", hint=_listing(labels, inputs, "inputs")
    )


# --- opsets ---------------------------------------------------------------------------------------------------


def default_opset(proto: onnx.ModelProto) -> int:
    """The model's default-domain (``ai.onnx``) opset."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _converter_reason(exc: BaseException) -> str:
    """The version converter's assertion text without its C++ file prefix."""
    text = first_line(exc)
    return text.split("failed: ", 1)[1] if "failed: " in text else text


def align_opsets(
    protos: Sequence[onnx.ModelProto], labels: Sequence[str], opset: int | None
) -> tuple[list[onnx.ModelProto], list[str]]:
    """The models converted to one default-domain opset and one IR version, and a line per change.

    Raises:
        InvalidInputError: a model cannot be converted (names the model and the converter's reason, e.g. the op).
    """
    versions = [default_opset(p) for p in protos]
    target = opset if opset is not None else max(versions)
    changes: list[str] = []
    out: list[onnx.ModelProto] = []
    for k, (proto, label, version) in enumerate(zip(protos, labels, versions, strict=True)):
        if version == target:
            out.append(proto)
            continue
        try:
            converted = onnx.version_converter.convert_version(proto, target)
        except Exception as exc:  # the converter raises RuntimeError / ConvertError subclasses
            raise InvalidInputError(
                f"cannot align model {k} ({Path(label).name}) from opset {version} to {target}: "
                f"{_converter_reason(exc)}",
                path=path_of(label),
                hint="merge at an opset every model reaches (the highest of the sources is the default)",
            ) from exc
        out.append(converted)
        changes.append(f"converted model {k} ({Path(label).name}) from opset {version} to {target}")
    ir_version = max(p.ir_version for p in out)
    domains: dict[str, int] = {}
    for proto in out:
        for o in proto.opset_import:
            if o.domain not in ("", "ai.onnx"):
                domains[o.domain] = max(domains.get(o.domain, 0), o.version)
    for proto in out:
        proto.ir_version = ir_version
        for o in proto.opset_import:
            if o.domain in domains and o.version != domains[o.domain]:
                changes.append(f"raised the {o.domain} opset import {o.version} → {domains[o.domain]}")
                o.version = domains[o.domain]
    return out, changes


# --- the merge ----------------------------------------------------------------------------------------------


def _copy(proto: onnx.ModelProto) -> onnx.ModelProto:
    p = onnx.ModelProto()
    p.CopyFrom(proto)
    return p


def _value_info(vi: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    out = onnx.ValueInfoProto()
    out.CopyFrom(vi)
    return out


def _shared_inputs(protos: Sequence[onnx.ModelProto]) -> dict[str, list[int]]:
    """Parallel: input name → the models sharing it (same name, dtype and shape in two or more models)."""
    first: dict[str, tuple[int, onnx.ValueInfoProto]] = {}
    shared: dict[str, list[int]] = {}
    for k, proto in enumerate(protos):
        names = set(graph_inputs(proto.graph))
        for vi in proto.graph.input:
            if vi.name not in names:
                continue
            if vi.name not in first:
                first[vi.name] = (k, vi)
            elif _same_input(first[vi.name][1], vi):
                shared.setdefault(vi.name, [first[vi.name][0]]).append(k)
    return shared


@dataclasses.dataclass(frozen=True)
class Naming:
    """How one model's names appear in the merged graph: ``prefix + name``, except the names in ``keep``."""

    prefix: str = ""
    keep: frozenset[str] = frozenset()

    def __call__(self, name: str) -> str:
        return name if name in self.keep else self.prefix + name


def _io_names(proto: onnx.ModelProto) -> set[str]:
    return set(graph_inputs(proto.graph)) | {o.name for o in proto.graph.output}


def pick_names(
    protos: Sequence[onnx.ModelProto],
    skips: Sequence[set[str]],
    shared: Sequence[set[str]],
    prefixes: Sequence[str] | None,
) -> tuple[list[Naming], list[str]]:
    """Each model's naming (see the module docstring) and the change lines.

    Args:
        protos: the models.
        skips: per model, names that cannot collide (shared inputs, inputs a connection consumes).
        shared: per model, the shared inputs (always kept as they are).
        prefixes: the user's prefixes (None: automatic).
    """
    if prefixes is not None:
        if len(prefixes) != len(protos):
            raise InvalidInputError(f"{len(prefixes)} prefixes for {len(protos)} models", hint="give one per model")
        given = [Naming(p, frozenset(keep)) for p, keep in zip(prefixes, shared, strict=True)]
        return given, [f"prefixed model {k}'s names with {p!r}" for k, p in enumerate(prefixes) if p]
    names = [_names(p.graph, skip) for p, skip in zip(protos, skips, strict=True)]
    clashes = {n for a in range(len(names)) for b in range(a + 1, len(names)) for n in names[a] & names[b]}
    if not clashes:
        return [Naming() for _ in protos], []
    auto = [f"m{k}/" for k in range(len(protos))]
    namings: list[Naming] = []
    renamed_io: list[str] = []
    for k, proto in enumerate(protos):
        others = {auto[j] + n for j in range(len(protos)) if j != k for n in names[j]}
        io = _io_names(proto) - skips[k]
        keep = {n for n in io if n not in clashes and n not in others}
        renamed_io += [auto[k] + n for n in sorted(io - keep)]
        namings.append(Naming(auto[k], frozenset(keep | shared[k])))
    shown = ", ".join(sorted(clashes)[:5]) + (" …" if len(clashes) > 5 else "")
    line = f"prefixed the inner names of every model with {', '.join(auto)} (names collide: {shown})"
    if renamed_io:
        line += "; inputs/outputs renamed: " + ", ".join(renamed_io)
    return namings, [line]


def _prefixed(proto: onnx.ModelProto, naming: Naming) -> onnx.ModelProto:
    """``proto`` with every name prefixed except the tensors ``naming`` keeps."""
    if not naming.prefix:
        return proto
    out = onnx.compose.add_prefix(proto, naming.prefix)
    rename_tensors(out.graph, {naming.prefix + n: n for n in naming.keep})
    return out


def _compose(m1: onnx.ModelProto, m2: onnx.ModelProto, io_map: list[tuple[str, str]]) -> onnx.ModelProto:
    try:
        return onnx.compose.merge_models(m1, m2, io_map, producer_name="modelport", producer_version="")
    except ValueError as exc:
        raise InvalidInputError(
            f"onnx.compose cannot merge the models: {first_line(exc)}", hint="give each model its own prefix"
        ) from exc


def _chain(
    protos: Sequence[onnx.ModelProto], namings: Sequence[Naming], wires: Sequence[Connection]
) -> onnx.ModelProto:
    """Merge left to right; outputs later wires still need are re-exposed after each step."""
    # each model's outputs by (model, name in the merged graph)
    out_info = {(k, o.name): o for k, p in enumerate(protos) for o in p.graph.output}
    acc = _copy(protos[0])
    for j in range(1, len(protos)):
        io_map = [(namings[w.src_model](w.src), namings[j](w.dst)) for w in wires if w.dst_model == j]
        acc = _compose(acc, protos[j], io_map)
        have = {o.name for o in acc.graph.output}
        for w in wires:
            name = namings[w.src_model](w.src)
            if w.dst_model > j and name not in have:
                vi = out_info[(w.src_model, name)]
                acc.graph.output.append(vi)
                have.add(name)
    return acc


def _parallel(protos: Sequence[onnx.ModelProto], shared: Mapping[str, list[int]]) -> onnx.ModelProto:
    """Merge side by side; a shared input of a later model is wired to the first one's under a placeholder."""
    acc = _copy(protos[0])
    for j in range(1, len(protos)):
        proto = _copy(protos[j])
        marks = {n: n + _SHARED_MARK.format(j) for n, models in shared.items() if j in models and models[0] < j}
        rename_tensors(proto.graph, marks)
        acc = _compose(acc, proto, [])
        rename_tensors(acc.graph, {v: k for k, v in marks.items()})
        first: dict[str, int] = {}
        for k, vi in enumerate(acc.graph.input):
            first.setdefault(vi.name, k)  # the first of each name wins
        kept = [_value_info(acc.graph.input[k]) for k in sorted(first.values())]
        del acc.graph.input[:]
        acc.graph.input.extend(kept)
    return acc


def merge(
    models: Sequence[Source],
    *,
    connect: Sequence[ConnectionSpec] | None = None,
    parallel: bool = False,
    prefixes: Sequence[str] | None = None,
    opset: int | None = None,
    check: CheckOptions | None = None,
) -> EditResult:
    """Merge ONNX models into one (see the module docstring for the chain/parallel semantics and the names).

    Args:
        models: two or more ONNX files or protos (never modified).
        connect: the chain's wires, ``"SRC:DST"`` or ``(SRC, DST)``; each endpoint ``name`` or ``K.name``.
        parallel: run the models side by side, sharing equal inputs (no ``connect``).
        prefixes: one name prefix per model (``""``: none); default: ``m{K}/`` on all when names collide.
        opset: the default-domain opset of the result (default: the highest among the models).
        check: how the result is checked against the sources run in sequence / side by side
            (:class:`~modelport.edit.base.CheckOptions`); its shapes and feeds are by the *result's* input names.

    Raises:
        InvalidInputError: fewer than two models, a connection naming a missing tensor, mismatched dtypes or
            static shapes, models whose opsets cannot be aligned, neither ``connect`` nor ``parallel`` (or both).
        VerificationError: the merged model computes something else than the sources.
    """
    start = time.perf_counter()
    _check_mode(len(models), connect, parallel)
    loaded = [load_source(m) for m in models]
    sources, labels = [p for p, _ in loaded], [lab for _, lab in loaded]
    outputs = [[o.name for o in p.graph.output] for p in sources]
    inputs = [graph_inputs(p.graph) for p in sources]
    wires = [resolve_connection(c, outputs, inputs, labels) for c in (connect or ())]
    changes = _check_wires(wires, sources, labels)
    aligned, opset_changes = align_opsets([_copy(p) for p in sources], labels, opset)
    merged, namings, name_changes = _combine(aligned, wires, parallel, prefixes)
    changes += opset_changes + name_changes
    check = check or DEFAULT_CHECK
    verification = None
    if check.verify:
        reference = _reference(sources, namings, wires, merged)
        sets = feed_sets(merged, check)
        with contextlib.ExitStack() as stack:
            runs = [
                source_run(stack.enter_context(OnnxSession(p, check.threads)), f"model {k} ({Path(lab).name})")
                for k, (p, lab) in enumerate(zip(sources, labels, strict=True))
            ]
            verification = verify_edit(lambda f: reference(runs, f), merged, sets, check, label="merged")
    report = make_report("merge", labels, sources, merged, changes, verification, start)
    return EditResult(merged, report)


def _check_mode(count: int, connect: Sequence[ConnectionSpec] | None, parallel: bool) -> None:
    if count < 2:
        raise InvalidInputError(f"merge needs two or more models, got {count}")
    if parallel and connect:
        raise InvalidInputError("a merge is either parallel or a chain with connections, not both")
    if not parallel and not connect:
        raise InvalidInputError(
            "merge needs connections (a chain: which output feeds which input) or the parallel mode",
            hint="connect e.g. 0.y:1.x, or merge in parallel",
        )


def _combine(
    aligned: Sequence[onnx.ModelProto], wires: Sequence[Connection], parallel: bool, prefixes: Sequence[str] | None
) -> tuple[onnx.ModelProto, list[Naming], list[str]]:
    """The merged, checked model, each model's naming and the change lines."""
    count = len(aligned)
    shared = _shared_inputs(aligned) if parallel else {}
    own_shared = [{n for n, ks in shared.items() if k in ks} for k in range(count)]
    skips = own_shared if parallel else [{w.dst for w in wires if w.dst_model == k} for k in range(count)]
    namings, changes = pick_names(aligned, skips, own_shared, prefixes)
    renamed = [_prefixed(p, naming) for p, naming in zip(aligned, namings, strict=True)]
    if parallel:
        merged = _parallel(renamed, shared)
        if shared:
            listed = "; ".join(f"{n} (models {', '.join(map(str, ks))})" for n, ks in shared.items())
            changes.append(f"shared inputs: {listed}")
    else:
        merged = _chain(renamed, namings, wires)
    merged.graph.name = "merged"
    _check_result(merged)
    return merged, namings, changes


def _check_wires(wires: Sequence[Connection], protos: Sequence[onnx.ModelProto], labels: Sequence[str]) -> list[str]:
    """Refuse a wire whose tensors differ in dtype/static shape, or two wires into one input; one line per wire."""
    lines: list[str] = []
    fed: dict[tuple[int, str], Connection] = {}
    for w in wires:
        if (w.dst_model, w.dst) in fed:
            raise InvalidInputError(f"input {w.dst!r} of model {w.dst_model} is fed by two connections")
        fed[(w.dst_model, w.dst)] = w
        src = next(o for o in protos[w.src_model].graph.output if o.name == w.src)
        dst = next(i for i in protos[w.dst_model].graph.input if i.name == w.dst)
        why = _mismatch(src, dst)
        if why is not None:
            raise InvalidInputError(
                f"cannot connect {w.src!r} of model {w.src_model} ({Path(labels[w.src_model]).name}) to {w.dst!r} "
                f"of model {w.dst_model} ({Path(labels[w.dst_model]).name}): {why}",
                hint="connect tensors of the same dtype and shape (fix the shapes first with edit set-input-shape)",
            )
        lines.append(f"connected {w.src_model}.{w.src} → {w.dst_model}.{w.dst}")
    return lines


def _check_result(merged: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(merged)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise InvalidInputError(f"the merged model fails onnx.checker: {first_line(exc)}") from exc


def _reference(
    sources: Sequence[onnx.ModelProto],
    namings: Sequence[Naming],
    wires: Sequence[Connection],
    merged: onnx.ModelProto,
) -> Callable[[Sequence[Callable[[Tensors], Tensors]], Tensors], dict[str, np.ndarray]]:
    """What the sources compute, under the merged graph's output names: run in order, wires carrying tensors."""
    by_dst = {(w.dst_model, w.dst): w for w in wires}
    wanted = [o.name for o in merged.graph.output]

    def reference(runs: Sequence[Callable[[Tensors], Tensors]], feeds: Tensors) -> dict[str, np.ndarray]:
        produced: dict[tuple[int, str], np.ndarray] = {}
        result: dict[str, np.ndarray] = {}
        for k, (proto, run) in enumerate(zip(sources, runs, strict=True)):
            own: dict[str, np.ndarray] = {}
            for name in graph_inputs(proto.graph):
                wire = by_dst.get((k, name))
                if wire is not None:
                    own[name] = produced[(wire.src_model, wire.src)]
                elif namings[k](name) in feeds:
                    own[name] = np.asarray(feeds[namings[k](name)])
            for name, value in run(own).items():
                produced[(k, name)] = value
                result[namings[k](name)] = value
        return {name: result[name] for name in wanted}

    return reference
