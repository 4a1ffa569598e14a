"""``modelport bench MODEL --runtimes … [--batch 1,8]``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from modelport.cli.common import console, print_json, shapes_option, split_list


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_cmd(
        model: Path = typer.Argument(..., help="Model file."),
        runtimes: str = typer.Option("onnxruntime", "--runtimes", "-r", help="Comma-separated runtimes."),
        batch: str | None = typer.Option(
            None, "--batch", help="Comma-separated batch sizes (default: the model's fixed batch, else 1)."
        ),
        threads: int | None = typer.Option(None, "--threads", help="Runtime threads (default: all cores)."),
        precision: str = typer.Option("fp32", "--precision", help="Execution precision: fp32, fp16, bf16."),
        warmup: int = typer.Option(10, "--warmup", help="Untimed runs first."),
        iterations: int | None = typer.Option(None, "--iterations", "-n", help="Timed runs (overrides --seconds)."),
        seconds: float = typer.Option(2.0, "--seconds", help="Time budget per (runtime, batch)."),
        input_shape: list[str] = typer.Option([], "--input-shape", help="NAME:D1,D2,… for dynamic dims."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Measure latency (p50/p90/p99/mean/stdev) and throughput on each runtime and batch size."""
        from modelport.backends.runner import RunnerOptions
        from modelport.benchmark.timing import BenchConfig, bench
        from modelport.errors import InvalidInputError
        from modelport.formats import Precision

        try:
            batches = None if batch is None else [int(b) for b in split_list(batch)]
        except ValueError:
            raise InvalidInputError(f"--batch takes integers, got {batch!r}") from None
        report = bench(
            model,
            split_list(runtimes),
            batches=batches,
            options=RunnerOptions(threads=threads, precision=Precision.parse(precision)),
            config=BenchConfig(warmup=warmup, iterations=iterations, seconds=seconds),
            input_shapes=shapes_option(input_shape),
        )
        if as_json:
            print_json(report.to_json())
            return
        table = Table(title=f"latency of {model.name} (ms)", title_justify="left")
        for col in (
            "runtime",
            "executes",
            "batch",
            "runs",
            "p50",
            "p90",
            "p99",
            "mean",
            "stdev",
            "samples/s",
        ):
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
        console().print(table)
