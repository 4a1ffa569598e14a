"""Uploads streamed to disk: one multipart file field, a byte cap enforced while reading, the format sniffed
from the first bytes (an unknown format is refused before the rest is read), the sha256 computed on the way.

The client's file name is kept only as a label and for its suffix (from a fixed list: some formats are told apart by
it); files are stored as ``uploads/<random id>/model<suffix>``. A ``.zip`` (an OpenVINO IR's .xml + .bin, a
SavedModel folder, an ONNX model with external data, a folder of calibration images) is unpacked with every entry
checked: no absolute path, no ``..``, no link, a cap on entries and on unpacked bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

from modelport.errors import ModelLoadError
from modelport.formats import Format, sniff_format

MODEL_SUFFIXES = (".onnx", ".tflite", ".pt", ".pth", ".pt2", ".keras", ".h5", ".pb", ".xml", ".zip")
DATA_SUFFIXES = (".npz", ".npy", ".zip")
_MAX_ZIP_ENTRIES = 10_000
_SNIFF_BYTES = 4096


class UploadRejected(Exception):
    """An upload the service refuses: ``status`` is the HTTP status, the message says why and what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class StoredUpload:
    """A finished upload: where it is (a file, or the unpacked folder's model), its format, size and sha256."""

    path: Path
    filename: str
    format: str
    size: int
    sha256: str


async def receive(
    stream: AsyncIterator[bytes], content_type: str, folder: Path, *, kind: str, max_bytes: int
) -> StoredUpload:
    """Stream a multipart request's ``file`` field into ``folder`` (created; removed again on any failure)."""
    mime, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if mime != b"multipart/form-data" or not boundary:
        raise UploadRejected(415, "send the file as multipart/form-data in the field 'file'")
    folder.mkdir(parents=True)
    try:
        return await _receive(stream, boundary, folder, kind=kind, max_bytes=max_bytes)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


async def _receive(
    stream: AsyncIterator[bytes], boundary: bytes, folder: Path, *, kind: str, max_bytes: int
) -> StoredUpload:
    part = _Part(folder, kind, max_bytes)
    parser = MultipartParser(
        boundary,
        callbacks={
            "on_header_field": part.header_field,
            "on_header_value": part.header_value,
            "on_header_end": part.header_end,
            "on_headers_finished": part.headers_finished,
            "on_part_data": part.data,
            "on_part_end": part.end,
        },
    )
    async for chunk in stream:
        parser.write(chunk)
        if part.done:
            break
    if part.file is not None:
        part.file.close()
    if part.error is not None:
        raise part.error
    if not part.done or part.path is None:
        raise UploadRejected(400, "no complete file in the form field 'file'")
    suffix = part.path.suffix
    if suffix == ".zip":
        return _unpack(part, folder, kind=kind, max_bytes=max_bytes)
    fmt = _format(part.path, kind)
    return StoredUpload(part.path, part.filename, fmt, part.size, part.sha.hexdigest())


class _Part:
    """Callbacks of the multipart parser for one request: keeps the ``file`` field, refuses everything odd."""

    def __init__(self, folder: Path, kind: str, max_bytes: int) -> None:
        self.folder, self.kind, self.max_bytes = folder, kind, max_bytes
        self.headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self.file: BinaryIO | None = None
        self.path: Path | None = None
        self.filename = ""
        self.size = 0
        self.sha = hashlib.sha256()
        self.sniffed = False
        self.done = False
        self.error: UploadRejected | None = None
        self._skip = False

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def header_end(self) -> None:
        self.headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def headers_finished(self) -> None:
        _, params = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.headers = {}
        if params.get(b"name") != b"file" or self.path is not None:
            self._skip = True  # other fields (and a second file) are ignored
            return
        self._skip = False
        self.filename = params.get(b"filename", b"").decode("utf-8", "replace")[-200:] or "upload"
        suffix = PurePosixPath(self.filename.replace("\\", "/")).suffix.lower()
        allowed = MODEL_SUFFIXES if self.kind == "model" else DATA_SUFFIXES
        if self.kind == "data" and suffix not in allowed:
            self._fail(415, f"data must be {', '.join(allowed)}; got {self.filename!r}")
            return
        self.path = self.folder / (
            ("model" if self.kind == "model" else "data") + (suffix if suffix in allowed else "")
        )
        self.file = self.path.open("wb")

    def data(self, data: bytes, start: int, end: int) -> None:
        if self._skip or self.error is not None or self.file is None:
            return
        chunk = data[start:end]
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self._fail(413, f"the upload is larger than the limit of {self.max_bytes // 2**20} MiB (--max-upload-mb)")
            return
        self.sha.update(chunk)
        self.file.write(chunk)
        if not self.sniffed and self.size >= _SNIFF_BYTES and self.kind == "model" and self.path is not None:
            self.sniffed = True
            self.file.flush()
            if self.path.suffix != ".zip":
                try:
                    _format(self.path, self.kind)
                except UploadRejected as exc:
                    self.error = exc
                    self.done = True

    def end(self) -> None:
        if not self._skip and self.path is not None and self.error is None:
            self.done = True

    def _fail(self, status: int, message: str) -> None:
        self.error = UploadRejected(status, message)
        self.done = True


def _format(path: Path, kind: str) -> str:
    if kind == "data":
        return path.suffix.lstrip(".")
    try:
        fmt = sniff_format(path)
    except ModelLoadError as exc:
        raise UploadRejected(415, f"not a model format modelport reads: {exc.message}") from exc
    if fmt is Format.TENSORRT:
        raise UploadRejected(415, "TensorRT engines are build outputs, not sources: upload the ONNX model")
    return fmt.value


def _unpack(part: _Part, folder: Path, *, kind: str, max_bytes: int) -> StoredUpload:
    assert part.path is not None
    dest = folder / ("model" if kind == "model" else "data")
    try:
        with zipfile.ZipFile(part.path) as archive:
            extract_safely(archive, dest, max_bytes=max_bytes)
    except zipfile.BadZipFile as exc:
        raise UploadRejected(415, f"not a readable zip archive: {exc}") from exc
    part.path.unlink()
    if kind == "data":
        return StoredUpload(dest, part.filename, "folder", part.size, part.sha.hexdigest())
    model = find_model(dest)
    return StoredUpload(model, part.filename, _format(model, kind), part.size, part.sha.hexdigest())


def extract_safely(archive: zipfile.ZipFile, dest: Path, *, max_bytes: int) -> None:
    """Unpack a zip into ``dest`` refusing absolute paths, ``..``, links, too many entries or too many bytes."""
    entries = archive.infolist()
    if len(entries) > _MAX_ZIP_ENTRIES:
        raise UploadRejected(413, f"the archive holds {len(entries)} entries (at most {_MAX_ZIP_ENTRIES})")
    total = 0
    dest.mkdir()
    root = dest.resolve()
    for info in entries:
        name = PurePosixPath(info.filename.replace("\\", "/"))
        mode = info.external_attr >> 16
        if name.is_absolute() or ".." in name.parts or (mode and stat.S_ISLNK(mode)):
            raise UploadRejected(400, f"the archive entry {info.filename!r} would leave the upload's folder")
        total += info.file_size
        if total > max_bytes:
            raise UploadRejected(413, f"the archive unpacks to more than {max_bytes // 2**20} MiB (--max-upload-mb)")
        target = (root / name).resolve()
        if root not in target.parents and target != root:
            raise UploadRejected(400, f"the archive entry {info.filename!r} would leave the upload's folder")
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as src, target.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.chmod(target, 0o644)


def find_model(folder: Path) -> Path:
    """The model in an unpacked archive: a SavedModel folder, else the one .xml / .onnx / .tflite … file."""
    saved = [p.parent for p in folder.rglob("saved_model.pb")]
    if len(saved) == 1:
        return saved[0]
    candidates = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES[:-1]]
    if len(candidates) != 1:
        names = ", ".join(sorted(p.name for p in candidates)[:5]) or "none"
        raise UploadRejected(
            415,
            f"the archive must hold one model (a SavedModel folder, or one .xml/.onnx/.tflite … file); found {names}",
        )
    return candidates[0]
