"""The server's settings: one frozen value built by ``modelport serve`` (or a test) and handed to the app."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

from modelport.errors import InvalidInputError

#: verbs a job may run (the ones that produce artifacts from one uploaded model)
JOB_VERBS: tuple[str, ...] = ("port", "convert", "optimize", "quantize")
#: verbs whose --output is a file, not a folder: the file's name inside the job's artifact folder
OUTPUT_FILES: dict[str, str] = {"optimize": "optimized.onnx"}


@dataclasses.dataclass(frozen=True)
class ServeSettings:
    """What the service may do and where it keeps things.

    Attributes:
        data_dir: the folder for uploads, jobs, artifacts and the job table (created when missing).
        host: the address uvicorn binds (a non-loopback one needs a token).
        port: the TCP port.
        workers: jobs run at the same time (the rest wait in the queue).
        max_upload_mb: the largest upload accepted, in MiB (checked while streaming, not after).
        job_timeout_s: wall-time limit of one job; its whole process group is killed past it.
        job_memory_mb: resident-memory limit of one job's process group (0: none); it is killed past it.
        token: the bearer token every route needs (None: no auth — loopback only).
        max_queued: jobs waiting at most; a new job past it is refused (HTTP 429).
        max_uploads_per_client: uploads one client address may stream at the same time.
        retention_s: finished jobs' artifacts (and unused uploads) are deleted this long after they finished.
        python: the interpreter that runs the jobs (this one by default).
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_upload_mb: int = 2048
    job_timeout_s: float = 3600.0
    job_memory_mb: int = 0
    token: str | None = None
    max_queued: int = 64
    max_uploads_per_client: int = 2
    retention_s: float = 7 * 24 * 3600.0
    python: str | None = None

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise InvalidInputError(f"--workers must be at least 1, got {self.workers}")
        if self.max_upload_mb < 1:
            raise InvalidInputError(f"--max-upload-mb must be at least 1, got {self.max_upload_mb}")
        if self.job_timeout_s <= 0:
            raise InvalidInputError(f"--job-timeout must be positive, got {self.job_timeout_s}")
        if self.token is not None and not self.token.strip():
            raise InvalidInputError("the token is empty", hint="write a long random string to the token file")
        if self.token is None and not is_loopback(self.host):
            raise InvalidInputError(
                f"refusing to serve on {self.host} without a token: anyone who can reach it could run jobs",
                hint="pass --token-file FILE (a long random string), or bind 127.0.0.1",
            )

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(path: Path) -> str:
    """The token in a token file (its first line, stripped); a clear error when it is missing, empty or short."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read the token file: {exc.strerror}", path=path) from exc
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(token) < 16:
        raise InvalidInputError(
            "the token is shorter than 16 characters", path=path, hint="e.g. `openssl rand -hex 32 > FILE`"
        )
    return token
