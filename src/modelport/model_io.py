"""Loading and saving ONNX models, atomically.

onnx-ir is the in-memory representation; protobuf appears only here, at the edges. Every write goes to a
temporary file in the destination directory and is renamed into place, so a failure never leaves a partial
file behind, and a source file is never written to.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnx
import onnx_ir as ir
from google.protobuf.message import DecodeError

from modelport.errors import ModelLoadError, ModelportError, first_line
from modelport.formats import Format, sniff_format

log = logging.getLogger(__name__)

#: Protobuf cannot serialize a message over 2 GiB; larger models must keep tensors in external data.
PROTOBUF_LIMIT = 2**31 - 1
#: Tensors at least this large go to the external data file when external data is used.
EXTERNAL_DATA_THRESHOLD = 1024


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success rename it onto ``dest``, on failure delete it.

    Works for a file or a directory written at the temporary path.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    tmp = tmp_dir / dest.name
    try:
        yield tmp
        if not tmp.exists():
            raise ModelportError(f"nothing was written for {dest}")
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


@contextlib.contextmanager
def atomic_files(dest_dir: str | Path) -> Iterator[Path]:
    """Yield a staging directory; on success move every file in it into ``dest_dir`` (each by rename).

    For artifacts made of several files (OpenVINO's .xml + .bin, ONNX + external data).
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging.", suffix=".tmp", dir=dest_dir))
    try:
        yield staging
        for item in sorted(staging.iterdir()):
            target = dest_dir / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def load_proto(path: str | Path, *, check: bool = True, load_external_data: bool = True) -> onnx.ModelProto:
    """Read an ONNX file into a ModelProto, with clear errors for every way it can be wrong.

    Args:
        path: the .onnx file (external data is read from beside it).
        check: run ``onnx.checker`` (full check, with external data by path).
        load_external_data: load external tensors into memory.

    Raises:
        ModelLoadError: missing, not ONNX, truncated, or failing the checker.
    """
    p = Path(path)
    fmt = sniff_format(p)
    if fmt is not Format.ONNX:
        raise ModelLoadError(
            f"expected an ONNX model, found {fmt.value}",
            path=p,
            hint="convert it first with `modelport convert`",
        )
    try:
        proto = onnx.load(str(p), load_external_data=load_external_data)
    except DecodeError as exc:
        raise ModelLoadError(
            "file is not a valid ONNX protobuf (truncated or corrupt)", path=p, hint="re-export the model"
        ) from exc
    except (OSError, ValueError, onnx.onnx_cpp2py_export.checker.ValidationError) as exc:
        raise ModelLoadError(f"cannot read ONNX model: {exc}", path=p) from exc
    if not proto.HasField("graph") or (not proto.graph.node and not proto.graph.output):
        raise ModelLoadError("file holds no ONNX graph (truncated or not a model)", path=p)
    if check:
        check_proto(proto, p)
    return proto


def check_proto(proto: onnx.ModelProto, path: str | Path | None = None) -> None:
    """Run ``onnx.checker`` on a model; on failure raise ModelLoadError with the checker's first line."""
    try:
        if path is not None and proto.ByteSize() > PROTOBUF_LIMIT:
            onnx.checker.check_model(str(path))
        else:
            onnx.checker.check_model(proto)
    except (onnx.checker.ValidationError, ValueError) as exc:
        first = first_line(exc)
        raise ModelLoadError(
            f"model fails onnx.checker: {first}", path=path, hint="fix the exporter or re-export the model"
        ) from exc


def load_model(path: str | Path, *, check: bool = True) -> ir.Model:
    """Load an ONNX model into onnx-ir (external data loaded into memory)."""
    proto = load_proto(path, check=check)
    return ir.serde.deserialize_model(proto)


def to_proto(model: ir.Model | onnx.ModelProto) -> onnx.ModelProto:
    """Serialize an onnx-ir model (a ModelProto passes through)."""
    if isinstance(model, onnx.ModelProto):
        return model
    return ir.serde.serialize_model(model)


def save_model(
    model: ir.Model | onnx.ModelProto,
    path: str | Path,
    *,
    external_data: bool | None = None,
    source: str | Path | None = None,
    size_threshold: int = EXTERNAL_DATA_THRESHOLD,
) -> Path:
    """Save a model atomically, with external data when asked or when it would not fit in protobuf.

    Args:
        model: onnx-ir model or ModelProto.
        path: destination .onnx path.
        external_data: True/False to force; None decides by size (> 2 GiB → external).
        source: the model's source file; saving onto it is refused, since inputs are never modified.
        size_threshold: with external data, tensors of at least this many bytes go to ``<path>.data``.

    Returns:
        The path written.
    """
    path = Path(path)
    if source is not None and Path(source).resolve() == path.resolve():
        raise ModelportError("refusing to overwrite the input model", path=path, hint="choose another output")
    proto = to_proto(model)
    use_external = external_data if external_data is not None else _needs_external_data(proto)
    if not use_external:
        with atomic_path(path) as tmp:
            tmp.write_bytes(proto.SerializeToString())
        return path
    data_name = path.name + ".data"
    if isinstance(model, onnx.ModelProto):  # onnx.save_model empties the tensors it moves out: use a copy
        proto = onnx.ModelProto()
        proto.CopyFrom(model)
    with atomic_files(path.parent) as staging:
        onnx.save_model(
            proto,
            str(staging / path.name),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_name,
            size_threshold=size_threshold,
        )
    return path


def _needs_external_data(proto: onnx.ModelProto) -> bool:
    total = sum(len(t.raw_data) for t in proto.graph.initializer)
    return total > PROTOBUF_LIMIT - 64 * 2**20


def external_data_files(path: str | Path) -> list[str]:
    """Names of the external data files an ONNX model refers to (without loading them)."""
    proto = onnx.load(str(path), load_external_data=False)
    names: set[str] = set()
    for tensor in _all_tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            for entry in tensor.external_data:
                if entry.key == "location":
                    names.add(entry.value)
    return sorted(names)


def _all_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            for sub in [attr.g, *attr.graphs] if attr.HasField("g") else attr.graphs:
                yield from _all_tensors(sub)


#: node names listed in an error before "… (N in all)"
_LISTED_NODES = 8


@dataclasses.dataclass(frozen=True)
class OpUse:
    """Where a model uses one op type: the nodes that call it, and the tensors that cut the graph before them.

    Attributes:
        op: ``domain::Type`` (just ``Type`` for the default ONNX domain).
        nodes: the names of the nodes using it, main graph first, then subgraphs (an unnamed node: its first
            output's name).
        cut_before: main-graph tensors feeding those nodes that other nodes compute without the op: passing them as
            the model's outputs (``--outputs``) keeps everything before the op and nothing that needs it.
    """

    op: str
    nodes: tuple[str, ...]
    cut_before: tuple[str, ...]

    def describe(self) -> str:
        """``op D::T (nodes a, b)`` with at most a few names listed."""
        shown = ", ".join(self.nodes[:_LISTED_NODES])
        if len(self.nodes) > _LISTED_NODES:
            shown += f", … ({len(self.nodes)} in all)"
        label = "node" if len(self.nodes) == 1 else "nodes"
        return f"op {self.op} ({label} {shown})" if self.nodes else f"op {self.op}"

    def hint(self) -> str:
        """What the user can do: cut the model before the op, or replace it."""
        if self.cut_before:
            return f"convert the part before it with --outputs {','.join(self.cut_before)}, or replace the op"
        return "replace the op with standard ONNX ops (it reads the model's inputs directly: no cut leaves it out)"


def op_use(proto: onnx.ModelProto, op_type: str, domain: str | None = None) -> OpUse:
    """Find every node of ``op_type`` (in ``domain``; None: any domain) in a model and the tensors before them."""
    wanted = None if domain is None else ("" if domain == "ai.onnx" else domain)

    def matches(node: onnx.NodeProto) -> bool:
        node_domain = "" if node.domain == "ai.onnx" else node.domain
        return node.op_type == op_type and (wanted is None or node_domain == wanted)

    names: list[str] = []
    for graph in all_graphs(proto.graph):
        names += [n.name or (n.output[0] if n.output else "?") for n in graph.node if matches(n)]
    produced: set[str] = set()  # main-graph tensors computed without the op
    tainted: set[str] = set()  # main-graph tensors that need the op (in topological order)
    cut: list[str] = []
    for node in proto.graph.node:
        if matches(node):
            cut += [t for t in node.input if t in produced and t not in cut]
        if matches(node) or any(t in tainted for t in node.input):
            tainted.update(node.output)
        else:
            produced.update(node.output)
    qualified = op_type if not wanted else f"{wanted}::{op_type}"
    return OpUse(qualified, tuple(names), tuple(cut))


def default_opset(proto: onnx.ModelProto) -> int:
    """The default-domain (``ai.onnx``) opset a model imports; 0 when it imports none."""
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


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
