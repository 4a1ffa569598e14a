"""``modelport example mnist [-o OUT] [--train]`` — the seed's MNIST flow and its one table."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from modelport.cli import options as opt
from modelport.cli.common import console, print_json
from modelport.errors import InvalidInputError

if TYPE_CHECKING:
    from modelport.quantization.example import ExampleReport

EXAMPLES = ("mnist",)


def example_table(report: ExampleReport) -> Table:
    """mode × accuracy × latency × size (and the speed-up, the drop and any flag)."""
    table = Table(
        title=f"MNIST ConvNet: FP32 vs INT8 (latency at batch {report.batch}; top-1 on {report.evaluation})",
        title_justify="left",
    )
    for col in ("mode", "top-1", "drop (pt)", "p50 ms", "speed-up", "size KiB", "flags"):
        table.add_column(col, justify="left" if col in ("mode", "flags") else "right")
    for r in report.rows:
        table.add_row(
            f"{r.runtime} {r.precision}",
            f"{r.top1:.2%}" if r.top1 is not None else "–",
            f"{r.drop:.2f}" if r.drop is not None else "",
            f"{r.p50_ms:.3f}" if r.p50_ms is not None else "–",
            f"{r.speedup:.2f}×" if r.speedup is not None else "–",
            f"{r.size_bytes / 1024:.1f}",
            ", ".join(r.flags),
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command("example")
    def example_cmd(
        name: str = typer.Argument("mnist", help="Which example: mnist."),
        out_dir: Path = typer.Option(Path("modelport-mnist"), "--output", "-o", help="Output directory."),
        train: bool = typer.Option(False, "--train", help="Retrain the ConvNet first (scripts/train_mnist.py)."),
        runtimes: str = opt.runtimes_option("openvino,onnxruntime,litert"),
        samples: int = typer.Option(300, "--samples", help="Calibration images."),
        batch: int = typer.Option(64, "--batch", help="Latency batch."),
        seconds: float = typer.Option(1.0, "--seconds", help="Timing budget per variant."),
        threads: int | None = opt.THREADS,
        as_json: bool = opt.JSON,
    ) -> None:
        """Run an example flow end to end and print its table (mnist: FP32 vs INT8 on every runtime)."""
        from modelport.benchmark.timing import BenchConfig
        from modelport.quantization.example import mnist_example

        if name not in EXAMPLES:
            raise InvalidInputError(f"unknown example {name!r}", hint=f"examples: {', '.join(EXAMPLES)}")
        err = Console(stderr=True, highlight=False)
        report = mnist_example(
            out_dir,
            train=train,
            runtimes=opt.split_list(runtimes),
            samples=samples,
            batch=batch,
            bench=BenchConfig(warmup=5, seconds=seconds),
            threads=threads,
            progress=(lambda m: err.log(m)) if sys.stderr.isatty() else None,
        )
        if as_json:
            print_json(report.to_json())
        else:
            out = console()
            out.print(example_table(report))
            for failure in report.failures:
                out.print(f"failed: {failure}", markup=False)
            verdict = "met" if report.goals_met else "NOT met"
            out.print(f"goal (INT8 top-1 within {report.max_drop:g} points of FP32 on every runtime): {verdict}")
            out.print(f"reports: {out_dir}/<runtime>/quantize.md, {out_dir}/example.json", markup=False)
        if not report.goals_met:
            raise typer.Exit(code=1)
