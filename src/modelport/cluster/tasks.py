"""What runs on the nodes: module-level functions Ray ships by reference (every node has the same modelport).

A model crosses the cluster as one zip of its files (an OpenVINO IR's .xml and .bin, an ONNX file and its external
data, a SavedModel folder); reports come back as JSON text and ``port``'s artifacts as a zip, so a node needs nothing
from the driver but the versions ``cluster status`` checks.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any


def doctor_task() -> str:
    """``doctor`` on this node, as JSON."""
    from modelport.diagnostics import doctor

    return doctor().to_json()


def targets_task(options: Any) -> list[tuple[str, str]]:
    """The (runtime, precision) targets ``port`` would choose on this node with ``options`` (its own defaults when
    the options name none)."""
    from modelport.porting.pipeline import choose_targets
    from modelport.reports.environment import capture_environment

    runtimes, precisions, _ = choose_targets(options, capture_environment())
    return [(r, p.value) for r in runtimes for p in precisions]


def device_task(
    verb: str,
    main: str,
    bundle: bytes,
    runtimes: tuple[str, ...],
    options: Any,
    threads: int,
    build: bytes | None = None,
    data: dict[str, tuple[str, bytes]] | None = None,
) -> dict[str, Any]:
    """Run ``bench`` or ``port`` on this node.

    Args:
        verb: ``bench`` or ``port``.
        main: the model's path inside ``bundle``.
        bundle: the zipped model files.
        runtimes: bench's runtimes (unused by port, whose options name its targets).
        options: the verb's options (BenchOptions / PortOptions); bench's threads default to this node's CPUs.
        threads: the CPUs reserved for the task on this node.
        build: port's build made once by the driver (:mod:`modelport.porting.prebuilt`), zipped: its prepared
            source and artifacts are verified and measured here, not made again.
        data: port's local data files, zipped, by the option they stand for (``calib``/``eval`` → (name, zip)).

    Returns:
        ``{"report": JSON, "environment": JSON, "artifacts": zip bytes or None, "out": the node's output folder,
        "ran": (start, end) in seconds since the epoch}`` — ``port``'s output folder comes back zipped (its report
        and every file made on this device; the driver's build is not sent back).
    """
    from modelport.reports.environment import capture_environment

    began = time.time()
    with tempfile.TemporaryDirectory(prefix="modelport-node-") as tmp:
        folder = Path(tmp) / "model"
        unzip(bundle, folder)
        model, out = folder / main, Path(tmp) / "out"
        artifacts = None
        report: Any
        if verb == "bench":
            from modelport.benchmark.timing import bench

            if options.runner.threads is None:
                options = dataclasses.replace(options, runner=dataclasses.replace(options.runner, threads=threads))
            report = bench(model, runtimes, options=options)
        else:
            from modelport.porting.pipeline import port
            from modelport.porting.prebuilt import read_prebuilt

            for field, (name, blob) in (data or {}).items():
                unzip(blob, Path(tmp) / "data" / field)
                options = dataclasses.replace(options, **{field: Path(tmp) / "data" / field / name})
            unchanged = unzip(build, out) if build is not None else {}
            prebuilt = read_prebuilt(out) if build is not None else None
            report = port(model, out, options=options, prebuilt=prebuilt)
            made = [p for p in sorted(out.rglob("*")) if p.is_file() and unchanged.get(p) != _stamp(p)]
            artifacts = zip_folder(out, made)
        env = capture_environment().to_json()
        ran = (began, time.time())
        return {"report": report.to_json(), "environment": env, "artifacts": artifacts, "out": str(out), "ran": ran}


def unzip(blob: bytes, dest: Path) -> dict[Path, tuple[int, int]]:
    """Unpack a zip sent by the driver into ``dest``; each file's (size, mtime) as unpacked."""
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        archive.extractall(dest)
        names = [dest / info.filename for info in archive.infolist() if not info.is_dir()]
    return {p: _stamp(p) for p in names}


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def zip_path(path: Path, extra: list[Path] | None = None) -> bytes:
    """A file (with ``extra`` files beside it) or a whole folder as one zip, under its own name: what the driver
    sends to the nodes (a model, a data folder), unpacked there by :func:`unzip`."""
    files = sorted(path.rglob("*")) if path.is_dir() else [path, *(extra or [])]
    return zip_folder(path.parent, files)


def zip_folder(folder: Path, files: list[Path] | None = None) -> bytes:
    """The files under ``folder`` (or just ``files``, by their paths relative to it) as one zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for path in files if files is not None else sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


class ArchiveWorker:
    """One Whisper model loaded on one node (a Ray actor: ``ray.remote(ArchiveWorker)``), transcribing the files it
    is sent one after another. The model is a name (resolved on the node: its cache, or the hub unless offline) or
    a folder the driver sent zipped (``model_bundle``), unpacked once into a private temporary folder."""

    def __init__(self, model_options: Any, model_bundle: bytes | None, threads: int) -> None:
        from modelport.apps.transcribe import Transcriber

        self._tmp = tempfile.TemporaryDirectory(prefix="modelport-whisper-")
        if model_bundle is not None:
            folder = Path(self._tmp.name) / "model"
            unzip(model_bundle, folder)
            model_options = dataclasses.replace(model_options, model=folder / Path(str(model_options.model)).name)
        self.transcriber = Transcriber(dataclasses.replace(model_options, threads=threads, workers=1))

    def load_seconds(self) -> float:
        return float(self.transcriber.load_seconds)

    def transcribe(self, name: str, audio: bytes, options: Any) -> str:
        """Transcribe one file sent as bytes (``name`` keeps its suffix for the decoder); the result as JSON."""
        path = Path(self._tmp.name) / "input" / Path(name).name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(audio)
        try:
            result = self.transcriber.transcribe_file(path, options)
        finally:
            path.unlink(missing_ok=True)
        return dataclasses.replace(result, source=name).to_json()
