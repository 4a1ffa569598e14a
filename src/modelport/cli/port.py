"""``modelport port [MODEL] --to onnxruntime,openvino [--precision fp32,fp16,bf16] -o OUTDIR`` — the main job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modelport.cli import options as opt
from modelport.cli.common import console, print_json

if TYPE_CHECKING:
    from modelport.porting.pipeline import PortReport


def register(app: typer.Typer) -> None:
    @app.command("port")
    def port_cmd(
        model: Path | None = typer.Argument(None, help="ONNX model (default: the shipped MNIST ConvNet)."),
        to: str = typer.Option("onnxruntime,openvino", "--to", help="Comma-separated target runtimes."),
        precision: str = opt.precision_option("fp32,fp16"),
        out_dir: Path = typer.Option(Path("modelport-out"), "--output", "-o", help="Output directory."),
        no_optimize: bool = typer.Option(False, "--no-optimize", help="Skip graph optimization."),
        input_shape: list[str] = opt.INPUT_SHAPE,
        batch: int | None = typer.Option(
            None, "--batch", help="Batch size for verification and benchmarks (default: the model's, else 1)."
        ),
        threads: int | None = opt.THREADS,
        seconds: float = typer.Option(1.0, "--seconds", help="Benchmark time per target."),
        eval_limit: int | None = typer.Option(None, "--eval-limit", help="Cap evaluation samples."),
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
    ) -> None:
        """Convert to every target, verify each against the source, benchmark, and write the report."""
        from modelport.benchmark.timing import BenchConfig
        from modelport.porting.pipeline import PortOptions, port

        options = PortOptions(
            targets=tuple(opt.split_list(to)),
            precisions=tuple(opt.precisions(precision)),
            optimize=not no_optimize,
            input_shapes=opt.input_shape_items(input_shape),
            batch=batch,
            threads=threads,
            bench=BenchConfig(warmup=10, seconds=seconds),
            seed=seed,
            eval_limit=eval_limit,
            **opt.api_kwargs(PortOptions, **opt.tolerance_fields(rtol, atol)),
        )
        err = Console(stderr=True, highlight=False) if sys.stderr.isatty() else None  # progress: stderr only
        out = console()
        with out.status("porting…") if out.is_terminal and not as_json else _null():
            report = port(model, out_dir, options=options, progress=(lambda m: err.log(m)) if err is not None else None)
        if as_json:
            print_json(report.to_json())
        else:
            _print_report(out, report, out_dir)
        if not report:
            raise typer.Exit(code=1)


def _print_report(out: Console, report: PortReport, out_dir: Path) -> None:
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


def summary_table(report: object) -> Table:
    from modelport.porting.render import HEADERS, target_rows

    table = Table(title="targets", title_justify="left")
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("target", "executes", "status", "tolerance") else "right")
    for row in target_rows(report, with_reason=False):  # type: ignore[arg-type]
        table.add_row(*(escape(cell) for cell in row))
    return table


def _reasons(report: object) -> list[str]:
    return [f"{t.label}: {t.status}: {t.reason}" for t in report.targets if t.reason]  # type: ignore[attr-defined]


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None
