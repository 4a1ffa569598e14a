"""The HTTP layer: FastAPI routes over the store and the job queue (see docs/serve.md for the API with examples).

Every error answers JSON ``{"error": message, "fields": [{"field", "message"}, …]}`` with the right status: 401 no
or wrong token, 404 unknown id, 413 too large, 415 unknown format, 422 a bad job spec (one entry per wrong field),
429 too many uploads from one client or a full queue. Artifact paths are resolved inside the job's artifact folder;
anything else is 404. The page (``/``) and the API description (``/docs``, ``/openapi.json``) need no token: they
hold no data; every ``/api`` route does when the server has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import threading
import time
import zipfile
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse

from modelport.serve.jobs import JobManager, QueueFull
from modelport.serve.settings import JOB_VERBS, ServeSettings
from modelport.serve.specs import SpecError, VerbCatalog, check_spec
from modelport.serve.store import FINAL_STATES, Job, Store
from modelport.serve.uploads import UploadRejected, receive

_SSE_POLL_S = 0.25
_SSE_HEARTBEAT_S = 10.0


class ApiError(Exception):
    def __init__(self, status: int, message: str, fields: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.fields = status, message, fields or []


def create_app(settings: ServeSettings, catalog: VerbCatalog, *, start_workers: bool = True) -> FastAPI:
    """The service's FastAPI app over ``settings.data_dir``; its job workers start with the app and stop with it."""
    (settings.data_dir / "uploads").mkdir(parents=True, exist_ok=True)
    store = Store(settings.data_dir / "modelport-serve.sqlite")
    manager = JobManager(settings, store, catalog)
    uploading: dict[str, int] = {}
    lock = threading.Lock()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if start_workers:
            manager.start()
        try:
            yield
        finally:
            manager.stop()

    app = FastAPI(
        title="modelport serve",
        summary="Upload a model, port it, download the verified artifacts and the report.",
        lifespan=lifespan,
    )
    app.state.manager = manager
    app.state.store = store

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message, "fields": exc.fields}, status_code=exc.status)

    def auth(request: Request) -> None:
        if settings.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), settings.token.encode()):
            raise ApiError(401, "missing or wrong token: send the header 'Authorization: Bearer <token>'")

    guarded = [Depends(auth)]

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        html = resources.files("modelport.serve").joinpath("page.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    @app.get("/api/info", dependencies=guarded, summary="What this server runs: verbs, runtimes, precisions, limits")
    def info() -> dict[str, Any]:
        return server_info(settings, catalog)

    async def upload(request: Request, kind: str) -> dict[str, Any]:
        client = request.client.host if request.client else "?"
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_upload_bytes + 1024 * 1024:
            raise ApiError(
                413, f"the upload is larger than the limit of {settings.max_upload_mb} MiB (--max-upload-mb)"
            )
        with lock:
            if uploading.get(client, 0) >= settings.max_uploads_per_client:
                raise ApiError(429, f"at most {settings.max_uploads_per_client} uploads at a time per client")
            uploading[client] = uploading.get(client, 0) + 1
        upload_id = store.reserve_upload_id()
        folder = settings.data_dir / "uploads" / upload_id
        try:
            stored = await receive(
                request.stream(),
                request.headers.get("content-type", ""),
                folder,
                kind=kind,
                max_bytes=settings.max_upload_bytes,
            )
        except UploadRejected as exc:
            raise ApiError(exc.status, str(exc)) from None
        finally:
            with lock:
                uploading[client] -= 1
        from modelport.serve.store import Upload

        record = Upload(
            upload_id,
            kind,
            stored.filename,
            stored.format,
            stored.sha256,
            stored.size,
            str(stored.path),
            client,
            time.time(),
        )
        store.insert_upload(record)
        return record.to_json()

    @app.post("/api/models", dependencies=guarded, status_code=201, summary="Upload a model (multipart field 'file')")
    async def upload_model(request: Request) -> dict[str, Any]:
        return await upload(request, "model")

    @app.post(
        "/api/data",
        dependencies=guarded,
        status_code=201,
        summary="Upload calibration/evaluation data (.npz, .npy, or a .zip of class/xxx.jpg images)",
    )
    async def upload_data(request: Request) -> dict[str, Any]:
        return await upload(request, "data")

    @app.get("/api/models", dependencies=guarded, summary="The uploaded models")
    def models() -> list[dict[str, Any]]:
        return [u.to_json() for u in store.uploads("model")]

    @app.get("/api/models/{model_id}", dependencies=guarded, summary="One uploaded model")
    def model(model_id: str) -> dict[str, Any]:
        found = store.upload(model_id, "model")
        if found is None:
            raise ApiError(404, f"no uploaded model with id {model_id!r}")
        return found.to_json()

    @app.post("/api/jobs", dependencies=guarded, status_code=201, summary="Start a port/convert/optimize/quantize job")
    async def create_job(request: Request) -> dict[str, Any]:
        try:
            raw = await request.json()
        except ValueError:
            raise ApiError(422, "the body is not JSON", [{"field": "body", "message": "send a JSON object"}]) from None
        try:
            spec = check_spec(
                raw,
                catalog,
                model_exists=lambda i: store.upload(i, "model") is not None,
                data_exists=lambda i: store.upload(i, "data") is not None,
            )
        except SpecError as exc:
            fields = [{"field": e.field, "message": e.message} for e in exc.errors]
            raise ApiError(422, f"the job spec is wrong: {exc}", fields) from None
        model_row = store.upload(spec.model, "model")
        assert model_row is not None
        data_paths = {i: store.upload(i, "data").path for i in spec.data_ids}  # type: ignore[union-attr]
        client = request.client.host if request.client else "?"
        try:
            job = manager.submit(spec, model_path=model_row.path, data_paths=data_paths, client=client)
        except QueueFull as exc:
            raise ApiError(429, f"the queue is full: {exc}; try again later") from None
        return job_json(job)

    @app.get("/api/jobs", dependencies=guarded, summary="Recent jobs, newest first")
    def jobs() -> list[dict[str, Any]]:
        return [job_json(j, brief=True) for j in store.jobs()]

    def find(job_id: str) -> Job:
        job = store.job(job_id)
        if job is None:
            raise ApiError(404, f"no job with id {job_id!r}")
        return job

    def job_json(job: Job, *, brief: bool = False) -> dict[str, Any]:
        model_row = store.upload(job.model)
        data: dict[str, Any] = {
            "id": job.id,
            "verb": job.verb,
            "model": job.model,
            "model_name": model_row.filename if model_row else None,
            "state": job.state,
            "queue_position": store.queue_position(job),
            "created": job.created,
            "started": job.started,
            "finished": job.finished,
            "exit_code": job.exit_code,
            "error": job.error,
            "spec": dict(job.spec),
        }
        if brief:
            return data
        data["progress"] = manager.progress(job)
        data["command"] = manager.command_line(job, model_row.filename if model_row else "model")
        data["report"] = manager.result(job) if job.state in FINAL_STATES else None
        data["artifacts"] = [] if job.expired else artifact_list(manager.job_dir(job.id) / "artifacts")
        data["expired"] = job.expired
        return data

    @app.get("/api/jobs/{job_id}", dependencies=guarded, summary="A job: state, queue position, progress, report")
    def job(job_id: str) -> dict[str, Any]:
        return job_json(find(job_id))

    @app.delete("/api/jobs/{job_id}", dependencies=guarded, summary="Cancel a job (its process group is killed)")
    def cancel(job_id: str) -> dict[str, Any]:
        find(job_id)
        done = manager.cancel(job_id)
        assert done is not None
        return job_json(done)

    @app.get("/api/jobs/{job_id}/log", dependencies=guarded, response_class=PlainTextResponse, summary="The job's log")
    def job_log(job_id: str) -> PlainTextResponse:
        find(job_id)
        path = manager.job_dir(job_id) / "job.log"
        return PlainTextResponse(path.read_text(encoding="utf-8", errors="replace") if path.exists() else "")

    @app.get("/api/jobs/{job_id}/events", dependencies=guarded, summary="Server-sent events: log lines, state changes")
    async def events(job_id: str, request: Request) -> StreamingResponse:
        find(job_id)
        start = request.headers.get("last-event-id", "0")
        offset = int(start) if start.isdigit() else 0
        return StreamingResponse(
            event_stream(manager, store, job_id, offset, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/api/jobs/{job_id}/artifacts", dependencies=guarded, summary="The job's artifact files")
    def artifacts(job_id: str) -> list[dict[str, Any]]:
        job = find(job_id)
        return [] if job.expired else artifact_list(manager.job_dir(job_id) / "artifacts")

    @app.get("/api/jobs/{job_id}/artifacts.zip", dependencies=guarded, summary="Every artifact in one zip")
    def artifacts_zip(job_id: str) -> FileResponse:
        job = find(job_id)
        if job.state not in FINAL_STATES or job.expired:
            raise ApiError(404, "the job's artifacts are not available (still running, or deleted after retention)")
        path = zip_artifacts(manager.job_dir(job_id))
        return FileResponse(path, media_type="application/zip", filename=f"modelport-{job_id}.zip")

    @app.get("/api/jobs/{job_id}/artifacts/{path:path}", dependencies=guarded, summary="One artifact file")
    def artifact(job_id: str, path: str) -> FileResponse:
        job = find(job_id)
        folder = manager.job_dir(job_id) / "artifacts"
        target = inside(folder, path)
        if job.expired or target is None or not target.is_file():
            raise ApiError(404, f"no artifact {path!r} in job {job_id}")
        if target.name == "report.html":  # shown in the page: its own sandboxed origin, no scripts
            return FileResponse(
                target,
                media_type="text/html",
                headers={
                    "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
                },
            )
        return FileResponse(target, filename=target.name, media_type="application/octet-stream")

    return app


def inside(folder: Path, relative: str) -> Path | None:
    """``folder/relative`` when it resolves inside ``folder`` (no ``..``, no absolute path, no link out); else None."""
    if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
        return None
    root = folder.resolve()
    target = (root / relative).resolve()
    return target if root in target.parents else None


def artifact_list(folder: Path) -> list[dict[str, Any]]:
    if not folder.is_dir():
        return []
    root = folder.resolve()
    found = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and root in path.resolve().parents:
            found.append({"path": path.relative_to(folder).as_posix(), "size": path.stat().st_size})
    return found


def zip_artifacts(job_dir: Path) -> Path:
    """The artifacts as one zip (built once, atomically, beside them)."""
    final = job_dir / "artifacts.zip"
    if final.exists():
        return final
    part = job_dir / f"artifacts.zip.{os.getpid()}.{threading.get_ident()}.part"
    with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for entry in artifact_list(job_dir / "artifacts"):
            archive.write(job_dir / "artifacts" / entry["path"], entry["path"])
    os.replace(part, final)
    return final


async def event_stream(
    manager: JobManager, store: Store, job_id: str, offset: int, request: Request
) -> AsyncIterator[bytes]:
    """``event: log`` per new log line (its id: the byte offset after it, for reconnects), ``event: state`` on
    every state or queue-position change, ``event: end`` once the job is final and its log read."""
    path = manager.job_dir(job_id) / "job.log"
    last_state: tuple[Any, ...] | None = None
    beat = time.monotonic()
    pending = b""
    while not await request.is_disconnected():
        job = store.job(job_id)
        if job is None:
            return
        state = (job.state, store.queue_position(job))
        if state != last_state:
            last_state = state
            yield _sse("state", json.dumps({"state": job.state, "queue_position": state[1], "error": job.error}))
        chunk = await asyncio.to_thread(_read_from, path, offset)
        if chunk:
            pending += chunk
            offset += len(chunk)
            *lines, pending = pending.split(b"\n")
            position = offset - len(pending) - sum(len(line) + 1 for line in lines)
            for line in lines:
                position += len(line) + 1
                yield _sse("log", line.decode("utf-8", "replace").rstrip("\r"), position)
        if job.state in FINAL_STATES and not chunk:
            if pending:
                yield _sse("log", pending.decode("utf-8", "replace"), offset)
            yield _sse("end", json.dumps({"state": job.state, "error": job.error}))
            return
        if time.monotonic() - beat > _SSE_HEARTBEAT_S:
            beat = time.monotonic()
            yield b": keep-alive\n\n"
        await asyncio.sleep(_SSE_POLL_S)


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(1 << 20)
    except OSError:
        return b""


def _sse(event: str, data: str, event_id: int | None = None) -> bytes:
    lines = [f"event: {event}"] + ([f"id: {event_id}"] if event_id is not None else [])
    lines += [f"data: {part}" for part in data.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


def server_info(settings: ServeSettings, catalog: VerbCatalog) -> dict[str, Any]:
    """What the page offers: the job verbs with their options, the runtimes (installed or not), the precisions."""
    from modelport.backends import get_backend
    from modelport.formats import Format
    from modelport.porting.defaults import PORT_RUNTIMES, default_precisions, default_runtimes
    from modelport.reports.environment import capture_environment

    env = capture_environment()
    chosen = default_runtimes(env)
    import modelport

    return {
        "version": modelport.__version__,
        "machine": {"cpu": env.cpu_model, "cores": env.cpu_count, "gpus": len(env.gpus)},
        "verbs": {
            verb: [
                {
                    "key": o.key,
                    "flag": o.flag,
                    "switch": o.is_flag,
                    "repeatable": o.multiple,
                    "default": o.default,
                    "help": o.help,
                }
                for o in catalog.options(verb)
            ]
            for verb in JOB_VERBS
        },
        "runtimes": [
            {"name": n, "installed": get_backend(n).installed(), "default": n in chosen} for n in PORT_RUNTIMES
        ],
        "precisions": [
            {"name": p, "default": p in {q.value for q in default_precisions(env)}}
            for p in ("fp32", "fp16", "bf16", "int8")
        ],
        "convert_formats": [f.value for f in Format if f not in (Format.TF_GRAPHDEF, Format.KERAS, Format.TORCH)],
        "limits": {
            "max_upload_mb": settings.max_upload_mb,
            "job_timeout_s": settings.job_timeout_s,
            "job_memory_mb": settings.job_memory_mb,
            "workers": settings.workers,
            "max_queued": settings.max_queued,
        },
        "auth": settings.token is not None,
    }
