"""The job queue: ``--workers`` threads, each running one job at a time as a CLI child process.

A job is ``python -m modelport VERB MODEL OPTIONS --output ARTIFACTS --json`` started in the job's folder in its own
session (so its process group holds everything it starts: onnx2tf's workers, ``port``'s per-target children), with

* stdout (the ``--json`` report) in ``result.json`` and stderr (log lines; ``port``'s progress lines, asked for
  with ``MODELPORT_PROGRESS=lines``) in ``job.log``;
* a wall-time limit (``job_timeout_s``) and a memory limit (``job_memory_mb``: the resident memory of every
  process of the job's session, sampled twice a second) — past either, the whole group is killed;
* no core dumps (``RLIMIT_CORE`` 0).

Cancelling kills the group (SIGTERM, then SIGKILL after a grace period). The group is killed on every way out, so
no process outlives its job. A job's state is final once: ``done`` (exit 0, or exit 1 = ran but something did not
verify: the report says what), ``failed`` (an error, a crash, a limit), or ``cancelled``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelport.porting.progress import parse_message
from modelport.serve.settings import OUTPUT_FILES, ServeSettings
from modelport.serve.specs import DATA_OPTIONS, JobSpec, VerbCatalog, command_options
from modelport.serve.store import FINAL_STATES, Job, Store, new_id

log = logging.getLogger(__name__)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_GRACE_S = 3.0
_POLL_S = 0.5


class QueueFull(Exception):
    """More jobs are waiting than ``max_queued``."""


class JobManager:
    """Queues jobs, runs them as child processes, and cleans up after them."""

    def __init__(self, settings: ServeSettings, store: Store, catalog: VerbCatalog) -> None:
        self.settings = settings
        self.store = store
        self.catalog = catalog
        self.jobs_dir = settings.data_dir / "jobs"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._cancelled: set[str] = set()
        self._threads: list[threading.Thread] = []

    # lifecycle
    def start(self) -> None:
        for job in self.store.fail_interrupted():
            if job.pid:
                _kill_group(job.pid, signal.SIGKILL, only_if_modelport=True)
        for i in range(self.settings.workers):
            t = threading.Thread(target=self._worker, name=f"modelport-job-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        sweeper = threading.Thread(target=self._sweeper, name="modelport-sweeper", daemon=True)
        sweeper.start()
        self._threads.append(sweeper)

    def stop(self) -> None:
        """Stop taking jobs; kill the running ones (they are marked failed: the server stopped)."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for job_id, proc in list(self._procs.items()):
            self.store.finish(job_id, "failed", error="the server stopped while the job ran")
            _kill_group(proc.pid, signal.SIGKILL)
        for t in self._threads:
            t.join(timeout=5.0)

    # requests
    def submit(self, spec: JobSpec, *, model_path: str, data_paths: Mapping[str, str], client: str) -> Job:
        if self.store.count("queued") >= self.settings.max_queued:
            raise QueueFull(f"{self.settings.max_queued} jobs are already waiting")
        job_id = new_id()
        folder = self.job_dir(job_id)
        folder.mkdir(parents=True)
        known = {o.key: o for o in self.catalog.options(spec.verb)}
        options = command_options(spec, known, data_path=lambda i: data_paths[i])
        output = folder / "artifacts"
        if spec.verb in OUTPUT_FILES:  # a verb writing one file: into the artifact folder
            output.mkdir()
            output = output / OUTPUT_FILES[spec.verb]
        argv = [spec.verb, model_path, *options, "--output", str(output), "--json"]
        job = self.store.add_job(
            spec.model, spec.verb, {"verb": spec.verb, "model": spec.model, **spec.options}, argv, client, job_id
        )
        with self._wake:
            self._wake.notify()
        return job

    def cancel(self, job_id: str) -> Job | None:
        job = self.store.job(job_id)
        if job is None or job.state in FINAL_STATES:
            return job
        self._cancelled.add(job_id)
        if self.store.finish(job_id, "cancelled", error="cancelled by request"):
            proc = self._procs.get(job_id)
            if proc is not None:
                _terminate(proc)
        return self.store.job(job_id)

    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def result(self, job: Job) -> Any:
        """The verb's JSON report (its ``--json`` output), when it wrote one."""
        path = self.job_dir(job.id) / "result.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def progress(self, job: Job) -> dict[str, dict[str, Any]]:
        """Per-target progress from the job's log: steps done of steps, the current step, the final status."""
        targets: dict[str, dict[str, Any]] = {}
        for line in read_lines(self.job_dir(job.id) / "job.log"):
            event = parse_message(line.removeprefix("progress: "))
            if event is None:
                continue
            t = targets.setdefault(event.target, {"steps": None, "done": 0, "step": "", "status": None})
            if event.steps is not None:
                t["steps"], t["step"] = event.steps, "starting"
            elif event.status is not None:
                t["status"], t["step"] = event.status, event.status
                t["done"] = t["steps"] or t["done"]
            else:
                t["done"] += 1 if t["step"] not in ("starting", "") else 0
                t["step"] = event.text
        return targets

    def command_line(self, job: Job, model_name: str) -> str:
        """The CLI command a user would type for this job (the model by its uploaded name, ``-o out``)."""
        argv = list(job.argv)
        names = {}  # uploaded data files by the name they were uploaded with
        for key in DATA_OPTIONS:
            upload = self.store.upload(str(job.spec.get(key, "")), "data")
            if upload is not None:
                names[upload.path] = upload.filename
        shown = [argv[0], model_name, *(names.get(a, a) for a in argv[2:])]
        out = shown.index("--output")
        shown[out + 1] = OUTPUT_FILES.get(job.verb, "out")
        shown.remove("--json")
        return "modelport " + shlex.join(shown)

    # workers
    def _worker(self) -> None:
        while not self._stop.is_set():
            job = self.store.claim_next()
            if job is None:
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            try:
                self._run(job)
            except Exception as exc:  # a bug here must not kill the worker thread
                log.exception("job %s", job.id)
                self.store.finish(job.id, "failed", error=f"internal error: {type(exc).__name__}: {exc}")

    def _run(self, job: Job) -> None:
        folder = self.job_dir(job.id)
        env = dict(os.environ, MODELPORT_PROGRESS="lines", PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="160")
        cmd = [self.settings.python or sys.executable, "-m", "modelport", *job.argv]
        with (folder / "result.json.part").open("wb") as out, (folder / "job.log").open("ab") as err:
            upload = self.store.upload(job.model)
            err.write(f"$ {self.command_line(job, upload.filename if upload else 'model')}\n".encode())
            err.flush()
            proc = subprocess.Popen(
                cmd, cwd=folder, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True, env=env
            )
            with contextlib.suppress(OSError):
                resource.prlimit(proc.pid, resource.RLIMIT_CORE, (0, 0))
            self._procs[job.id] = proc
            self.store.set_pid(job.id, proc.pid)
            if job.id in self._cancelled:  # cancelled between claim and start
                _terminate(proc)
            try:
                why = self._wait(proc)
            finally:
                _kill_group(proc.pid, signal.SIGKILL)
                self._procs.pop(job.id, None)
        if (folder / "result.json.part").stat().st_size:
            os.replace(folder / "result.json.part", folder / "result.json")
        else:
            (folder / "result.json.part").unlink()
        code = proc.returncode
        if job.id in self._cancelled:
            self.store.finish(job.id, "cancelled", exit_code=code, error="cancelled by request")
        elif why is not None:
            self.store.finish(job.id, "failed", exit_code=code, error=why)
        elif code == 0 or (code == 1 and (folder / "result.json").exists()):
            self.store.finish(job.id, "done", exit_code=code)
        else:
            self.store.finish(job.id, "failed", exit_code=code, error=_failure(code, folder / "job.log"))

    def _wait(self, proc: subprocess.Popen[bytes]) -> str | None:
        """Wait for the child; the reason it was killed (time or memory limit), or None when it ended itself."""
        deadline = time.monotonic() + self.settings.job_timeout_s
        limit = self.settings.job_memory_mb * 1024 * 1024
        while True:
            try:
                proc.wait(timeout=_POLL_S)
                return None
            except subprocess.TimeoutExpired:
                pass
            if time.monotonic() > deadline:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
                return f"timed out after {self.settings.job_timeout_s:g} s (--job-timeout)"
            if limit:
                used = session_rss(proc.pid)
                if used > limit:
                    _kill_group(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return (
                        f"used {used / 2**20:.0f} MiB, over the memory limit of "
                        f"{self.settings.job_memory_mb} MiB (--job-memory-mb)"
                    )

    def _sweeper(self) -> None:
        while not self._stop.wait(timeout=60.0):
            self.sweep()

    def sweep(self, now: float | None = None) -> int:
        """Delete the artifacts of jobs finished more than ``retention_s`` ago; returns how many."""
        now = time.time() if now is None else now
        swept = 0
        for job in self.store.jobs(states=tuple(FINAL_STATES), limit=100000):
            if job.expired or job.finished is None or now - job.finished < self.settings.retention_s:
                continue
            folder = self.job_dir(job.id)
            for name in ("artifacts", "artifacts.zip"):
                target = folder / name
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
            self.store.mark_expired(job.id)
            swept += 1
        return swept


def read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _failure(code: int | None, log_path: Path) -> str:
    lines = read_lines(log_path)
    errors = [ln for ln in lines if ln.startswith("modelport: error: ")]
    if errors:
        return errors[-1].removeprefix("modelport: error: ")
    if code is not None and code < 0:
        return f"the job crashed (killed by signal {signal.Signals(-code).name})"
    tail = [ln for ln in lines if ln.strip()][-1:] or [""]
    return f"the job exited with code {code}: {tail[0][:300]}"


def session_rss(leader: int) -> int:
    """Resident bytes of every process in the session ``leader`` started (the job and all its children)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) != leader:  # field 6 of stat: the session id
                continue
            total += int(Path(entry.path, "statm").read_text().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            continue
    return total


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the job's group; SIGKILL after a grace period (in the background)."""
    _kill_group(proc.pid, signal.SIGTERM)

    def later() -> None:
        try:
            proc.wait(timeout=_GRACE_S)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)

    threading.Thread(target=later, daemon=True).start()


def _kill_group(pgid: int, sig: signal.Signals, *, only_if_modelport: bool = False) -> None:
    if only_if_modelport:
        try:
            if b"modelport" not in Path(f"/proc/{pgid}/cmdline").read_bytes():
                return
        except OSError:
            return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
