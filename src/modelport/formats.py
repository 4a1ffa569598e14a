"""Model formats, numeric precisions, and content-based format sniffing."""

from __future__ import annotations

import enum
from pathlib import Path

from modelport.errors import InvalidInputError, ModelLoadError


class Format(str, enum.Enum):
    """A model format modelport can read or write."""

    ONNX = "onnx"
    OPENVINO_IR = "openvino"
    TFLITE = "tflite"
    SAVED_MODEL = "saved_model"
    TF_GRAPHDEF = "tf_graphdef"
    KERAS = "keras"
    TORCH = "torch"
    TENSORRT = "tensorrt"

    @classmethod
    def parse(cls, text: str) -> Format:
        """A format from its value or a format alias (``ir``, ``pb``, ``saved-model`` …)."""
        key = text.strip().lower()
        if key in FORMAT_ALIASES:
            return FORMAT_ALIASES[key]
        try:
            return cls(key)
        except ValueError:
            valid = ", ".join(f.value for f in cls)
            raise InvalidInputError(f"unknown format {text!r}", hint=f"valid: {valid}") from None


class Precision(str, enum.Enum):
    """Numeric precision of a target (weights and/or execution)."""

    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"

    @classmethod
    def parse(cls, text: str) -> Precision:
        try:
            return cls(text.strip().lower())
        except ValueError:
            valid = ", ".join(p.value for p in cls)
            raise InvalidInputError(f"unknown precision {text!r}", hint=f"valid: {valid}") from None


#: other names of formats (a runtime's name also names its artifact format: see ``modelport.conversion.parse_format``).
FORMAT_ALIASES: dict[str, Format] = {
    "ir": Format.OPENVINO_IR,
    "openvino_ir": Format.OPENVINO_IR,
    "savedmodel": Format.SAVED_MODEL,
    "saved-model": Format.SAVED_MODEL,
    "sm": Format.SAVED_MODEL,
    "pb": Format.TF_GRAPHDEF,
    "graphdef": Format.TF_GRAPHDEF,
    "engine": Format.TENSORRT,
}

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _looks_like_onnx(head: bytes) -> bool:
    """ModelProto starts with a field tag: ir_version (0x08), producer (0x12/0x1a), graph (0x3a) …"""
    return len(head) > 2 and head[0] in (0x08, 0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A, 0x42, 0x72)


def sniff_format(path: str | Path) -> Format:
    """Tell a model file's format from its content (and, where content is ambiguous, its name).

    Args:
        path: a file or directory.

    Returns:
        The detected :class:`Format`.

    Raises:
        ModelLoadError: the path does not exist or is not a model modelport knows.
    """
    p = Path(path)
    if not p.exists():
        raise ModelLoadError("file not found", path=p, hint="check the path")
    if p.is_dir():
        if (p / "saved_model.pb").exists() or (p / "saved_model.pbtxt").exists():
            return Format.SAVED_MODEL
        raise ModelLoadError("directory is not a SavedModel (no saved_model.pb)", path=p)
    with p.open("rb") as f:
        head = f.read(64)
    if not head:
        raise ModelLoadError("file is empty", path=p, hint="pass a model file")
    suffix = p.suffix.lower()
    if head[4:8] == b"TFL3":
        return Format.TFLITE
    if head.lstrip().startswith(b"<?xml") or head.lstrip().startswith(b"<net"):
        if b"<net" in p.read_bytes()[:4096]:
            return Format.OPENVINO_IR
        raise ModelLoadError("XML file is not an OpenVINO IR (no <net> element)", path=p)
    if head.startswith(_HDF5_MAGIC):
        return Format.KERAS
    if head.startswith(_ZIP_MAGIC):
        return Format.KERAS if suffix == ".keras" else Format.TORCH
    if suffix in (".pt", ".pth", ".pt2"):
        return Format.TORCH
    if suffix in (".engine", ".plan", ".trt"):
        return Format.TENSORRT
    if suffix == ".pb":
        return Format.TF_GRAPHDEF
    if _looks_like_onnx(head):
        return Format.ONNX
    raise ModelLoadError(
        "not a model file modelport recognises",
        path=p,
        hint="expected ONNX, OpenVINO IR (.xml), TFLite, SavedModel, Keras, TorchScript or a .pb graph",
    )
