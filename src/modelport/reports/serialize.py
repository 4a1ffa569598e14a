"""Frozen report dataclasses ↔ JSON.

Reports are frozen dataclasses made of str/int/float/bool/None, enums, tuples, dicts and other report
dataclasses. :func:`to_jsonable` flattens one into plain JSON types; :func:`from_jsonable` rebuilds it from
the dataclass's type hints, so ``from_json(to_json(r)) == r``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def to_jsonable(obj: Any) -> Any:
    """Plain JSON-able data from a report (NaN/inf floats become strings so the JSON stays valid)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {str(k.value if isinstance(k, enum.Enum) else k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return to_jsonable(obj.item())
    return obj


def from_jsonable(cls: Any, data: Any) -> Any:
    """Rebuild an instance of type ``cls`` from :func:`to_jsonable` output."""
    if data is None:
        return None
    origin = typing.get_origin(cls)
    args = typing.get_args(cls)
    if origin in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        for candidate in non_none:
            try:
                return from_jsonable(candidate, data)
            except (TypeError, ValueError, KeyError):
                continue
        raise ValueError(f"cannot read {data!r} as {cls}")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_jsonable(args[0], v) for v in data)
        if args:
            return tuple(from_jsonable(a, v) for a, v in zip(args, data, strict=True))
        return tuple(data)
    if origin is list:
        return [from_jsonable(args[0], v) for v in data] if args else list(data)
    if origin is dict:
        if not args:
            return dict(data)
        key = args[0] if isinstance(args[0], type) and issubclass(args[0], enum.Enum) else str
        return {key(k): from_jsonable(args[1], v) for k, v in data.items()}
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        kwargs = {f.name: from_jsonable(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data}
        return cls(**kwargs)
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        return cls(data)
    if cls is float:
        if isinstance(data, str):
            return float(data)
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise TypeError(f"expected a number, got {data!r}")
        return float(data)
    if cls is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise TypeError(f"expected an integer, got {data!r}")
        return data
    if cls is str:
        if not isinstance(data, str):
            raise TypeError(f"expected a string, got {data!r}")
        return data
    if cls is bool:
        if not isinstance(data, bool):
            raise TypeError(f"expected a boolean, got {data!r}")
        return data
    return data


def to_json(obj: Any, indent: int | None = 2) -> str:
    """JSON text of a report."""
    return json.dumps(to_jsonable(obj), indent=indent, sort_keys=False)


def from_json(cls: type[T], text: str) -> T:
    """Rebuild a report of type ``cls`` from JSON text."""
    result: T = from_jsonable(cls, json.loads(text))
    return result


class JsonReport:
    """Mixin giving a frozen report dataclass ``to_json`` / ``from_json`` / ``to_dict``."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = to_jsonable(self)
        return data

    def to_json(self, indent: int | None = 2) -> str:
        return to_json(self, indent)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return from_json(cls, text)
