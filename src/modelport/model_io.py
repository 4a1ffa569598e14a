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
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import onnx_ir as ir

from modelport.errors import ModelLoadError, ModelportError, first_line
from modelport.formats import Format, sniff_format
from modelport.model_guard import all_graphs, check_model_file, declared_bytes, read_structure

log = logging.getLogger(__name__)

#: Protobuf cannot serialize a message over 2 GiB; larger models must keep tensors in external data.
PROTOBUF_LIMIT = 2**31 - 1
#: Tensors at least this large go to the external data file when external data is used.
EXTERNAL_DATA_THRESHOLD = 1024


#: signals held back while a commit or a clean-up runs (a Ctrl-C there would leave a half-moved artifact or a
#: temporary folder behind); the handler runs right after
_DEFERRED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Run the block with Python's handlers of SIGINT/SIGTERM/SIGHUP postponed to its end (main thread only).

    A signal that arrives inside is recorded and its original handler (``KeyboardInterrupt``, the CLI's termination)
    called once the block is done. Signals left at their default or ignored action are not touched.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    saved: dict[int, Any] = {}
    for sig in _DEFERRED_SIGNALS:
        handler = signal.getsignal(sig)
        if callable(handler):
            saved[sig] = handler
            signal.signal(sig, lambda signum, _frame: arrived.append(signum))
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if arrived:
            saved[arrived[0]](arrived[0], None)


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success rename it onto ``dest``, on failure delete it.

    Works for a file or a directory written at the temporary path. Creating the temporary folder, the rename and the
    clean-up hold back Ctrl-C/SIGTERM (:func:`_signals_deferred`), so an interrupted run leaves ``dest`` old or new
    and no temporary folder.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir: Path | None = None
    try:
        with _signals_deferred():
            tmp_dir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
        tmp = tmp_dir / dest.name
        yield tmp
        if not tmp.exists():
            raise ModelportError(f"nothing was written for {dest}")
        with _signals_deferred():
            _replace(tmp, dest, tmp_dir)
    finally:
        if tmp_dir is not None:
            with _signals_deferred():
                shutil.rmtree(tmp_dir, ignore_errors=True)


def _replace(new: Path, dest: Path, aside_dir: Path) -> None:
    """Rename ``new`` onto ``dest``; an existing directory ``dest`` is first moved into ``aside_dir`` (and moved back
    if the rename fails), so there is no moment without one or the other."""
    if dest.is_dir() and not dest.is_symlink():
        aside = aside_dir / f".old.{dest.name}"
        os.replace(dest, aside)
        try:
            os.replace(new, dest)
        except OSError:
            os.replace(aside, dest)
            raise
    else:
        os.replace(new, dest)


@contextlib.contextmanager
def atomic_files(dest_dir: str | Path) -> Iterator[Path]:
    """Yield a staging directory; on success move every file in it into ``dest_dir`` (each by rename).

    For artifacts made of several files (OpenVINO's .xml + .bin, ONNX + external data). The moves run with
    Ctrl-C/SIGTERM held back (:func:`_signals_deferred`): an interrupted run leaves all old files or all new ones.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    staging: Path | None = None
    try:
        with _signals_deferred():
            staging = Path(tempfile.mkdtemp(prefix=".staging.", suffix=".tmp", dir=dest_dir))
        yield staging
        with _signals_deferred():
            for item in sorted(staging.iterdir()):
                _replace(item, dest_dir / item.name, staging)
    finally:
        if staging is not None:
            with _signals_deferred():
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


def load_proto(
    path: str | Path, *, check: bool = True, load_external_data: bool = True, max_bytes: int | None = None
) -> onnx.ModelProto:
    """Read an ONNX file into a ModelProto, with clear errors for every way it can be wrong.

    The file is parsed without its external data first and :func:`check_model_file` vets every tensor (external
    locations inside the model's folder, files long enough, declared sizes within ``max_bytes``) before any
    external byte is read.

    Args:
        path: the .onnx file (external data is read from beside it).
        check: run ``onnx.checker`` (full check, with external data by path).
        load_external_data: load external tensors into memory.
        max_bytes: the most tensor data the model may declare (default :func:`memory_limit`).

    Raises:
        ModelLoadError: missing, not ONNX, truncated, unsafe or impossible external data, tensors larger than
            the limit or disagreeing with their dims, or failing the checker.
    """
    p = Path(path)
    fmt = sniff_format(p)
    if fmt is not Format.ONNX:
        raise ModelLoadError(
            f"expected an ONNX model, found {fmt.value}",
            path=p,
            hint="convert it first with `modelport convert`",
        )
    proto = read_structure(p)
    if not proto.HasField("graph") or (not proto.graph.node and not proto.graph.output):
        raise ModelLoadError("file holds no ONNX graph (truncated or not a model)", path=p)
    check_model_file(p, proto, max_bytes=max_bytes)
    if load_external_data:
        try:
            onnx.external_data_helper.load_external_data_for_model(proto, str(p.parent))
        except (OSError, ValueError, onnx.onnx_cpp2py_export.checker.ValidationError) as exc:
            raise ModelLoadError(f"cannot read the model's external data: {first_line(exc)}", path=p) from exc
    if check:
        check_proto(proto, p)
    return proto


def check_proto(proto: onnx.ModelProto, path: str | Path | None = None) -> None:
    """Run ``onnx.checker`` on a model; on failure raise ModelLoadError with the checker's first line.

    A model with external tensors not loaded, or over protobuf's 2 GiB, is checked by ``path`` when given; one over
    2 GiB without a path through a copy of its structure whose large initializers are stand-ins (the checker cannot
    serialize it, and copying the weights would double the memory).
    """
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    over = _over_protobuf_limit(proto)
    try:
        if path is not None and (external or over):
            onnx.checker.check_model(str(path))  # external files are found beside the file, not the process
        else:
            onnx.checker.check_model(_skeleton(proto) if over else proto)
    except (onnx.checker.ValidationError, ValueError) as exc:
        first = first_line(exc)
        raise ModelLoadError(
            f"model fails onnx.checker: {first}", path=path, hint="fix the exporter or re-export the model"
        ) from exc


def _skeleton(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``proto`` whose main-graph initializers of at least 1 MiB are empty tensors of the same name and
    type, so that the copy costs the structure, not the weights (the checker does not compare an initializer's
    dims with the graph's)."""
    skeleton = onnx.ModelProto()
    _copy_fields(proto, skeleton, skip="graph")
    _copy_fields(proto.graph, skeleton.graph, skip="initializer")
    for tensor in proto.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL or not tensor.HasField("raw_data"):
            skeleton.graph.initializer.add().CopyFrom(tensor)
            continue
        stand_in = skeleton.graph.initializer.add()
        if _inline_bytes(tensor) < 2**20:
            stand_in.CopyFrom(tensor)
            continue
        stand_in.name, stand_in.data_type = tensor.name, tensor.data_type
        stand_in.dims.append(0)  # an empty tensor of the same name and type: nothing for the checker to read
    return skeleton


def _copy_fields(src: Any, dst: Any, *, skip: str) -> None:
    """Copy every set field of protobuf message ``src`` into ``dst`` except ``skip``."""
    for field, value in src.ListFields():
        if field.name == skip:
            continue
        target = getattr(dst, field.name)
        if hasattr(target, "extend"):  # a repeated field
            target.extend(value)
        elif hasattr(target, "CopyFrom"):  # a message
            target.CopyFrom(value)
        else:
            setattr(dst, field.name, value)


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
    use_external = external_data if external_data is not None else _needs_external_data(model)
    if not use_external:
        with atomic_path(path) as tmp:
            tmp.write_bytes(to_proto(model).SerializeToString())
        return path
    with atomic_files(path.parent) as staging:
        _save_external(model, staging / path.name, path.name + ".data", size_threshold)
    return path


def _save_external(model: ir.Model | onnx.ModelProto, dest: Path, data_name: str, size_threshold: int) -> None:
    """Write ``dest`` and its external data file ``data_name`` beside it, tensor by tensor, without first copying
    the model's weights (onnx-ir's writer; large tensors aligned to 64 KiB so that runtimes can map them)."""
    if isinstance(model, onnx.ModelProto) and any(g.sparse_initializer for g in all_graphs(model.graph)):
        proto = onnx.ModelProto()  # onnx-ir keeps no sparse initializers; onnx.save_model empties what it moves out
        proto.CopyFrom(model)
        onnx.save_model(
            proto,
            str(dest),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_name,
            size_threshold=size_threshold,
        )
        return
    work = model if isinstance(model, ir.Model) else ir.serde.deserialize_model(model)
    # onnx-ir moves tensors strictly larger than its threshold; ours moves tensors of at least ``size_threshold``
    ir.save(work, dest, external_data=data_name, size_threshold_bytes=max(0, size_threshold - 1), alignment=2**16)


def _needs_external_data(model: ir.Model | onnx.ModelProto) -> bool:
    if isinstance(model, ir.Model):
        total = sum(
            value.const_value.nbytes
            for graph in model.graphs()
            for value in graph.initializers.values()
            if value.const_value is not None
        )
        return total > PROTOBUF_LIMIT - _STRUCTURE_ALLOWANCE
    return _over_protobuf_limit(model)


#: room left for the graph's structure when deciding whether a model's weights still fit in one protobuf
_STRUCTURE_ALLOWANCE = 64 * 2**20


def _over_protobuf_limit(proto: onnx.ModelProto) -> bool:
    """Whether the main graph's inline initializers leave no room under protobuf's 2 GiB (``ByteSize`` cannot
    tell: it fails on such a message)."""
    return sum(_inline_bytes(t) for t in proto.graph.initializer) > PROTOBUF_LIMIT - _STRUCTURE_ALLOWANCE


#: bytes one value of each typed field of TensorProto takes when serialized (at most)
_FIELD_BYTES = {"float_data": 4, "int32_data": 5, "int64_data": 10, "double_data": 8, "uint64_data": 10}


def _inline_bytes(tensor: onnx.TensorProto) -> int:
    """The bytes a tensor holds inline, from its dims (reading ``raw_data``'s length would copy it: upb hands out a
    new bytes object); typed fields by their value count. A raw_data disagreeing with its dims is refused at load."""
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return 0
    if tensor.HasField("raw_data"):
        return declared_bytes(tensor) or 0
    return sum(len(getattr(tensor, field)) * size for field, size in _FIELD_BYTES.items())


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


def serialized_size(proto: onnx.ModelProto) -> int:
    """Bytes of a model serialized with its tensors inline; also for a model over protobuf's 2 GiB, where
    ``ByteSize`` fails (then its structure's size plus its large initializers' bytes)."""
    if not _over_protobuf_limit(proto):
        return int(proto.ByteSize())
    inline = sum(size for size in map(_inline_bytes, proto.graph.initializer) if size >= 2**20)
    return int(_skeleton(proto).ByteSize()) + inline
