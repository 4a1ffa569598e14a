"""Shared pieces of the web-service tests: an app over a temporary data folder, fake job interpreters."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from modelport.cli.jobspec import CliCatalog
from modelport.serve.app import create_app
from modelport.serve.settings import ServeSettings

MNIST = Path(__file__).resolve().parents[2] / "src" / "modelport" / "assets" / "mnist_convnet.onnx"
TOKEN = "0123456789abcdef-test-token"


@contextmanager
def client(data: Path, **settings: Any) -> Iterator[TestClient]:
    """A test client of an app over ``data`` (workers started, stopped on exit)."""
    app = create_app(ServeSettings(data_dir=data, **settings), CliCatalog())
    with TestClient(app) as c:
        if settings.get("token"):
            c.headers["Authorization"] = f"Bearer {settings['token']}"
        yield c


def fake_python(folder: Path, body: str) -> str:
    """An executable standing in for the job interpreter: ``body`` is a shell script (it gets the job's argv)."""
    path = folder / f"fake-python-{abs(hash(body))}.sh"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def upload_mnist(c: TestClient) -> str:
    r = c.post("/api/models", files={"file": ("mnist.onnx", MNIST.read_bytes())})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def wait_state(c: TestClient, job_id: str, states: tuple[str, ...], timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.get(f"/api/jobs/{job_id}").json()
        if job["state"] in states:
            return dict(job)
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {states}: {c.get(f'/api/jobs/{job_id}').json()}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not reaped yet) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}
