"""Finding, converting and loading Whisper models for faster-whisper (CTranslate2).

A model is given as one of:

- a CTranslate2 Whisper directory (``model.bin``, ``config.json``, ``tokenizer.json``, vocabulary);
- a Transformers Whisper checkpoint directory (``config.json`` with ``model_type: whisper`` and weights),
  converted once with ``ctranslate2.converters.TransformersConverter`` into a cache directory keyed by the
  checkpoint's files, and reused afterwards;
- a name (``tiny`` … ``large-v3``, ``distil-*``, ``turbo``) or a hub id (``org/name``), looked up in the
  local Hugging Face cache first, then downloaded when the hub can be reached.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelport.apps.transcribe.results import ComputeType, Device
from modelport.errors import InvalidInputError, ModelLoadError, RuntimeUnavailable, first_line, optional_import

log = logging.getLogger(__name__)

_WHISPER_EXTRA = "pip install 'modelport[whisper]'"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
#: Files copied from a Transformers checkpoint into the converted directory when present.
_COPY_FILES = ("tokenizer.json", "preprocessor_config.json")


class ModelSource(str, enum.Enum):
    """Where a resolved model came from."""

    CTRANSLATE2_DIR = "ctranslate2-dir"
    TRANSFORMERS_DIR = "transformers-dir"
    HUB = "hub"


@dataclass(frozen=True)
class ResolvedModel:
    """A CTranslate2 Whisper directory ready to load, and how it was found.

    Attributes:
        path: the CTranslate2 model directory.
        source: a local CTranslate2 directory, a converted Transformers checkpoint, or a hub model.
        given: the model as the user gave it.
    """

    path: Path
    source: ModelSource
    given: str


def import_faster_whisper() -> Any:
    """Import faster_whisper, or raise RuntimeUnavailable naming the extra to install."""
    return optional_import("faster_whisper", extra="whisper", what="faster-whisper", hint=_WHISPER_EXTRA)


def import_ctranslate2() -> Any:
    """Import ctranslate2, or raise RuntimeUnavailable naming the extra to install."""
    return optional_import("ctranslate2", extra="whisper", what="CTranslate2", hint=_WHISPER_EXTRA)


def known_model_names() -> list[str]:
    """The Whisper names faster-whisper maps to hub repositories."""
    return list(import_faster_whisper().available_models())


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/modelport/whisper-ct2`` (``~/.cache/…`` when unset), read at call time."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "modelport" / "whisper-ct2"


def resolve_model(model: str | Path, *, cache_dir: Path | None = None, offline: bool = False) -> ResolvedModel:
    """Turn a model path or name into a loadable CTranslate2 Whisper directory.

    Args:
        model: a directory (CTranslate2 or Transformers checkpoint), a Whisper name or a hub id.
        cache_dir: where converted checkpoints are kept (default :func:`default_cache_dir`).
        offline: do not contact the hub for names missing from the local cache.

    Raises:
        ModelLoadError: the path is not a Whisper model, or a name cannot be found offline.
        InvalidInputError: an unknown model name.
        RuntimeUnavailable: conversion needs transformers and torch, which are missing.
    """
    given = str(model)
    path = Path(model).expanduser()
    if path.is_dir():
        return _resolve_directory(path, given, cache_dir)
    if path.exists():
        raise ModelLoadError(
            "expected a model directory or a model name, got a file",
            path=path,
            hint="pass the directory holding model.bin and config.json",
        )
    names = known_model_names()
    if given in names or _HUB_ID.match(given):
        return ResolvedModel(_hub_model_dir(given, offline=offline), ModelSource.HUB, given)
    if os.sep in given or given.startswith((".", "~")):
        raise ModelLoadError("model directory not found", path=path, hint="check the path")
    raise InvalidInputError(
        f"unknown Whisper model {given!r}",
        hint=f"pass a model directory, a hub id (org/name), or one of: {', '.join(names)}",
    )


def _resolve_directory(path: Path, given: str, cache_dir: Path | None) -> ResolvedModel:
    if (path / "model.bin").is_file():
        if not (path / "config.json").is_file():
            raise ModelLoadError("CTranslate2 model directory has no config.json", path=path)
        return ResolvedModel(path, ModelSource.CTRANSLATE2_DIR, given)
    config = _read_json(path / "config.json")
    if config.get("model_type") == "whisper":
        out = convert_transformers_checkpoint(path, cache_dir or default_cache_dir())
        return ResolvedModel(out, ModelSource.TRANSFORMERS_DIR, given)
    what = f"model_type {config['model_type']!r}" if config.get("model_type") else "no model.bin"
    raise ModelLoadError(
        f"not a CTranslate2 Whisper model directory ({what}) nor a Transformers Whisper checkpoint",
        path=path,
        hint="pass a directory with model.bin + config.json (ct2-transformers-converter output), "
        "or a Whisper checkpoint saved with save_pretrained",
    )


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"config.json is not valid JSON: {exc}", path=path) from exc
    return data if isinstance(data, dict) else {}


def _hub_model_dir(name: str, *, offline: bool) -> Path:
    fw = import_faster_whisper()
    try:
        return Path(fw.download_model(name, local_files_only=True))
    except (OSError, ValueError) as exc:  # LocalEntryNotFoundError is an OSError
        log.debug("%s is not in the local cache: %s", name, exc)
        if offline:
            raise _offline_error(name, "offline mode was asked for") from exc
    try:
        return Path(fw.download_model(name))
    except (OSError, ValueError) as exc:
        raise _offline_error(name, first_line(exc)) from exc


def _offline_error(name: str, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"Whisper model {name!r} is not in the local Hugging Face cache and cannot be downloaded ({why})",
        hint="pass a local CTranslate2 model directory with --model PATH, or connect once to cache it",
    )


def _checkpoint_key(src: Path, ct2_version: str) -> str:
    digest = hashlib.sha256(f"{src.resolve()}|ctranslate2 {ct2_version}|float16".encode())
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        st = f.stat()
        digest.update(f"|{f.relative_to(src)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"{src.name}-{digest.hexdigest()[:16]}"


def convert_transformers_checkpoint(src: Path, cache_dir: Path) -> Path:
    """Convert a Transformers Whisper checkpoint to CTranslate2 (float16 weights) once, and cache it.

    The cache entry is keyed by the checkpoint's path, file sizes and times and the CTranslate2 version,
    and written atomically, so an interrupted conversion leaves nothing behind.

    Raises:
        RuntimeUnavailable: transformers or torch is missing.
        ModelLoadError: the converter refused the checkpoint.
    """
    ct2 = import_ctranslate2()
    dest = cache_dir / _checkpoint_key(src, ct2.__version__)
    if (dest / "model.bin").is_file():
        log.info("using the converted model cached at %s", dest)
        return dest
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:
        raise RuntimeUnavailable(
            "converting a Transformers checkpoint needs transformers and torch",
            hint="pip install 'modelport[whisper,torch]'",
        ) from exc
    from modelport.model_io import atomic_path  # imports onnx: only when a conversion is needed

    copy = [name for name in _COPY_FILES if (src / name).is_file()]
    log.info("converting the Transformers checkpoint %s to CTranslate2 in %s", src, dest)
    try:
        with atomic_path(dest) as tmp:
            ct2.converters.TransformersConverter(str(src), copy_files=copy).convert(str(tmp), quantization="float16")
            if "tokenizer.json" not in copy:
                tok = transformers.AutoTokenizer.from_pretrained(str(src))
                tok.backend_tokenizer.save(str(tmp / "tokenizer.json"))
    except (OSError, ValueError, RuntimeError, KeyError, AttributeError) as exc:
        raise ModelLoadError(
            f"cannot convert the Transformers checkpoint to CTranslate2: {first_line(exc)}", path=src
        ) from exc
    return dest


def resolve_device(device: Device) -> str:
    """The CTranslate2 device for ``device`` (auto: cuda when a CUDA device is visible).

    Raises:
        RuntimeUnavailable: cuda was asked for and CTranslate2 sees no CUDA device.
    """
    ct2 = import_ctranslate2()
    cuda = ct2.get_cuda_device_count() > 0
    if device is Device.CUDA and not cuda:
        raise RuntimeUnavailable(
            "CUDA was asked for but CTranslate2 sees no CUDA device",
            hint="use --device cpu (or auto), or check the NVIDIA driver and CUDA 12 libraries",
        )
    if device is Device.AUTO:
        return "cuda" if cuda else "cpu"
    return device.value


def resolve_compute_type(compute_type: ComputeType, device: str) -> str:
    """The compute type for ``device`` (auto: int8 on CPU, float16 on CUDA; float32 if unsupported).

    Raises:
        InvalidInputError: the device cannot run the requested compute type.
    """
    supported = set(import_ctranslate2().get_supported_compute_types(device))
    if compute_type is ComputeType.AUTO:
        wanted = "float16" if device == "cuda" else "int8"
        return wanted if wanted in supported else "float32"
    if compute_type.value not in supported:
        raise InvalidInputError(
            f"compute type {compute_type.value} is not supported on {device}",
            hint=f"choose one of: {', '.join(sorted(supported))}",
        )
    return compute_type.value


def load_whisper(resolved: ResolvedModel, device: str, compute_type: str, threads: int, workers: int) -> Any:
    """Load a ``faster_whisper.WhisperModel`` from a resolved directory.

    Raises:
        ModelLoadError: CTranslate2 or the tokenizer cannot read the directory.
    """
    fw = import_faster_whisper()
    try:
        return fw.WhisperModel(
            str(resolved.path),
            device=device,
            compute_type=compute_type,
            cpu_threads=threads,
            num_workers=workers,
        )
    except Exception as exc:  # CTranslate2 and tokenizers raise bare RuntimeError/Exception
        raise ModelLoadError(
            f"cannot load the CTranslate2 Whisper model: {first_line(exc)}",
            path=resolved.path,
            hint="check that the directory holds a complete CTranslate2 Whisper conversion",
        ) from exc


def model_language_ids(resolved: ResolvedModel) -> list[int]:
    """The language token ids in the CTranslate2 config (empty when the conversion recorded none)."""
    ids = _read_json(resolved.path / "config.json").get("lang_ids") or []
    return [int(i) for i in ids]
