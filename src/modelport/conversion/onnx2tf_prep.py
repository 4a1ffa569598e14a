"""The private copy onnx2tf converts: names TensorFlow accepts, Erf in builtins, contrib ops lowered, dims fixed.

onnx2tf is handed a copy of the user's model, never the file itself (:mod:`modelport.conversion.onnx_tflite`).
This module prepares that copy and maps the names back afterwards:

* :func:`sanitize_names`: ONNX tensor and node names may hold characters that are invalid in TensorFlow scope
  names (``@``, ``{``, ``"``, spaces; a graph input or output starting with a digit); they are renamed in the copy
  (inside ``If``/``Loop`` bodies too) and :func:`restore_tflite_names` puts the ONNX names back on the TFLite
  inputs, outputs and signature keys, so verification pairs them with the source's;
* ``Erf`` is rewritten into TFLite builtins (:mod:`modelport.rules.erf`), since onnx2tf would emit a Flex op
  LiteRT cannot run; ``com.microsoft::DynamicQuantizeLSTM`` becomes a standard LSTM
  (:mod:`modelport.passes.quantized`); free dims are fixed with ``fix-dims`` when a rung of the settings ladder
  asks for it, and modelport's optimizer runs on the copy when the rung says so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import onnx
import onnx_ir as ir

from modelport.errors import ModelportError, first_line, optional_import
from modelport.model_guard import all_nodes
from modelport.model_io import load_proto, save_model

log = logging.getLogger(__name__)


def private_copy(
    src: Path, copy: Path, shapes: Mapping[str, tuple[int, ...]], passes: Sequence[str], optimize: bool = False
) -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, str], ...]]:
    """Write the model onnx2tf may rewrite: optimized (``optimize``), ``fix-dims`` and ``passes`` run, Erf
    decomposed, names sanitised.

    Returns:
        ``(pass, nodes added)`` for each pass that changed the copy (``optimize`` and ``decompose-erf`` included),
        and ``(original, new)`` for every renamed tensor or node.
    """
    from modelport.passes import resolve_passes, run_passes
    from modelport.passes.shapes import FixDimsOptions
    from modelport.rules.erf import erf_rules

    proto = load_proto(src, check=False)
    has_erf = any(n.op_type == "Erf" for n in all_nodes(proto.graph))
    # onnx2tf has no com.microsoft ops: DynamicQuantizeLSTM becomes a standard LSTM on dequantized weights first
    contrib = (
        ("lower-quantized-contrib",)
        if any(n.domain == "com.microsoft" and n.op_type == "DynamicQuantizeLSTM" for n in all_nodes(proto.graph))
        else ()
    )
    done: list[tuple[str, int]] = []
    if shapes or passes or has_erf or optimize or contrib:
        model = _optimized(src, shapes, done) if optimize else None
        if model is None:
            model = ir.serde.deserialize_model(proto)
        fix = ("fix-dims", "shape-inference") if shapes else ("shape-inference",) if has_erf else ()
        options = {"fix-dims": FixDimsOptions(input_shapes=tuple(shapes.items()))} if shapes else {}
        stats, _ = run_passes(model, resolve_passes([*contrib, *passes, *fix]), options)
        done += [
            (s.name, s.nodes_after - s.nodes_before) for s in stats if s.modified and s.name in (*contrib, *passes)
        ]
        if has_erf:
            before = sum(1 for _ in model.graph.all_nodes())
            if erf_rules().apply_to_model(model):
                done.append(("decompose-erf", sum(1 for _ in model.graph.all_nodes()) - before))
        proto = ir.serde.serialize_model(model)
    renamed = sanitize_names(proto)
    save_model(proto, copy)
    for name, added in done:
        log.info("%s: %s changed the copy for onnx2tf (%+d nodes)", src.name, name, added)
    if renamed:
        log.info("%s: %d names renamed for onnx2tf", src.name, len(renamed))
    return tuple(done), renamed


def _optimized(src: Path, shapes: Mapping[str, tuple[int, ...]], done: list[tuple[str, int]]) -> ir.Model | None:
    """modelport's optimizer on ``src`` with ``shapes`` fixed (its result is checked as the TFLite model is), or
    None when it fails (the rung then converts the model as it is)."""
    from modelport.passes import OptimizeOptions, optimize

    try:
        result = optimize(src, options=OptimizeOptions(input_shapes=tuple(shapes.items()), verify=False))
    except ModelportError as exc:
        log.info("%s: the optimizer failed, onnx2tf gets the model as it is: %s", src.name, first_line(exc.message))
        return None
    done.append(("optimize", result.report.nodes_after - result.report.nodes_before))
    return result.model


#: Characters left in names: TensorFlow scope names allow ``[A-Za-z0-9_.\-/]``; onnx2tf maps ``:`` itself.
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.:/\-]")


def sanitize_names(proto: onnx.ModelProto) -> tuple[tuple[str, str], ...]:
    """Rename, in place, every tensor and node name that is not a TensorFlow scope name (subgraphs included).

    ``[^A-Za-z0-9_.:/-]`` becomes ``_``; a graph input or output starting with a digit gets ``t_`` in front; a
    new name that already exists gets ``_1``, ``_2`` … The same old name always gets the same new name, so
    references from subgraphs to outer-scope tensors stay connected.

    Returns:
        ``(original, new)`` for every renamed name.
    """
    graph = proto.graph
    io = {v.name for v in (*graph.input, *graph.output)}
    used = set(_names(graph))
    mapping: dict[str, str] = {}
    for name in sorted(used):
        new = _BAD_CHARS.sub("_", name)
        if name in io and new[:1].isdigit():
            new = f"t_{new}"
        if new == name:
            continue
        base, k = new, 0
        while new in used:
            k += 1
            new = f"{base}_{k}"
        used.add(new)
        mapping[name] = new
    if mapping:
        _rename(graph, mapping)
    return tuple(mapping.items())


def _names(graph: onnx.GraphProto) -> Iterator[str]:
    """Every tensor and node name in the graph and its subgraphs."""
    for v in (*graph.input, *graph.output, *graph.value_info):
        yield v.name
    for t in graph.initializer:
        yield t.name
    for node in graph.node:
        yield from (n for n in (node.name, *node.input, *node.output) if n)
        for attr in node.attribute:
            for sub in (attr.g,) if attr.HasField("g") else tuple(attr.graphs):
                yield from _names(sub)


def _rename(graph: onnx.GraphProto, mapping: Mapping[str, str]) -> None:
    for v in (*graph.input, *graph.output, *graph.value_info):
        v.name = mapping.get(v.name, v.name)
    for t in graph.initializer:
        t.name = mapping.get(t.name, t.name)
    for s in graph.sparse_initializer:
        s.values.name = mapping.get(s.values.name, s.values.name)
    for node in graph.node:
        node.name = mapping.get(node.name, node.name)
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
        for attr in node.attribute:
            for sub in (attr.g,) if attr.HasField("g") else tuple(attr.graphs):
                _rename(sub, mapping)


def restore_tflite_names(path: Path, back: Mapping[str, str], outputs: Sequence[str]) -> None:
    """Give a single-subgraph TFLite file (in place) the ONNX model's input and output names.

    Inputs and signature keys are mapped through ``back`` (the copy's name → the original, for the names
    :func:`sanitize_names` changed; onnx2tf's own ``:`` → ``__`` is undone too). Outputs: onnx2tf calls the
    tensors ``Identity``, ``Identity_1`` … in the ONNX output order, so they are named ``outputs`` by position.
    """
    flatbuffer_utils = optional_import("ai_edge_litert.tools.flatbuffer_utils", extra="tflite", what="LiteRT")
    model = flatbuffer_utils.read_model(str(path))
    if len(model.subgraphs) != 1:
        return
    graph = model.subgraphs[0]
    lookup = dict(back)
    lookup.update({k.replace(":", "__"): v for k, v in back.items()})
    lookup.update({k.replace(":", "__"): k for k in outputs if ":" in k})

    def original(name: bytes | str) -> bytes:
        text = name.decode() if isinstance(name, bytes) else name
        return lookup.get(text, text).encode()

    for index in graph.inputs:
        graph.tensors[index].name = original(graph.tensors[index].name)
    if len(graph.outputs) == len(outputs):
        for index, name in zip(graph.outputs, outputs, strict=True):
            graph.tensors[index].name = name.encode()
    for signature in model.signatureDefs or []:
        for item in (*(signature.inputs or []), *(signature.outputs or [])):
            item.name = original(item.name)
    flatbuffer_utils.write_model(model, str(path))
