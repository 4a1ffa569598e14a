"""TFLite flatbuffer ↔ JSON, so a TFLite model can be edited as text (tensor names, shapes, quantization …).

The model is read into the flatbuffer *object API* of the TFLite schema that ships in ``ai-edge-litert``
(``ModelT`` and friends) and written as JSON: each table becomes an object with a ``"__type__"`` key naming
its schema class (so unions such as ``builtinOptions`` come back as the right type), strings stay strings,
numeric vectors become lists, and buffer contents (the weights) become base64 strings under ``"data"``
(a float list per weight would make the file ~10× larger). Going back packs the same objects with
``flatbuffers``; the result is the same model (the byte layout may differ from the converter's).

Limits: models that keep weights outside the flatbuffer (> 2 GB, ``offset`` buffers) are refused.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from modelport.errors import InvalidInputError, ModelLoadError
from modelport.formats import Format, sniff_format
from modelport.model_io import write_bytes, write_text

_TYPE = "__type__"
FORMAT_TAG = "modelport-tflite-json/1"


def _schema() -> Any:
    from modelport.backends.litert import import_litert_interpreter

    import_litert_interpreter()
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _to_jsonable(obj: Any, key: str = "") -> Any:
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="surrogateescape")
    if isinstance(obj, np.ndarray):
        if key == "data":
            return {"base64": base64.b64encode(obj.astype(np.uint8).tobytes()).decode("ascii")}
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, list | tuple):
        if key == "data":
            return {"base64": base64.b64encode(bytes(obj)).decode("ascii")}
        return [_to_jsonable(v) for v in obj]
    if hasattr(obj, "__dict__"):
        return {_TYPE: type(obj).__name__, **{k: _to_jsonable(v, k) for k, v in vars(obj).items()}}
    raise InvalidInputError(f"cannot write a {type(obj).__name__} as JSON")


_VECTOR = re.compile(r"def (\w+)AsNumpy\(self\):.*?GetVectorAsNumpy\(flatbuffers\.number_types\.(\w+)Flags", re.S)
_CLASS = re.compile(r"^class (\w+)\(object\):", re.M)


@functools.lru_cache(maxsize=1)
def _vector_dtypes() -> dict[tuple[str, str], np.dtype]:
    """``(object-API class, field) → element dtype`` of every numeric vector, read from the generated schema."""
    import inspect

    source = inspect.getsource(_schema())
    starts = [(m.start(), m.group(1)) for m in _CLASS.finditer(source)]
    table: dict[tuple[str, str], np.dtype] = {}
    for m in _VECTOR.finditer(source):
        cls = max((s for s in starts if s[0] < m.start()), default=(0, ""))[1]
        field = m.group(1)[0].lower() + m.group(1)[1:]
        table[(f"{cls}T", field)] = np.dtype(m.group(2).lower())
    return table


def _from_jsonable(schema: Any, value: Any, owner: str = "", key: str = "") -> Any:
    if isinstance(value, dict) and _TYPE in value:
        cls = getattr(schema, value[_TYPE], None)
        if cls is None or not isinstance(cls, type):
            raise InvalidInputError(f"unknown TFLite schema type {value[_TYPE]!r} in the JSON")
        obj = cls()
        for k, v in value.items():
            if k != _TYPE:
                setattr(obj, k, _from_jsonable(schema, v, value[_TYPE], k))
        return obj
    if isinstance(value, dict) and set(value) == {"base64"}:
        return np.frombuffer(base64.b64decode(value["base64"]), dtype=np.uint8).copy()
    if isinstance(value, list):
        dtype = _vector_dtypes().get((owner, key))
        if dtype is not None:
            return np.asarray(value, dtype=dtype)
        return [_from_jsonable(schema, v) for v in value]
    return value


def tflite_to_json(src: str | Path, dst: str | Path | None = None) -> str:
    """The JSON text of a .tflite file (written atomically to ``dst`` when given).

    Raises:
        ModelLoadError: not a TFLite file, or one with weights outside the flatbuffer.
    """
    src = Path(src)
    if sniff_format(src) is not Format.TFLITE:
        raise ModelLoadError("not a TFLite flatbuffer", path=src)
    from ai_edge_litert.tools import flatbuffer_utils

    _schema()
    model = flatbuffer_utils.read_model(str(src))
    if any(getattr(b, "offset", 0) > 1 for b in model.buffers or []):
        raise ModelLoadError("weights stored outside the flatbuffer (offset buffers) are not supported", path=src)
    text = json.dumps({"format": FORMAT_TAG, "model": _to_jsonable(model)}, indent=1)
    if dst is not None:
        write_text(dst, text)
    return text


def json_to_tflite(src: str | Path, dst: str | Path) -> Path:
    """Pack the JSON written by :func:`tflite_to_json` (edited or not) into the .tflite file ``dst``.

    Raises:
        InvalidInputError: not such a JSON file, or an unknown schema type in it.
    """
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise InvalidInputError("refusing to overwrite the input", path=dst)
    try:
        doc = json.loads(src.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"not a TFLite JSON written by modelport ({exc})", path=src) from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_TAG or not isinstance(doc.get("model"), dict):
        raise InvalidInputError(
            "not a TFLite JSON written by modelport",
            path=src,
            hint="write one with `modelport edit tflite-json M.tflite`",
        )
    schema = _schema()
    from ai_edge_litert.tools import flatbuffer_utils

    model = _from_jsonable(schema, doc["model"])
    if not isinstance(model, schema.ModelT):
        raise InvalidInputError("the JSON's model is not a TFLite ModelT", path=src)
    try:
        data = flatbuffer_utils.convert_object_to_bytearray(model)
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidInputError(f"the edited model does not pack: {exc}", path=src) from exc
    return write_bytes(dst, bytes(data))
