"""``modelport port [MODEL] --to onnxruntime,openvino [--precision fp32,fp16,bf16] -o OUTDIR`` — the main job."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from modelport.cli.common import console, precisions_option, shapes_option, split_list


def register(app: typer.Typer) -> None:
    @app.command("port")
    def port_cmd(
        model: Path | None = typer.Argument(None, help="ONNX model (default: the shipped MNIST ConvNet)."),
        to: str = typer.Option("onnxruntime,openvino", "--to", help="Comma-separated target runtimes."),
        precision: str = typer.Option("fp32,fp16", "--precision", help="Comma-separated: fp32, fp16, bf16, int8."),
        out_dir: Path = typer.Option(Path("modelport-out"), "--output", "-o", help="Output directory."),
        no_optimize: bool = typer.Option(False, "--no-optimize", help="Skip graph optimization."),
        input_shape: list[str] = typer.Option([], "--input-shape", help="NAME:D1,D2,… for dynamic dims."),
        batch: int | None = typer.Option(
            None, "--batch", help="Batch size for verification and benchmarks (default: the model's, else 1)."
        ),
        threads: int | None = typer.Option(None, "--threads", help="Runtime threads (default: all cores)."),
        seconds: float = typer.Option(1.0, "--seconds", help="Benchmark time per target."),
        eval_limit: int | None = typer.Option(None, "--eval-limit", help="Cap evaluation samples."),
    ) -> None:
        """Convert to every target, verify each against the source, benchmark, and write the report."""
        from modelport.benchmark.timing import BenchConfig
        from modelport.porting.pipeline import PortOptions, port

        options = PortOptions(
            targets=tuple(split_list(to)),
            precisions=tuple(precisions_option(precision)),
            optimize=not no_optimize,
            input_shapes=tuple(shapes_option(input_shape).items()),
            batch=batch,
            threads=threads,
            bench=BenchConfig(warmup=10, seconds=seconds),
            eval_limit=eval_limit,
        )
        out = console()
        err = Console(stderr=True, highlight=False) if sys.stderr.isatty() else None  # progress: stderr only
        with out.status("porting…") if out.is_terminal else _null():
            report = port(model, out_dir, options=options, progress=(lambda m: err.log(m)) if err is not None else None)
        out.print(f"source: {report.source} ({report.source_nodes} nodes)")
        if report.optimization:
            o = report.optimization
            out.print(f"optimized: {o.nodes_before} → {o.nodes_after} nodes ({', '.join(o.passes) or 'unchanged'})")
        if report.source_accuracy:
            a = report.source_accuracy
            out.print(f"source top-1 on {a.dataset}: {a.top1:.2%} ({a.samples} samples)")
        out.print(summary_table(report))
        for line in _reasons(report):
            out.print(line, markup=False)
        if report.fastest:
            out.print(f"fastest verified target: [bold]{report.fastest}[/]")
        out.print(f"report: {out_dir / 'report.md'}, {out_dir / 'report.html'}, {out_dir / 'report.json'}")
        if not report:
            bad = [t.label for t in report.targets if t.status in ("mismatch", "failed")]
            out.print(f"[red]not verified: {', '.join(bad)}[/]")
            raise typer.Exit(code=1)


def summary_table(report: object) -> Table:
    from modelport.reports.render import HEADERS, target_rows

    table = Table(title="targets", title_justify="left")
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("target", "executes", "status", "tolerance") else "right")
    for row in target_rows(report, with_reason=False):  # type: ignore[arg-type]
        table.add_row(*row)
    return table


def _reasons(report: object) -> list[str]:
    return [f"{t.label}: {t.status}: {t.reason}" for t in report.targets if t.reason]  # type: ignore[attr-defined]


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None
