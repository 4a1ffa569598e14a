"""``modelport port [MODEL] [--to RUNTIMES] [--precision …] [--calib/--eval DATA] -o OUTDIR`` — the main job."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from modelport.cli import options as opt
from modelport.cli.common import console, print_json

if TYPE_CHECKING:
    from modelport.porting.pipeline import PortReport


def register(app: typer.Typer) -> None:
    @app.command("port")
    def port_cmd(
        model: str | None = typer.Argument(
            None,
            help="Source: ONNX, TFLite, SavedModel dir, Keras, frozen .pb (with --inputs/--outputs), OpenVINO IR, "
            "PyTorch file or package.module:factory (default: the shipped MNIST ConvNet).",
        ),
        to: str = typer.Option(
            "", "--to", help="Comma-separated target runtimes (default: every installed runtime with a device here)."
        ),
        precision: str = opt.precision_option(""),  # empty: the precisions this hardware runs fast
        out_dir: Path = typer.Option(Path("modelport-out"), "--output", "-o", help="Output directory."),
        calib: str | None = typer.Option(
            None, "--calib", help="INT8 calibration data, as quantize reads it (default: the --eval data)."
        ),
        eval_source: str | None = typer.Option(
            None, "--eval", help="Evaluation data: labelled image tree class/xxx.jpg, .npz, mnist[:split] …"
        ),
        eval_limit: int | None = typer.Option(None, "--eval-limit", help="Cap evaluation samples."),
        samples: int = typer.Option(300, "--samples", help="Calibration samples."),
        size: str | None = opt.IMAGE_SIZE,
        mean: str | None = opt.MEAN,
        std: str | None = opt.STD,
        scale: float | None = opt.SCALE,
        bgr: bool = opt.BGR,
        no_optimize: bool = typer.Option(False, "--no-optimize", help="Skip graph optimization."),
        input_shape: list[str] = opt.INPUT_SHAPE,
        inputs: list[str] = opt.INPUTS,
        outputs: list[str] = opt.OUTPUTS,
        trust_remote_code: bool = opt.TRUST_REMOTE_CODE,
        batch: str | None = typer.Option(
            None,
            "--batch",
            help="Latency batch, then batches for throughput: 1,8,32 (default: the model's fixed batch, else 1).",
        ),
        threads: int | None = opt.THREADS,
        seconds: float = typer.Option(1.0, "--seconds", help="Benchmark time per target."),
        budget: float = typer.Option(10.0, "--budget", help="Seconds per target for the engine-settings search."),
        timeout: float = typer.Option(
            900.0, "--timeout", help="Seconds per target, each in its own process (0: all in this process, no limit)."
        ),
        quick: bool = typer.Option(False, "--quick", help="A first look: short timing and search, fewer samples."),
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
    ) -> None:
        """Port any model to the fastest verified target for this machine: convert, verify, tune, benchmark."""
        from modelport.benchmark.timing import BenchConfig
        from modelport.porting.pipeline import PortOptions, port

        batches = [int(b) for b in opt.split_list(batch)] if batch else []
        options = PortOptions(
            targets=tuple(opt.split_list(to)),
            precisions=tuple(opt.precisions(precision)) if precision.strip() else (),
            optimize=not no_optimize,
            input_shapes=opt.input_shape_items(input_shape),
            batch=batches[0] if batches else None,
            throughput_batches=tuple(batches[1:]),
            threads=threads,
            bench=BenchConfig(warmup=10, seconds=seconds),
            seed=seed,
            eval_limit=eval_limit,
            samples=samples,
            calib=calib,
            eval=eval_source,
            preprocess=opt.image_preprocess(size=size, mean=mean, std=std, scale=scale, bgr=bgr),
            inputs=tuple(opt.split_list(inputs)),
            outputs=tuple(opt.split_list(outputs)),
            trust_remote_code=trust_remote_code,
            budget=budget,
            timeout=timeout or None,
            quick=quick,
            **opt.api_kwargs(PortOptions, **opt.tolerance_fields(rtol, atol)),
        )
        err = Console(stderr=True, highlight=False) if sys.stderr.isatty() else None  # progress: stderr only
        out = console()
        try:
            with out.status("porting…") if out.is_terminal and not as_json else _null():
                report = port(
                    model, out_dir, options=options, progress=(lambda m: err.log(m)) if err is not None else None
                )
        except KeyboardInterrupt:
            out.print(f"interrupted: the targets finished so far are in {out_dir / 'report.md'}", markup=False)
            raise
        if as_json:
            print_json(report.to_json())
        else:
            _print_report(out, report, out_dir)
        if not report:
            raise typer.Exit(code=1)


def _print_report(out: Console, report: PortReport, out_dir: Path) -> None:
    from modelport.porting.render import rich_tables

    out.print(f"source: {report.source} ({report.source_format.value}, {report.source_nodes} nodes)", markup=False)
    if report.route:
        out.print(f"converted: {' → '.join(h.split(' → ')[-1] for h in report.route)} (verified)", markup=False)
    if report.optimization:
        o = report.optimization
        out.print(f"optimized: {o.nodes_before} → {o.nodes_after} nodes ({', '.join(o.passes) or 'unchanged'})")
    if report.choice:
        out.print(report.choice, markup=False)
    if report.source_accuracy:
        a = report.source_accuracy
        out.print(f"source top-1 on {a.dataset}: {a.top1:.2%} ({a.samples} samples)")
    for table in rich_tables(report):
        out.print(table)
    if report.fastest:
        out.print(f"fastest verified target: [bold]{report.fastest}[/]")
    if report.fastest_throughput:
        out.print(f"most samples/s: [bold]{report.fastest_throughput}[/]")
    out.print(f"report: {out_dir / 'report.md'}, {out_dir / 'report.html'}, {out_dir / 'report.json'}")
    if not report:
        bad = [t.label for t in report.targets if t.status in ("mismatch", "failed")]
        out.print(f"[red]not verified: {', '.join(bad)}[/]")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None
