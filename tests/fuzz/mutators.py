"""Seeded mutators of real model files (ONNX, TFLite, OpenVINO IR) for the fuzz campaign and its regression tests.

A *case* is ``(seed model, mutator name, rng seed)``: :func:`mutate` turns it into the bytes of the files of one
damaged model, the same bytes every time (``random.Random(rng_seed)`` is the only source of randomness). A model is
a dict ``{file name: bytes}`` with one main file (``model.onnx``, ``model.tflite``, ``model.xml`` + ``model.bin``);
ONNX models with external data add their data files.

Mutators work at two levels:

* byte level, for every format: truncation at a random offset, bit flips, a run of bytes zeroed or randomised,
  a chunk duplicated in place;
* structure level: ONNX through the protobuf (huge/negative dims, cycles, a node reading its own output, raw data
  shorter or longer than its dims, unknown domains and opsets, missing inputs, duplicate or empty names, external
  data pointing at missing or escaping files, random field values); TFLite through the flatbuffer object API
  (shapes, buffer indices and offsets, opcode indices, tensor indices, subgraph indices, types); OpenVINO IR
  through the XML tree (attributes, shapes, edges, element types, Const offsets) and the .bin (truncated).

Used by ``tests/fuzz/campaign.py`` and ``tests/fuzz/test_*.py``; it imports no modelport code.
"""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

import onnx

Files = dict[str, bytes]
#: interesting integers: zero, negatives, huge, int32/int64 edges
EDGE_INTS = (0, -1, -2, 1, 2**31 - 1, -(2**31), 2**32, 10**12, 2**62, -(10**12), 7, 255, 65536)
HUGE = 10**12


@dataclass(frozen=True)
class Model:
    """A seed: its format, a short name and its files (``main`` names the file a verb is given)."""

    name: str
    fmt: str
    files: tuple[tuple[str, bytes], ...]
    main: str

    def as_dict(self) -> Files:
        return dict(self.files)


# --- byte level ---------------------------------------------------------------------------------------------


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(0, max(len(data), 1))]


def bit_flips(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def zero_run(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    start = rng.randrange(len(out))
    n = min(rng.choice((1, 4, 8, 16, 64, 512)), len(out) - start)
    out[start : start + n] = bytes(n)
    return bytes(out)


def random_run(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    start = rng.randrange(len(out))
    n = min(rng.choice((1, 2, 4, 8, 32)), len(out) - start)
    out[start : start + n] = bytes(rng.randrange(256) for _ in range(n))
    return bytes(out)


def dup_chunk(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data))
    n = rng.choice((4, 16, 64, 256))
    return data[: start + n] + data[start : start + n] + data[start + n :]


BYTE_MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": truncate,
    "bit_flips": bit_flips,
    "zero_run": zero_run,
    "random_run": random_run,
    "dup_chunk": dup_chunk,
}

# --- ONNX structure level -----------------------------------------------------------------------------------


def _nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return list(model.graph.node)


def _pick_node(model: onnx.ModelProto, rng: random.Random) -> onnx.NodeProto | None:
    nodes = _nodes(model)
    return rng.choice(nodes) if nodes else None


def onnx_huge_dim(m: onnx.ModelProto, rng: random.Random) -> None:
    value = rng.choice((HUGE, 2**40, 2**31, 2**62))
    if m.graph.initializer and rng.random() < 0.5:
        t = rng.choice(list(m.graph.initializer))
        if t.dims:
            t.dims[rng.randrange(len(t.dims))] = value
        else:
            t.dims.append(value)
        return
    vi = rng.choice(list(m.graph.input) + list(m.graph.output))
    dims = vi.type.tensor_type.shape.dim
    if dims:
        dims[rng.randrange(len(dims))].dim_value = value
    else:
        vi.type.tensor_type.shape.dim.add().dim_value = value


def onnx_negative_dim(m: onnx.ModelProto, rng: random.Random) -> None:
    value = rng.choice((-1, -2, -(10**9)))
    if m.graph.initializer and rng.random() < 0.5:
        t = rng.choice(list(m.graph.initializer))
        if t.dims:
            t.dims[rng.randrange(len(t.dims))] = value
        return
    vi = rng.choice(list(m.graph.input) + list(m.graph.output))
    dims = vi.type.tensor_type.shape.dim
    if dims:
        dims[rng.randrange(len(dims))].dim_value = value


def onnx_zero_dim(m: onnx.ModelProto, rng: random.Random) -> None:
    vi = rng.choice(list(m.graph.input))
    for d in vi.type.tensor_type.shape.dim:
        d.dim_value = 0


def onnx_cycle(m: onnx.ModelProto, rng: random.Random) -> None:
    nodes = _nodes(m)
    if len(nodes) < 2:
        return
    i = rng.randrange(len(nodes) - 1)
    j = rng.randrange(i + 1, len(nodes))
    if nodes[i].input and nodes[j].output:
        nodes[i].input[rng.randrange(len(nodes[i].input))] = nodes[j].output[0]


def onnx_self_loop(m: onnx.ModelProto, rng: random.Random) -> None:
    node = _pick_node(m, rng)
    if node is not None and node.input and node.output:
        node.input[0] = node.output[0]


def onnx_raw_size(m: onnx.ModelProto, rng: random.Random) -> None:
    raw = [t for t in m.graph.initializer if t.raw_data]
    if not raw:
        return
    t = rng.choice(raw)
    data = bytes(t.raw_data)
    t.raw_data = data[: rng.randrange(len(data))] if rng.random() < 0.6 else data + bytes(rng.choice((1, 4, 4096)))


def onnx_data_type(m: onnx.ModelProto, rng: random.Random) -> None:
    if m.graph.initializer and rng.random() < 0.5:
        rng.choice(list(m.graph.initializer)).data_type = rng.choice((0, 8, 16, 23, 40, 999, -3))
    else:
        vi = rng.choice(list(m.graph.input) + list(m.graph.output))
        vi.type.tensor_type.elem_type = rng.choice((0, 8, 16, 23, 40, 999))


def onnx_unknown_domain(m: onnx.ModelProto, rng: random.Random) -> None:
    node = _pick_node(m, rng)
    if node is None:
        return
    if rng.random() < 0.5:
        node.domain = rng.choice(("com.fuzz", "ai.onnx.ml", "com.microsoft", "", "\x00"))
    else:
        node.op_type = rng.choice(("NotAnOp", "", "Loop", "If", "Scan", "Conv", "Reshape"))


def onnx_opset(m: onnx.ModelProto, rng: random.Random) -> None:
    choice = rng.randrange(4)
    if choice == 0 or not m.opset_import:
        m.opset_import.add(domain=rng.choice(("com.fuzz", "", "ai.onnx")), version=rng.choice(EDGE_INTS))
    elif choice == 1:
        m.opset_import[rng.randrange(len(m.opset_import))].version = rng.choice(EDGE_INTS)
    elif choice == 2:
        del m.opset_import[:]
    else:
        m.ir_version = rng.choice(EDGE_INTS)


def onnx_missing_input(m: onnx.ModelProto, rng: random.Random) -> None:
    node = _pick_node(m, rng)
    if node is not None and node.input:
        node.input[rng.randrange(len(node.input))] = f"missing_{rng.randrange(1000)}"
    elif m.graph.input and rng.random() < 0.5:
        del m.graph.input[rng.randrange(len(m.graph.input))]


def onnx_duplicate_name(m: onnx.ModelProto, rng: random.Random) -> None:
    nodes = _nodes(m)
    choice = rng.randrange(3)
    if choice == 0 and len(nodes) >= 2:
        a, b = rng.sample(nodes, 2)
        if a.output and b.output:
            b.output[0] = a.output[0]
    elif choice == 1 and m.graph.initializer:
        m.graph.initializer.append(rng.choice(list(m.graph.initializer)))
    elif m.graph.input:
        m.graph.input.append(m.graph.input[0])
        if m.graph.output:
            m.graph.output[0].name = m.graph.input[0].name


def onnx_empty_name(m: onnx.ModelProto, rng: random.Random) -> None:
    choice = rng.randrange(3)
    node = _pick_node(m, rng)
    if choice == 0 and node is not None and node.output:
        node.output[0] = ""
    elif choice == 1 and node is not None and node.input:
        node.input[0] = ""
    elif m.graph.input:
        m.graph.input[0].name = ""


def onnx_external_data(m: onnx.ModelProto, rng: random.Random) -> None:
    inits = list(m.graph.initializer)
    if not inits:
        return
    t = rng.choice(inits)
    location = rng.choice(
        ("missing.bin", "../../../etc/passwd", "/etc/passwd", "sub/../../x.bin", "", "/dev/zero", "model.onnx")
    )
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    del t.external_data[:]
    t.external_data.add(key="location", value=location)
    if rng.random() < 0.5:
        t.external_data.add(key="offset", value=str(rng.choice((0, 2**40, -5))))
        t.external_data.add(key="length", value=str(rng.choice((0, 4, 2**40, -1))))


def onnx_attribute(m: onnx.ModelProto, rng: random.Random) -> None:
    with_attrs = [n for n in _nodes(m) if n.attribute]
    if not with_attrs:
        return
    attr = rng.choice(list(rng.choice(with_attrs).attribute))
    if attr.ints:
        attr.ints[rng.randrange(len(attr.ints))] = rng.choice(EDGE_INTS)
    elif attr.type == onnx.AttributeProto.INT:
        attr.i = rng.choice(EDGE_INTS)
    elif attr.type == onnx.AttributeProto.FLOAT:
        attr.f = rng.choice((float("nan"), float("inf"), -1.0, 1e30))
    else:
        attr.type = rng.choice((0, 1, 2, 3, 4, 5, 99))


def onnx_drop(m: onnx.ModelProto, rng: random.Random) -> None:
    choice = rng.randrange(3)
    if choice == 0:
        del m.graph.output[:]
    elif choice == 1 and m.graph.node:
        del m.graph.node[rng.randrange(len(m.graph.node))]
    else:
        del m.graph.node[:]


ONNX_MUTATORS: dict[str, Callable[[onnx.ModelProto, random.Random], None]] = {
    "onnx_huge_dim": onnx_huge_dim,
    "onnx_negative_dim": onnx_negative_dim,
    "onnx_zero_dim": onnx_zero_dim,
    "onnx_cycle": onnx_cycle,
    "onnx_self_loop": onnx_self_loop,
    "onnx_raw_size": onnx_raw_size,
    "onnx_data_type": onnx_data_type,
    "onnx_unknown_domain": onnx_unknown_domain,
    "onnx_opset": onnx_opset,
    "onnx_missing_input": onnx_missing_input,
    "onnx_duplicate_name": onnx_duplicate_name,
    "onnx_empty_name": onnx_empty_name,
    "onnx_external_data": onnx_external_data,
    "onnx_attribute": onnx_attribute,
    "onnx_drop": onnx_drop,
}

# --- TFLite structure level (flatbuffer object API) ---------------------------------------------------------


def _tfl_tensors(model: object, rng: random.Random) -> list:
    graph = rng.choice(model.subgraphs)  # type: ignore[attr-defined]
    return list(graph.tensors or [])


def tfl_shape(m: object, rng: random.Random) -> None:
    tensors = _tfl_tensors(m, rng)
    if not tensors:
        return
    t = rng.choice(tensors)
    value = rng.choice((HUGE, -1, -7, 0, 2**31 - 1, -(2**31)))
    field = "shapeSignature" if rng.random() < 0.3 else "shape"
    shape = list(getattr(t, field) if getattr(t, field) is not None else [])
    if shape and rng.random() < 0.8:
        shape[rng.randrange(len(shape))] = value
    else:
        shape = [value] * rng.randint(0, 9)
    setattr(t, field, [max(min(v, 2**31 - 1), -(2**31)) for v in shape])


def tfl_buffer_index(m: object, rng: random.Random) -> None:
    tensors = _tfl_tensors(m, rng)
    if tensors:
        rng.choice(tensors).buffer = rng.choice((2**31 - 1, 10**6, len(m.buffers or []), 2**32 - 1))  # type: ignore[attr-defined]


def tfl_buffer_data(m: object, rng: random.Random) -> None:
    bufs = [b for b in m.buffers or [] if b.data is not None and len(b.data)]  # type: ignore[attr-defined]
    if not bufs:
        return
    b = rng.choice(bufs)
    b.data = b.data[: rng.randrange(len(b.data))] if rng.random() < 0.7 else None
    if rng.random() < 0.3:
        b.offset, b.size = rng.choice(((2**40, 16), (1, 2**40), (0, 0), (8, 2**20)))


def tfl_opcode_index(m: object, rng: random.Random) -> None:
    graph = rng.choice(m.subgraphs)  # type: ignore[attr-defined]
    if graph.operators:
        rng.choice(graph.operators).opcodeIndex = rng.choice((len(m.operatorCodes or []), 2**31 - 1, 255))  # type: ignore[attr-defined]


def tfl_builtin_code(m: object, rng: random.Random) -> None:
    if m.operatorCodes:  # type: ignore[attr-defined]
        code = rng.choice(m.operatorCodes)  # type: ignore[attr-defined]
        value = rng.choice((32, 127, 150, 200, 2**31 - 1, -1, 0))
        code.builtinCode = value
        code.deprecatedBuiltinCode = max(min(value, 127), -128)


def tfl_tensor_index(m: object, rng: random.Random) -> None:
    graph = rng.choice(m.subgraphs)  # type: ignore[attr-defined]
    value = rng.choice((len(graph.tensors or []), 2**31 - 1, -2, 10**6))
    choice = rng.randrange(3)
    if choice == 0 and graph.operators:
        op = rng.choice(graph.operators)
        if op.inputs is not None and len(op.inputs):
            ins = list(op.inputs)
            ins[rng.randrange(len(ins))] = value
            op.inputs = ins
    elif choice == 1 and graph.inputs is not None and len(graph.inputs):
        graph.inputs = [value, *list(graph.inputs)[1:]]
    elif graph.outputs is not None and len(graph.outputs):
        graph.outputs = [value, *list(graph.outputs)[1:]]


def tfl_subgraph(m: object, rng: random.Random) -> None:
    choice = rng.randrange(3)
    if choice == 0:
        m.subgraphs = []  # type: ignore[attr-defined]
    elif choice == 1 and m.signatureDefs:  # type: ignore[attr-defined]
        rng.choice(m.signatureDefs).subgraphIndex = rng.choice((1, 99, 2**31 - 1))  # type: ignore[attr-defined]
    else:
        m.subgraphs[0].operators = list(reversed(m.subgraphs[0].operators or []))  # type: ignore[attr-defined]


def tfl_tensor_type(m: object, rng: random.Random) -> None:
    tensors = _tfl_tensors(m, rng)
    if tensors:
        rng.choice(tensors).type = rng.choice((5, 7, 9, 12, 17, 60, 127))


TFLITE_MUTATORS: dict[str, Callable[[object, random.Random], None]] = {
    "tfl_shape": tfl_shape,
    "tfl_buffer_index": tfl_buffer_index,
    "tfl_buffer_data": tfl_buffer_data,
    "tfl_opcode_index": tfl_opcode_index,
    "tfl_builtin_code": tfl_builtin_code,
    "tfl_tensor_index": tfl_tensor_index,
    "tfl_subgraph": tfl_subgraph,
    "tfl_tensor_type": tfl_tensor_type,
}

# --- OpenVINO IR structure level (XML tree) -----------------------------------------------------------------


def _layers(root: ET.Element) -> list[ET.Element]:
    return list(root.iter("layer"))


def ov_attribute(root: ET.Element, rng: random.Random) -> None:
    datas = list(root.iter("data"))
    if not datas:
        return
    data = rng.choice(datas)
    if not data.attrib:
        return
    key = rng.choice(sorted(data.attrib))
    data.set(key, rng.choice(("-1", "0", "999999999999", "abc", "", "1,2,3", "nan", "-5,-5")))


def ov_shape(root: ET.Element, rng: random.Random) -> None:
    dims = list(root.iter("dim"))
    if dims:
        rng.choice(dims).text = rng.choice(("-1", "-7", "0", str(HUGE), "?", "x", ""))


def ov_edge(root: ET.Element, rng: random.Random) -> None:
    edges = list(root.iter("edge"))
    if not edges:
        return
    edge = rng.choice(edges)
    choice = rng.randrange(4)
    if choice == 0:
        edge.set("from-layer", rng.choice(("9999", "-1", edge.get("to-layer", "0"))))
    elif choice == 1:
        edge.set("to-port", rng.choice(("9999", "-1", "0")))
    elif choice == 2:  # a cycle: the edge goes back from a later layer to an earlier one
        edge.set("from-layer", edge.get("to-layer", "0"))
        edge.set("to-layer", rng.choice(edges).get("from-layer", "0"))
    else:
        root.find("edges").remove(edge)  # type: ignore[union-attr]


def ov_element_type(root: ET.Element, rng: random.Random) -> None:
    datas = [d for d in root.iter("data") if "element_type" in d.attrib]
    ports = [p for p in root.iter("port") if "precision" in p.attrib]
    kinds = ("u1", "f64", "i4", "string", "dynamic", "undefined", "zz", "")
    if datas and (not ports or rng.random() < 0.6):
        rng.choice(datas).set("element_type", rng.choice(kinds))
    elif ports:
        rng.choice(ports).set("precision", rng.choice(("FP64", "U1", "BOOL", "XYZ", "")))


def ov_const_offset(root: ET.Element, rng: random.Random) -> None:
    datas = [d for d in root.iter("data") if "offset" in d.attrib]
    if datas:
        d = rng.choice(datas)
        d.set(rng.choice(("offset", "size")), rng.choice(("-1", str(2**40), "999999999", "0", "18446744073709551615")))


def ov_layer(root: ET.Element, rng: random.Random) -> None:
    layers = _layers(root)
    if not layers:
        return
    layer = rng.choice(layers)
    choice = rng.randrange(4)
    if choice == 0:
        layer.set("type", rng.choice(("NotAnOp", "Parameter", "Result", "Const", "")))
    elif choice == 1:
        layer.set("version", rng.choice(("opset999", "", "opset1", "extension")))
    elif choice == 2:
        layer.set("id", rng.choice(layers).get("id", "0"))
    else:
        parent = root.find("layers")
        if parent is not None:
            parent.remove(layer)


OV_MUTATORS: dict[str, Callable[[ET.Element, random.Random], None]] = {
    "ov_attribute": ov_attribute,
    "ov_shape": ov_shape,
    "ov_edge": ov_edge,
    "ov_element_type": ov_element_type,
    "ov_const_offset": ov_const_offset,
    "ov_layer": ov_layer,
}

# --- dispatch -----------------------------------------------------------------------------------------------


def mutator_names(fmt: str) -> list[str]:
    """Every mutator that applies to a format, byte level first."""
    structural = {"onnx": ONNX_MUTATORS, "tflite": TFLITE_MUTATORS, "openvino": OV_MUTATORS}[fmt]
    names = [*BYTE_MUTATORS, *structural]
    if fmt == "openvino":
        names += ["bin_truncate", "bin_bit_flips"]
    return names


def _mutate_onnx(data: bytes, name: str, rng: random.Random) -> bytes:
    model = onnx.ModelProto()
    model.ParseFromString(data)
    ONNX_MUTATORS[name](model, rng)
    return model.SerializeToString()


def _mutate_tflite(data: bytes, name: str, rng: random.Random) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    if not model.subgraphs:
        return data
    TFLITE_MUTATORS[name](model, rng)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _mutate_openvino(data: bytes, name: str, rng: random.Random) -> bytes:
    root = ET.fromstring(data)
    OV_MUTATORS[name](root, rng)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def mutate(seed: Model, name: str, rng_seed: int) -> Files:
    """The files of ``seed`` damaged by the mutator ``name`` with ``random.Random(rng_seed)``.

    Byte mutators damage the main file (for an OpenVINO IR, ``bin_*`` ones the .bin); structural ones parse the
    main file with its format's own library, change it and write it back.
    """
    rng = random.Random(rng_seed)
    files = seed.as_dict()
    if name in BYTE_MUTATORS:
        files[seed.main] = BYTE_MUTATORS[name](files[seed.main], rng)
    elif name.startswith("bin_"):
        bin_name = seed.main.rsplit(".", 1)[0] + ".bin"
        files[bin_name] = BYTE_MUTATORS[name[4:]](files[bin_name], rng)
    elif name in ONNX_MUTATORS:
        files[seed.main] = _mutate_onnx(files[seed.main], name, rng)
    elif name in TFLITE_MUTATORS:
        files[seed.main] = _mutate_tflite(files[seed.main], name, rng)
    elif name in OV_MUTATORS:
        files[seed.main] = _mutate_openvino(files[seed.main], name, rng)
    else:
        raise KeyError(f"no mutator {name!r}")
    return files


def stack(seed: Model, names: list[str], rng_seed: int) -> Files:
    """Several mutators applied one after the other (each on the previous one's output)."""
    current = seed
    for k, name in enumerate(names):
        files = mutate(current, name, rng_seed * 31 + k)
        current = Model(seed.name, seed.fmt, tuple(sorted(files.items())), seed.main)
    return current.as_dict()
