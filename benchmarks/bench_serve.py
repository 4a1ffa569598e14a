"""A bounded load test of ``modelport serve`` on loopback: many clients polling job status while jobs queue.

    .venv/bin/python benchmarks/bench_serve.py [--pollers 50] [--jobs 5] [--polls 40] [--results DIR]

Starts ``python -m modelport serve --workers 1`` on a free loopback port (a real uvicorn server, a fresh data folder),
uploads the shipped MNIST model, queues ``--jobs`` real jobs (``optimize``: each a full CLI run in its own process
group) and, while they run one after the other, ``--pollers`` threads each send ``--polls`` ``GET /api/jobs/{id}``
requests (round-robin over the jobs, no pause) over their own keep-alive connection. Measured: status-request
latency (p50/p95/max over every request), errors (non-200 or connection failures), requests per second, whether the
jobs started in submission order, and each job's queue wait. Results: ``benchmarks/results/serve.{md,json}``.
The server and the jobs share the machine's cores with the pollers: on 2 cores this is a stress test, not a
measurement of the server alone.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
MNIST = HERE.parent / "src" / "modelport" / "assets" / "mnist_convnet.onnx"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--polls", type=int, default=40)
    parser.add_argument("--results", type=Path, default=HERE / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelport",
                "serve",
                "--port",
                str(port),
                "--data",
                f"{tmp}/data",
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            result = _run(f"http://127.0.0.1:{port}", args)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "serve.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.results / "serve.md").write_text(_markdown(result, args))
    print(_markdown(result, args))
    return 0 if result["errors"] == 0 and result["order_kept"] else 1


def _run(url: str, args: argparse.Namespace) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/api/info", timeout=2).raise_for_status()
            break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    with httpx.Client(base_url=url, timeout=30) as c:
        model = c.post("/api/models", files={"file": ("mnist.onnx", MNIST.read_bytes())}).json()["id"]
        ids = [c.post("/api/jobs", json={"model": model, "verb": "optimize"}).json()["id"] for _ in range(args.jobs)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def poll(worker: int) -> None:
        mine: list[float] = []
        bad: list[str] = []
        with httpx.Client(base_url=url, timeout=30) as c:
            for i in range(args.polls):
                job = ids[(worker + i) % len(ids)]
                start = time.perf_counter()
                try:
                    r = c.get(f"/api/jobs/{job}")
                    if r.status_code != 200:
                        bad.append(f"HTTP {r.status_code}")
                except httpx.HTTPError as exc:
                    bad.append(type(exc).__name__)
                mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    start = time.perf_counter()
    threads = [threading.Thread(target=poll, args=(w,)) for w in range(args.pollers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    with httpx.Client(base_url=url, timeout=30) as c:
        while True:
            jobs = [c.get(f"/api/jobs/{i}").json() for i in ids]
            if all(j["state"] in ("done", "failed", "cancelled") for j in jobs):
                break
            time.sleep(0.5)
    started = [j["started"] for j in jobs]
    ms = sorted(x * 1000 for x in latencies)
    return {
        "pollers": args.pollers,
        "polls_each": args.polls,
        "requests": len(ms),
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1),
        "max_ms": round(ms[-1], 1),
        "requests_per_s": round(len(ms) / wall, 1),
        "jobs": len(ids),
        "job_states": [j["state"] for j in jobs],
        "order_kept": started == sorted(started),
        "queue_wait_s": [round(j["started"] - j["created"], 1) for j in jobs],
        "job_s": [round(j["finished"] - j["started"], 1) for j in jobs],
        "machine": _machine(),
        "load": round(os.getloadavg()[0], 1),
    }


def _markdown(r: dict[str, object], args: argparse.Namespace) -> str:
    return (
        "# `modelport serve` under load (loopback)\n\n"
        f"`python benchmarks/bench_serve.py --pollers {args.pollers} --jobs {args.jobs} --polls {args.polls}` — "
        f"machine: {r['machine']}; load {r['load']} (1-min average at the end).\n\n"
        "| pollers × polls | requests | errors | p50 ms | p95 ms | max ms | requests/s | jobs (states) "
        "| started in order | queue wait s | job s |\n|---|---:|---:|---:|---:|---:|---:|---|---|---|---|\n"
        f"| {r['pollers']} × {r['polls_each']} | {r['requests']} | {r['errors']} | {r['p50_ms']} | {r['p95_ms']} "
        f"| {r['max_ms']} | {r['requests_per_s']} | {r['jobs']} ({', '.join(r['job_states'])}) "  # type: ignore[arg-type]
        f"| {'yes' if r['order_kept'] else 'NO'} | {', '.join(map(str, r['queue_wait_s']))} "  # type: ignore[call-overload]
        f"| {', '.join(map(str, r['job_s']))} |\n"  # type: ignore[call-overload]
    )


def _machine() -> str:
    from importlib.metadata import version

    from modelport.reports.environment import capture_environment

    web = ", ".join(f"{name} {version(name)}" for name in ("fastapi", "starlette", "uvicorn", "modelport"))
    return f"{capture_environment().summary()}; {web}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
