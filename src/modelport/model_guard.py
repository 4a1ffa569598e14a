"""What a model file may ask of the machine, checked before any engine reads it.

A model file is untrusted input: its external data may point anywhere (``../``, an absolute path, a symlink out of its
folder) and its dims may declare more memory than the machine has. :func:`check_model_file` vets both on the parsed
structure alone (no tensor data read): external-data locations must stay inside the model's folder and fit their
files; every tensor's declared size, and their total, must fit :func:`memory_limit` (``MODELPORT_MAX_MEMORY`` or the
machine's memory); inline data must agree with its dims. :func:`modelport.model_io.load_proto` and the runners that
hand a path to an engine call it first. The graph walkers (:func:`all_graphs`, :func:`all_nodes`) live here too, the
one place below both.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from modelport.errors import InvalidInputError, ModelLoadError, first_line


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """``graph`` and, recursively, every sub-graph of its nodes' attributes (If branches, Loop/Scan bodies)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g, *attr.graphs] if attr.HasField("g") else attr.graphs:
                yield from all_graphs(sub)


def all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph`` and of its sub-graphs, recursively."""
    for sub in all_graphs(graph):
        yield from sub.node


#: environment variable bounding the tensor data one model may declare: bytes, or a size such as ``8G``, ``512M``
MAX_MEMORY_ENV = "MODELPORT_MAX_MEMORY"

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)

#: bits per element of each ONNX tensor type (strings have no fixed size)
_BITS = {
    getattr(onnx.TensorProto, name): int(bits)
    for name, bits in re.findall(
        r"(\w+):(\d+)",
        "FLOAT:32 UINT8:8 INT8:8 UINT16:16 INT16:16 INT32:32 INT64:64 BOOL:8 FLOAT16:16 DOUBLE:64 UINT32:32 UINT64:64 "
        "COMPLEX64:64 COMPLEX128:128 BFLOAT16:16 FLOAT8E4M3FN:8 FLOAT8E4M3FNUZ:8 FLOAT8E5M2:8 FLOAT8E5M2FNUZ:8 UINT4:4 "
        "INT4:4 FLOAT4E2M1:4 FLOAT8E8M0:8 UINT2:2 INT2:2",
    )
    if hasattr(onnx.TensorProto, name)
}

#: the typed field holding a tensor's values when it has no raw_data, and how many numbers one element takes
_TYPED_FIELD = {
    onnx.TensorProto.FLOAT: ("float_data", 1),
    onnx.TensorProto.COMPLEX64: ("float_data", 2),
    onnx.TensorProto.DOUBLE: ("double_data", 1),
    onnx.TensorProto.COMPLEX128: ("double_data", 2),
    onnx.TensorProto.INT64: ("int64_data", 1),
    onnx.TensorProto.UINT32: ("uint64_data", 1),
    onnx.TensorProto.UINT64: ("uint64_data", 1),
    onnx.TensorProto.STRING: ("string_data", 1),
    **{t: ("int32_data", 1) for t, bits in _BITS.items() if bits in (8, 16) or t == onnx.TensorProto.INT32},
}


def parse_size(text: str) -> int:
    """Bytes from ``123``, ``512M``, ``8G``, ``1.5GiB`` (binary units).

    Raises:
        InvalidInputError: not a size.
    """
    match = _SIZE.match(text)
    if match is None:
        raise InvalidInputError(f"not a size: {text!r}", hint="write bytes or a number with K, M, G or T, e.g. 8G")
    return int(float(match[1]) * _UNITS[match[2].upper()])


def memory_limit() -> int:
    """The most tensor data (bytes) one model may declare: ``$MODELPORT_MAX_MEMORY`` when set, else this machine's
    memory (the smaller of the physical RAM and the cgroup's ``memory.max``).

    A model declaring more than it can hold cannot load; it fails before allocation with one clear error instead
    of being killed by the kernel.
    """
    text = os.environ.get(MAX_MEMORY_ENV, "").strip()
    if text:
        return parse_size(text)
    limits = []
    with contextlib.suppress(AttributeError, OSError, ValueError):  # no sysconf on Windows
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    with contextlib.suppress(OSError, ValueError):
        cgroup = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if cgroup.isdigit():
            limits.append(int(cgroup))
    return min(limits, default=2**62)


def read_structure(path: Path) -> onnx.ModelProto:
    """Parse an ONNX file without its external data, every parse failure one ``ModelLoadError``."""
    try:
        return onnx.load(str(path), load_external_data=False)
    except DecodeError as exc:
        raise ModelLoadError(
            "file is not a valid ONNX protobuf (truncated or corrupt)", path=path, hint="re-export the model"
        ) from exc
    except (OSError, ValueError, onnx.onnx_cpp2py_export.checker.ValidationError) as exc:
        raise ModelLoadError(f"cannot read ONNX model: {first_line(exc)}", path=path) from exc


def check_model_file(
    path: str | Path, proto: onnx.ModelProto | None = None, *, max_bytes: int | None = None
) -> onnx.ModelProto:
    """Vet an .onnx file before it is loaded or handed to an engine: :func:`check_external_data` and
    :func:`check_tensor_sizes`. Reads no tensor data.

    Args:
        path: the .onnx file.
        proto: the model already parsed without external data (parsed from ``path`` when None).
        max_bytes: the most tensor data the model may declare (default :func:`memory_limit`).

    Returns:
        The model, without its external data.

    Raises:
        ModelLoadError: the first problem found, naming the tensor and what to do.
    """
    p = Path(path)
    if proto is None:
        proto = read_structure(p)
    check_external_data(p, proto)
    check_tensor_sizes(proto, p, max_bytes=max_bytes)
    return proto


def check_external_data(path: str | Path, proto: onnx.ModelProto) -> None:
    """Refuse external-data locations that leave the model's folder and files too short for what they must hold.

    A location must be relative, must not climb out with ``..``, and must resolve (symlinks followed, the file's
    and its parents') to a regular file inside the folder; ``offset + length`` (``length`` defaulting to the
    tensor's size from its dims and type) must fit in the file. Nothing is read from the files.

    Raises:
        ModelLoadError: naming the tensor, its location and what to do.
    """
    p = Path(path)
    folder = p.absolute().parent.resolve()  # the folder the engines read from: the link's, for a linked model
    for tensor in _external_tensors(proto):
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"tensor {tensor.name!r}: external data {location!r}"
        target = _inside(folder, location, where, p)
        try:
            offset = int(info.get("offset") or 0)
            length = int(info["length"]) if info.get("length") else declared_bytes(tensor)
        except ValueError as exc:
            raise ModelLoadError(f"{where} has a malformed offset or length", path=p) from exc
        if offset < 0 or (length is not None and length < 0):
            raise ModelLoadError(f"{where} has a negative offset or length", path=p)
        declared = declared_bytes(tensor)
        if length is not None and declared is not None and length != declared:
            raise ModelLoadError(
                f"{where} has length {length:,}, its dims {list(tensor.dims)} need {declared:,} bytes",
                path=p,
                hint="the file is corrupt or was written by a broken exporter: re-export the model",
            )
        size = target.stat().st_size
        if length is not None and offset + length > size:
            raise ModelLoadError(
                f"{where} needs bytes {offset}–{offset + length}, the file holds {size}",
                path=p,
                hint="the data file is truncated or belongs to another model: copy it again with the model",
            )


def _inside(folder: Path, location: str, where: str, path: Path) -> Path:
    """The regular file ``location`` names inside ``folder`` (resolved); ModelLoadError when it is anything else."""
    hint = "external data files must lie in the model's folder: move them there and fix the location"
    if not location:
        raise ModelLoadError(f"{where} names no file", path=path, hint=hint)
    if Path(location).is_absolute() or location.startswith(("/", "\\")) or ":" in location.split("/")[0]:
        raise ModelLoadError(
            f"{where} is an absolute path; refusing to read outside the model's folder", path=path, hint=hint
        )
    if ".." in Path(location.replace("\\", "/")).parts:
        raise ModelLoadError(
            f"{where} climbs out of the model's folder ('..'); refusing to read it", path=path, hint=hint
        )
    try:
        target = (folder / location).resolve()
        exists, regular = target.exists(), target.is_file()
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, a loop of links
        raise ModelLoadError(f"{where} cannot be resolved: {first_line(exc)}", path=path, hint=hint) from exc
    if not target.is_relative_to(folder):
        raise ModelLoadError(
            f"{where} resolves to {target}, outside the model's folder (a symlink); refusing to read it",
            path=path,
            hint=hint,
        )
    if not exists:
        raise ModelLoadError(f"{where} is missing", path=path, hint="copy the data file beside the model")
    if not regular:
        raise ModelLoadError(f"{where} is not a regular file", path=path, hint=hint)
    return target


def check_tensor_sizes(proto: onnx.ModelProto, path: str | Path | None = None, *, max_bytes: int | None = None) -> int:
    """Refuse tensors whose declared size the machine cannot hold or whose data disagrees with their dims.

    Every tensor (initializers, sparse initializers at their dense size, node attributes, sub-graphs, functions)
    declares ``prod(dims)`` elements of its type; each, and their sum, must stay within ``max_bytes``. An inline
    tensor's ``raw_data`` must hold exactly ``ceil(prod(dims) · bits / 8)`` bytes, its typed field exactly
    ``prod(dims)`` values (two for complex types). All of it is arithmetic on the header: nothing is allocated.

    Returns:
        The total bytes the model's tensors declare.

    Raises:
        ModelLoadError: a negative dim, a tensor or a total over the limit, data disagreeing with dims.
    """
    limit = memory_limit() if max_bytes is None else max_bytes
    total = 0
    for tensor, dense_dims in _declared_tensors(proto):
        what = f"tensor {tensor.name!r}" if tensor.name else "an unnamed tensor"
        elements = _elements(dense_dims, what, path)
        nbytes = _nbytes(elements, tensor.data_type)
        total += nbytes
        if nbytes > limit or total > limit:
            whose = (
                f"{what} declares {elements:,} elements ({_human(nbytes)})"
                if nbytes > limit
                else (f"the model's tensors declare {_human(total)} in all")
            )
            raise ModelLoadError(
                f"{whose}, more than the {_human(limit)} this machine allows",
                path=path,
                hint=f"pass --max-memory 64G (or set {MAX_MEMORY_ENV}) on a machine with that memory, or check it",
            )
        if dense_dims is tensor.dims:
            _check_inline_data(tensor, elements, what, path)
    return total


def _check_inline_data(tensor: onnx.TensorProto, elements: int, what: str, path: str | Path | None) -> None:
    """An inline tensor's data must agree with its dims (external tensors are checked against their file)."""
    if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.HasField("segment"):
        return
    bits = _BITS.get(tensor.data_type)
    if tensor.HasField("raw_data"):
        held = len(tensor.raw_data)
        need = -(-elements * bits // 8) if bits is not None else held
        if held != need:
            raise ModelLoadError(
                f"{what}: raw_data holds {held:,} bytes, its dims {list(tensor.dims)} need {need:,}",
                path=path,
                hint="the file is corrupt or was written by a broken exporter: re-export the model",
            )
        return
    field, per_element = _TYPED_FIELD.get(tensor.data_type, ("", 0))
    if not field:
        return
    held = len(getattr(tensor, field))
    if held != elements * per_element:
        raise ModelLoadError(
            f"{what}: holds {held:,} values, its dims {list(tensor.dims)} need {elements * per_element:,}",
            path=path,
            hint="the file is corrupt or was written by a broken exporter: re-export the model",
        )


def _elements(dims: Sequence[int], what: str, path: str | Path | None) -> int:
    if any(d < 0 for d in dims):
        raise ModelLoadError(f"{what} has a negative dim {list(dims)}", path=path, hint="the file is corrupt")
    return math.prod(dims)


def _nbytes(elements: int, data_type: int) -> int:
    """Bytes ``elements`` take in memory (strings and unknown types counted as one byte each, a lower bound)."""
    return -(-elements * _BITS.get(data_type, 8) // 8)


def _human(nbytes: int) -> str:
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        scale = _UNITS[unit[0]]
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"


def declared_bytes(tensor: onnx.TensorProto) -> int | None:
    """The bytes a tensor's dims and type declare; None for strings, unknown types and negative dims."""
    if tensor.data_type not in _BITS or any(d < 0 for d in tensor.dims):
        return None
    return _nbytes(math.prod(tensor.dims), tensor.data_type)


def _declared_tensors(proto: onnx.ModelProto) -> Iterator[tuple[onnx.TensorProto, Sequence[int]]]:
    """Every tensor of the model with the dims it occupies once loaded: its own, or a sparse tensor's dense ones
    (ONNX Runtime densifies sparse initializers) paired with its values."""
    for graph in _model_graphs(proto):
        for tensor in graph.initializer:
            yield tensor, tensor.dims
        for sparse in graph.sparse_initializer:
            yield sparse.values, sparse.dims
            yield sparse.indices, sparse.indices.dims
        for node in graph.node:
            for attr in node.attribute:
                for tensor in [attr.t] if attr.HasField("t") else []:
                    yield tensor, tensor.dims
                for tensor in attr.tensors:
                    yield tensor, tensor.dims
                for sparse in (
                    [attr.sparse_tensor, *attr.sparse_tensors]
                    if attr.HasField("sparse_tensor")
                    else (attr.sparse_tensors)
                ):
                    yield sparse.values, sparse.dims
                    yield sparse.indices, sparse.indices.dims


def _external_tensors(proto: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    for tensor, _dims in _declared_tensors(proto):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor


def _model_graphs(proto: onnx.ModelProto) -> Iterator[onnx.GraphProto]:
    """The main graph, the bodies of model-local functions, and every sub-graph of theirs."""
    yield from all_graphs(proto.graph)
    for function in proto.functions:
        body = onnx.GraphProto()
        body.node.extend(function.node)
        yield from all_graphs(body)
