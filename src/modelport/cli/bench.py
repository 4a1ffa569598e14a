"""``modelport bench MODEL --runtimes … [--batch 1,8]``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from modelport.cli import options as opt
from modelport.cli.common import console, print_json


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
        )
        report = bench(model, opt.split_list(runtimes), options=options)
        if as_json:
            print_json(report.to_json())
            return
        table = Table(title=f"latency of {model.name} (ms)", title_justify="left")
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
        console().print(table)
