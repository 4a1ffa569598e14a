"""Class names by index from a file: the ``--labels`` of ``classify`` and the ``--classes`` of ``detect``."""

from __future__ import annotations

import json
from pathlib import Path

from modelport.errors import AppError


def read_labels(path: Path) -> tuple[str, ...]:
    """Class names by index from a labels file.

    Accepted: one label per line (trailing blank lines ignored); a JSON list of names; a JSON object mapping
    class indices to a name or to ``[id, name]`` (as ``imagenet_class_index.json``).

    Raises:
        AppError: the file cannot be read, holds no label, or its JSON indices are not 0..N-1.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AppError(f"cannot read the labels file {path}: {exc}", path=path) from exc
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        labels = _json_labels(stripped, path)
    else:
        labels = tuple(line.strip() for line in text.rstrip().splitlines())
    if not labels or not any(labels):
        raise AppError(f"the labels file {path} holds no label", hint="write one label per line", path=path)
    return labels


def _json_labels(text: str, path: Path) -> tuple[str, ...]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AppError(f"the labels file {path} is not valid JSON: {exc}", path=path) from exc
    if isinstance(data, list):
        return tuple(str(v) for v in data)
    try:
        items = sorted((int(k), v) for k, v in data.items())
    except ValueError as exc:
        raise AppError(f"the labels file {path} maps keys that are not class indices", path=path) from exc
    if [k for k, _ in items] != list(range(len(items))):
        raise AppError(f"the labels file {path} must map the class indices 0..{len(items) - 1}", path=path)
    return tuple(str(v[-1]) if isinstance(v, list) and v else str(v) for _, v in items)
