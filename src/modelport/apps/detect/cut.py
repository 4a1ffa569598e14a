"""The NMS cut for ``detect``: an ONNX detector split at its ``NonMaxSuppression``
(:mod:`modelport.rewriting.nms_split`), cached by the source's SHA-256 under ``<cache>/detect/<sha>/``
(the input is never modified).

Scores below the app's ``--score`` are dropped before the host NMS — exact for the boxes above it, since greedy NMS
lets a box suppress only boxes of lower score (:meth:`~modelport.rewriting.nms_split.NmsCut.tail_feeds`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from modelport.errors import AppError, PassError
from modelport.model_io import load_proto
from modelport.rewriting.nms_split import NmsCut, has_nms, read_split, split_before_nms, write_split

log = logging.getLogger(__name__)

#: the cut's description file in its cache folder
CUT_JSON = "cut.json"

__all__ = ["NmsCut", "cut_before_nms", "default_cache_dir", "has_nms", "preferred_runtime"]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/modelport`` (``~/.cache/modelport`` when unset), read at call time."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelport"


def preferred_runtime(model: Path) -> str | None:
    """The runtime ``detect`` picks when none is given: OpenVINO (when installed) for an ONNX detector whose graph
    runs ``NonMaxSuppression`` over every candidate, else None (the format's own runtime).

    Measured on torchvision's ssdlite320 (``benchmarks/results/apps_detect.md``, 27,000 candidates): ONNX Runtime
    in-graph 495 ms, ONNX Runtime with the NMS cut 232 ms, OpenVINO with the graph as it is 98 ms — OpenVINO's NMS
    is multi-threaded and its head runs the unrolled per-class top-k faster.
    """
    from modelport.backends import get_backend
    from modelport.formats import Format, sniff_format

    if not model.is_file() or sniff_format(model) is not Format.ONNX or not has_nms(model):
        return None
    return "openvino" if get_backend("openvino").installed() else None


def cut_before_nms(source: Path, cache_dir: Path | None = None) -> NmsCut:
    """The NMS cut of ``source``, from the cache or made now (see the module docstring).

    Raises:
        AppError: the model has no ``NonMaxSuppression``, or the graph cannot be split there.
    """
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:24]
    folder = (cache_dir or default_cache_dir()) / "detect" / digest
    cached = read_split(folder / CUT_JSON)
    if cached is not None:
        log.debug("NMS cut of %s from %s", source, folder)
        return cached
    proto = load_proto(source, check=False)  # the guards: external data inside its folder, declared sizes
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=folder.parent))
    try:
        try:
            cut = split_before_nms(proto, tmp / "head.onnx", tmp / "tail.onnx", source)
        except PassError as exc:
            raise AppError(exc.message, hint="run it with the in-graph NMS (--in-graph-nms)", path=source) from exc
        write_split(cut, tmp / CUT_JSON)
        try:
            tmp.rename(folder)
        except OSError:  # another process made it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    loaded = read_split(folder / CUT_JSON)
    assert loaded is not None
    log.info("cut %s before its %s: %s", source, "NonMaxSuppression", folder)
    return loaded
