"""``modelport bench MODEL --runtimes … [--batch 1,8]``.

Each runtime is measured in a child process of its own (``--timeout`` seconds each, as ``port``'s targets and
``compare``'s runtimes; ``--timeout 0``: all in this process); the child's start-up is outside the timed loop. A
runtime that crashes, hangs or raises is printed under the table and the command exits 1, after every other
runtime was measured; when all of them failed, the first failure is the one error line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modelport.cli import options as opt
from modelport.cli.common import console, print_json

if TYPE_CHECKING:
    from modelport.benchmark.timing import BenchOptions, BenchReport


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_cmd(
        model: Path = typer.Argument(..., help="Model file."),
        runtimes: str = opt.runtimes_option("onnxruntime"),
        batch: str | None = typer.Option(
            None, "--batch", help="Comma-separated batch sizes (default: the model's fixed batch, else 1)."
        ),
        threads: int | None = opt.THREADS,
        precision: str = opt.precision_option(),
        warmup: int = typer.Option(10, "--warmup", help="Untimed runs first."),
        iterations: int | None = typer.Option(None, "--iterations", "-n", help="Timed runs (overrides --seconds)."),
        seconds: float = typer.Option(2.0, "--seconds", help="Time budget per (runtime, batch)."),
        input_shape: list[str] = opt.INPUT_SHAPE,
        seed: int = opt.SEED,
        inputs: list[str] = opt.INPUTS,
        outputs: list[str] = opt.OUTPUTS,
        trust_remote_code: bool = opt.TRUST_REMOTE_CODE,
        as_json: bool = opt.JSON,
        timeout: float = opt.TIMEOUT,
        cluster: str | None = opt.CLUSTER,
        devices: str | None = opt.DEVICES,
    ) -> None:
        """Measure latency (p50/p90/p99/mean/stdev) and throughput on each runtime and batch size."""
        from modelport.backends.runner import RunnerOptions
        from modelport.benchmark.timing import BenchConfig, BenchOptions, bench
        from modelport.errors import InvalidInputError

        try:
            batches = None if batch is None else tuple(int(b) for b in opt.split_list(batch))
        except ValueError:
            raise InvalidInputError(f"--batch takes integers, got {batch!r}") from None
        shapes = opt.input_shapes(input_shape)
        options = BenchOptions(
            batches=batches,
            runner=RunnerOptions(threads=threads, precision=opt.precision(precision)),
            timing=BenchConfig(warmup=warmup, iterations=iterations, seconds=seconds),
            input_shapes=tuple(shapes.items()),
            seed=seed,
            loader=opt.loader(inputs=inputs, outputs=outputs, trust_remote_code=trust_remote_code, shapes=shapes),
            timeout=opt.child_timeout(timeout),
        )
        if cluster is not None:
            _bench_fleet(model, opt.split_list(runtimes), options, cluster, devices, as_json)
            return
        opt.no_devices_without_cluster(devices)
        report = bench(model, opt.split_list(runtimes), options=options)
        if as_json:
            print_json(report.to_json())
            if report.failures:
                raise typer.Exit(code=1)
            return
        out = console()
        _print_bench(out, report, f"latency of {model.name} (ms)")
        if report.failures:
            raise typer.Exit(code=1)


def _print_bench(out: Console, report: BenchReport, title: str) -> None:
    table = Table(title=title, title_justify="left")
    for col in ("runtime", "executes", "batch", "runs", "p50", "p90", "p99", "mean", "stdev", "samples/s"):
        table.add_column(col, justify="left" if col in ("runtime", "executes") else "right")
    for r in report.results:
        s = r.latency
        table.add_row(
            r.runtime,
            r.runner.executed_precision,
            str(r.batch),
            str(s.n),
            f"{s.p50_ms:.3f}",
            f"{s.p90_ms:.3f}",
            f"{s.p99_ms:.3f}",
            f"{s.mean_ms:.3f}",
            f"{s.stdev_ms:.3f}",
            f"{r.throughput:.1f}",
        )
    for failure in report.failures:  # a row saying how it ended; the reason below the table
        table.add_row(escape(failure.runtime), f"[red]{failure.kind}[/]")
    out.print(table)
    for failure in report.failures:
        out.print(f"[red]{escape(failure.line())}[/]")


def _bench_fleet(
    model: Path, runtimes: list[str], options: BenchOptions, address: str, devices: str | None, as_json: bool
) -> None:
    """``bench --cluster``: every device's table, the node it ran on, and the fastest runtime per device."""
    from modelport.cluster.fleet import FleetOptions, fleet_bench

    err = Console(stderr=True, highlight=False)
    fleet = FleetOptions(devices=tuple(opt.split_list(devices or "")))
    report = fleet_bench(model, runtimes, address=address, options=options, fleet=fleet, progress=err.print)
    if as_json:
        print_json(report.to_json())
    else:
        out = console()
        for run in report.runs:
            where = f"{run.device} (node {run.node_address}"
            where += f", {run.environment.cpu_model}, {run.environment.cpu_count} cores)" if run.environment else ")"
            if run.bench is not None:
                _print_bench(out, run.bench, f"{where}: latency of {model.name} (ms)")
            else:
                out.print(f"[red]{escape(where)}: {escape(run.error or 'no result')}[/]")
        from modelport.cli.cluster import fleet_matrix

        out.print(fleet_matrix(report, "median latency per runtime and device"))
        for run in report.runs:
            out.print(f"fastest on {run.device}: {escape(run.fastest or '–')}")
    if not report or any(r.bench is not None and r.bench.failures for r in report.runs):
        raise typer.Exit(code=1)
