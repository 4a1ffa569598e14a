"""The job queue's life cycle: cancel, time and memory limits, a crashing job, a server restart, queue order,
retention. The job interpreter is replaced by small shell scripts where a real port could not fail on purpose."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from serve_helpers import alive, client, fake_python, upload_mnist, wait_state


def _job(c, model: str) -> str:  # type: ignore[no-untyped-def]
    r = c.post("/api/jobs", json={"model": model, "verb": "optimize"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _pid(data: Path, job_id: str, c) -> int:  # type: ignore[no-untyped-def]
    from modelport.serve.store import Store

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = Store(data / "modelport-serve.sqlite").job(job_id)
        if job is not None and job.pid:
            return job.pid
        time.sleep(0.05)
    raise AssertionError("the job never started")


def test_cancel_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    python = fake_python(tmp_path, f"sleep 60 & echo $! > {marker}; wait")
    data = tmp_path / "data"
    with client(data, python=python) as c:
        job_id = _job(c, upload_mnist(c))
        pid = _pid(data, job_id, c)
        while not marker.exists() or not marker.read_text().strip():
            time.sleep(0.05)
        child = int(marker.read_text())
        r = c.delete(f"/api/jobs/{job_id}")
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        deadline = time.monotonic() + 10
        while (alive(pid) or alive(child)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid) and not alive(child)  # the job and what it started
        assert c.get(f"/api/jobs/{job_id}").json()["state"] == "cancelled"
        assert c.delete(f"/api/jobs/{job_id}").json()["state"] == "cancelled"  # idempotent


def test_cancel_a_queued_job_never_starts_it(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "sleep 60")
    with client(tmp_path / "data", python=python, workers=1) as c:
        model = upload_mnist(c)
        first, second = _job(c, model), _job(c, model)
        assert c.get(f"/api/jobs/{second}").json()["queue_position"] == 1
        assert c.delete(f"/api/jobs/{second}").json()["state"] == "cancelled"
        c.delete(f"/api/jobs/{first}")
        time.sleep(1.5)
        job = c.get(f"/api/jobs/{second}").json()
        assert job["state"] == "cancelled" and job["started"] is None


def test_timeout_fails_the_job_and_kills_it(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "sleep 60")
    data = tmp_path / "data"
    with client(data, python=python, job_timeout_s=1.0) as c:
        job_id = _job(c, upload_mnist(c))
        pid = _pid(data, job_id, c)
        job = wait_state(c, job_id, ("failed",), timeout=30)
        assert "timed out after 1 s" in job["error"]
        assert not alive(pid)


def test_a_crashing_job_is_a_failed_job_and_the_queue_goes_on(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "echo 'about to crash' >&2; kill -SEGV $$")
    with client(tmp_path / "data", python=python, workers=1) as c:
        model = upload_mnist(c)
        jobs = [_job(c, model), _job(c, model)]
        for job_id in jobs:
            job = wait_state(c, job_id, ("failed", "done"), timeout=30)
            assert job["state"] == "failed" and "SIGSEGV" in job["error"], job
            assert "about to crash" in c.get(f"/api/jobs/{job_id}/log").text


def test_a_job_reporting_an_error_fails_with_its_message(tmp_path: Path) -> None:
    with client(tmp_path / "data") as c:
        model = upload_mnist(c)
        r = c.post("/api/jobs", json={"model": model, "verb": "optimize", "passes": ["no-such-pass"]})
        job = wait_state(c, r.json()["id"], ("failed", "done"))
        assert job["state"] == "failed" and job["exit_code"] == 2
        assert "no-such-pass" in job["error"] and "Traceback" not in job["error"]


def test_memory_limit_kills_the_job(tmp_path: Path) -> None:
    python = fake_python(tmp_path, 'exec python3 -c "x = bytearray(600 * 2**20); import time; time.sleep(60)"')
    with client(tmp_path / "data", python=python, job_memory_mb=200) as c:
        job = wait_state(c, _job(c, upload_mnist(c)), ("failed", "done"), timeout=30)
        assert job["state"] == "failed" and "over the memory limit of 200 MiB" in job["error"], job


def test_restart_mid_job_marks_it_failed_and_keeps_finished_ones(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with client(data) as c:
        model = upload_mnist(c)
        finished = _job(c, model)
        assert wait_state(c, finished, ("done", "failed"))["state"] == "done"
    python = fake_python(tmp_path, "sleep 60")
    from fastapi.testclient import TestClient

    from modelport.cli.jobspec import CliCatalog
    from modelport.serve.app import create_app
    from modelport.serve.settings import ServeSettings

    crashed = create_app(ServeSettings(data_dir=data, python=python), CliCatalog())
    c1 = TestClient(crashed)
    c1.__enter__()  # the workers run; the server then "dies" without its shutdown
    running = _job(c1, model)
    pid = _pid(data, running, c1)
    crashed.state.manager._stop.set()  # no new jobs from the dead server (its process would be gone)
    with client(data) as c2:  # the restarted server
        job = c2.get(f"/api/jobs/{running}").json()
        assert job["state"] == "failed" and "restarted" in job["error"]
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)  # its leftover process group was killed
        old = c2.get(f"/api/jobs/{finished}").json()
        assert old["state"] == "done" and old["report"] is not None and old["artifacts"]


def test_queue_order_is_kept_with_one_worker(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "sleep 0.3")
    with client(tmp_path / "data", python=python, workers=1) as c:
        model = upload_mnist(c)
        ids = [_job(c, model) for _ in range(4)]
        positions = [c.get(f"/api/jobs/{i}").json()["queue_position"] for i in ids]
        assert [p for p in positions if p is not None] == sorted(p for p in positions if p is not None)
        jobs = [wait_state(c, i, ("done", "failed"), timeout=30) for i in ids]
        starts = [j["started"] for j in jobs]
        assert starts == sorted(starts)
        for a, b in itertools.pairwise(jobs):
            assert b["started"] >= a["finished"] - 0.01  # one at a time


def test_full_queue_is_refused(tmp_path: Path) -> None:
    python = fake_python(tmp_path, "sleep 60")
    with client(tmp_path / "data", python=python, workers=1, max_queued=1) as c:
        model = upload_mnist(c)
        first = _job(c, model)
        _pid(tmp_path / "data", first, c)
        _job(c, model)
        r = c.post("/api/jobs", json={"model": model, "verb": "optimize"})
        assert r.status_code == 429 and "queue is full" in r.json()["error"]


def test_retention_deletes_old_artifacts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with client(data, retention_s=3600.0) as c:
        job_id = _job(c, upload_mnist(c))
        job = wait_state(c, job_id, ("done", "failed"))
        assert job["artifacts"]
        manager = c.app.state.manager  # type: ignore[attr-defined]
        assert manager.sweep(now=time.time()) == 0
        assert manager.sweep(now=time.time() + 7200) == 1
        job = c.get(f"/api/jobs/{job_id}").json()
        assert job["expired"] and job["artifacts"] == [] and job["state"] == "done"
        assert not (data / "jobs" / job_id / "artifacts").exists()
        assert c.get(f"/api/jobs/{job_id}/artifacts.zip").status_code == 404
