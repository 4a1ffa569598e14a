"""The service's persistent state: uploaded files and jobs in one SQLite file under the data folder.

One connection per call (SQLite serialises writers; the service's writes are a few per job), so any thread may
use the store. Ids are random (``secrets.token_hex``): they are not guessable and never come from a client.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: a job's states; the last three are final
STATES: tuple[str, ...] = ("queued", "running", "done", "failed", "cancelled")
FINAL_STATES = frozenset({"done", "failed", "cancelled"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, filename TEXT NOT NULL, format TEXT NOT NULL,
    sha256 TEXT NOT NULL, size INTEGER NOT NULL, path TEXT NOT NULL, client TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, model TEXT NOT NULL, verb TEXT NOT NULL,
    spec TEXT NOT NULL, argv TEXT NOT NULL, state TEXT NOT NULL, client TEXT NOT NULL, created REAL NOT NULL,
    started REAL, finished REAL, exit_code INTEGER, error TEXT, pid INTEGER, expired INTEGER NOT NULL DEFAULT 0
);
"""


@dataclasses.dataclass(frozen=True)
class Upload:
    """An uploaded model or data file (``kind``), stored at ``path`` under the data folder."""

    id: str
    kind: str
    filename: str
    format: str
    sha256: str
    size: int
    path: str
    client: str
    created: float

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("path", "client")}


@dataclasses.dataclass(frozen=True)
class Job:
    """One row of the job table.

    Attributes:
        seq: submission order (the queue's order).
        argv: the command line after ``python -m modelport`` (paths inside the data folder).
        pid: the job's process-group leader while it runs.
        expired: its artifacts were deleted after the retention period.
    """

    seq: int
    id: str
    model: str
    verb: str
    spec: Mapping[str, Any]
    argv: tuple[str, ...]
    state: str
    client: str
    created: float
    started: float | None
    finished: float | None
    exit_code: int | None
    error: str | None
    pid: int | None
    expired: bool


class Store:
    """The uploads and jobs of one data folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("PRAGMA journal_mode=WAL")
            yield db
        finally:
            db.close()

    # uploads
    def add_upload(self, kind: str, filename: str, fmt: str, sha256: str, size: int, path: str, client: str) -> Upload:
        upload = Upload(new_id(), kind, filename, fmt, sha256, size, path, client, time.time())
        with self._db() as db:
            db.execute("INSERT INTO uploads VALUES (?,?,?,?,?,?,?,?,?)", dataclasses.astuple(upload))
        return upload

    def reserve_upload_id(self) -> str:
        return new_id()

    def insert_upload(self, upload: Upload) -> None:
        with self._db() as db:
            db.execute("INSERT INTO uploads VALUES (?,?,?,?,?,?,?,?,?)", dataclasses.astuple(upload))

    def upload(self, upload_id: str, kind: str | None = None) -> Upload | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        if row is None or (kind is not None and row["kind"] != kind):
            return None
        return Upload(**dict(row))

    def uploads(self, kind: str) -> list[Upload]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM uploads WHERE kind = ? ORDER BY created", (kind,)).fetchall()
        return [Upload(**dict(r)) for r in rows]

    def delete_upload(self, upload_id: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))

    # jobs
    def add_job(self, model: str, verb: str, spec: Mapping[str, Any], argv: list[str], client: str, job_id: str) -> Job:
        with self._db() as db:
            db.execute(
                "INSERT INTO jobs (id, model, verb, spec, argv, state, client, created) VALUES (?,?,?,?,?,?,?,?)",
                (job_id, model, verb, json.dumps(spec), json.dumps(argv), "queued", client, time.time()),
            )
        job = self.job(job_id)
        assert job is not None
        return job

    def job(self, job_id: str) -> Job | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row is not None else None

    def jobs(self, *, states: tuple[str, ...] = STATES, limit: int = 200) -> list[Job]:
        marks = ",".join("?" for _ in states)
        with self._db() as db:
            rows = db.execute(
                f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY seq DESC LIMIT ?", (*states, limit)
            ).fetchall()
        return [_job(r) for r in rows]

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job to start; None when the job is not queued."""
        if job.state != "queued":
            return None
        with self._db() as db:
            (ahead,) = db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND seq < ?", (job.seq,)).fetchone()
        return int(ahead) + 1

    def count(self, state: str) -> int:
        with self._db() as db:
            (n,) = db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)).fetchone()
        return int(n)

    def claim_next(self) -> Job | None:
        """Atomically move the oldest queued job to ``running``; None when the queue is empty."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            db.execute("UPDATE jobs SET state = 'running', started = ? WHERE id = ?", (time.time(), row["id"]))
            db.execute("COMMIT")
        return self.job(row["id"])

    def set_pid(self, job_id: str, pid: int) -> None:
        with self._db() as db:
            db.execute("UPDATE jobs SET pid = ? WHERE id = ?", (pid, job_id))

    def finish(self, job_id: str, state: str, *, exit_code: int | None = None, error: str | None = None) -> bool:
        """Move a job that is not final yet to a final state; False when it already was final."""
        with self._db() as db:
            cur = db.execute(
                "UPDATE jobs SET state = ?, finished = ?, exit_code = ?, error = ? "
                "WHERE id = ? AND state IN ('queued', 'running')",
                (state, time.time(), exit_code, error, job_id),
            )
            return cur.rowcount == 1

    def mark_expired(self, job_id: str) -> None:
        with self._db() as db:
            db.execute("UPDATE jobs SET expired = 1 WHERE id = ?", (job_id,))

    def fail_interrupted(self) -> list[Job]:
        """At start-up: every job left ``running`` by a previous server failed (its process is gone)."""
        running = self.jobs(states=("running",), limit=100000)
        for job in running:
            self.finish(job.id, "failed", error="the server restarted while the job ran")
        return running


def new_id() -> str:
    return secrets.token_hex(8)


def _job(row: sqlite3.Row) -> Job:
    data = dict(row)
    data["spec"] = json.loads(data["spec"])
    data["argv"] = tuple(json.loads(data["argv"]))
    data["expired"] = bool(data["expired"])
    return Job(**data)
