"""``modelport port [MODEL] [--to RUNTIMES] [--precision …] [--calib/--eval DATA] -o OUTDIR`` — the main job."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

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
        timeout: float = opt.TIMEOUT,
        quick: bool = typer.Option(False, "--quick", help="A first look: short timing and search, fewer samples."),
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
        cluster: str | None = opt.CLUSTER,
        devices: str | None = opt.DEVICES,
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
            timeout=opt.child_timeout(timeout),
            quick=quick,
            **opt.api_kwargs(PortOptions, **opt.tolerance_fields(rtol, atol)),
        )
        out = console()
        if cluster is not None:
            _port_fleet(out, model, out_dir, options, cluster, devices, as_json)
            return
        opt.no_devices_without_cluster(devices)
        try:
            bars = _TargetBars(Console(stderr=True, highlight=False, log_path=False)) if sys.stderr.isatty() else None
            # MODELPORT_PROGRESS=lines: the progress messages as plain lines on stderr (what `serve` reads)
            lines = _print_line if os.environ.get("MODELPORT_PROGRESS") == "lines" and bars is None else None
            with bars or _null():
                report = port(model, out_dir, options=options, progress=bars or lines)
        except KeyboardInterrupt:
            out.print(f"interrupted: the targets finished so far are in {out_dir / 'report.md'}", markup=False)
            raise
        if as_json:
            print_json(report.to_json())
        else:
            _print_report(out, report, out_dir)
        if not report:
            raise typer.Exit(code=1)


def _port_fleet(
    out: Console, model: str | None, out_dir: Path, options: Any, address: str, devices: str | None, as_json: bool
) -> None:
    """``port --cluster``: port on every device; each device's report and artifacts in ``OUT/devices/DEVICE/``."""
    from modelport.cluster.fleet import FleetOptions, fleet_port

    err = Console(stderr=True, highlight=False)
    fleet = FleetOptions(devices=tuple(opt.split_list(devices or "")))
    started = time.time()
    try:
        report = fleet_port(model, out_dir, address=address, options=options, fleet=fleet, progress=err.print)
    except KeyboardInterrupt:
        written = out_dir / "fleet.json"
        if written.exists() and written.stat().st_mtime >= started:  # not an earlier run's
            out.print(f"interrupted: the devices finished so far are in {out_dir / 'fleet.html'}", markup=False)
        raise
    if as_json:
        print_json(report.to_json())
    else:
        for run in report.runs:
            node = f"node {run.node_address}"
            if run.environment is not None:
                node += f", {run.environment.cpu_model}, {run.environment.cpu_count} cores"
            out.print(f"[bold]{run.device}[/] ({node}, {run.seconds:.0f} s)", highlight=False)
            if run.port is not None:
                for table in _rich_tables(run.port):
                    out.print(table)
                out.print(f"fastest verified on {run.device}: [bold]{run.port.fastest or '–'}[/]")
                out.print(f"report: {out_dir / 'devices' / run.device / 'report.html'}", markup=False)
            else:
                out.print(f"[red]{run.device}: {run.error or 'no result'}[/]", markup=True, highlight=False)
        from modelport.cli.cluster import fleet_matrix

        out.print(fleet_matrix(report, "median latency per target and device (★ the device's fastest verified)"))
        if report.build is not None:
            b = report.build
            built = ", ".join(a.label for a in b.artifacts) or "none"
            out.print(f"built once on {b.machine} in {b.seconds:.1f} s: {built}", markup=False)
            for label, why in b.left:
                out.print(f"built on each device instead: {label} ({why})", markup=False)
        out.print(f"fleet report: {out_dir / 'fleet.html'} (and fleet.md, fleet.json)", markup=False)
    if not report:
        raise typer.Exit(code=1)


def _rich_tables(report: PortReport) -> Any:
    from modelport.porting.render import rich_tables

    return rich_tables(report)


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


class _TargetBars:
    """One progress bar per target, on stderr, fed by ``port``'s progress messages (:mod:`modelport.porting.progress`):
    a target's bar appears when it starts, advances on each step with the step's text, and ends with its status;
    messages about no target (preparing the source) are printed above the bars."""

    _STYLE: ClassVar[dict[str, str]] = {"verified": "green", "skipped": "dim", "mismatch": "red", "failed": "red"}

    def __init__(self, err: Console) -> None:
        self._bars = Progress(
            TextColumn("{task.fields[target]:<18}", markup=False),
            BarColumn(bar_width=24),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err,
        )
        self._tasks: dict[str, TaskID] = {}
        self._begun: dict[str, int] = {}
        self._handlers: list[tuple[logging.StreamHandler[Any], Any]] = []

    def __enter__(self) -> _TargetBars:
        stderr = sys.stderr
        self._bars.start()  # replaces sys.stderr with a proxy that prints above the bars
        # log handlers made before hold the real stderr: point them at the proxy while the bars are drawn
        self._handlers = [
            (h, h.setStream(sys.stderr))
            for h in logging.getLogger().handlers
            if isinstance(h, logging.StreamHandler) and h.stream is stderr
        ]
        return self

    def __exit__(self, *args: object) -> None:
        for handler, stream in self._handlers:
            handler.setStream(stream)
        self._bars.stop()

    def __call__(self, message: str) -> None:
        from modelport.porting.progress import parse_message

        event = parse_message(message)
        if event is None:
            self._bars.console.log(message, markup=False)
            return
        task = self._tasks.get(event.target)
        if event.steps is not None or task is None:
            total = float(event.steps) if event.steps is not None else None
            self._tasks[event.target] = self._bars.add_task("starting", total=total, target=event.target)
        elif event.status is not None:
            style = self._STYLE.get(event.status, "")
            total = self._bars.tasks[task].total
            self._bars.update(task, completed=total or 1, total=total or 1, description=f"[{style}]{event.status}[/]")
        else:  # a step begins: the steps before it are done
            self._begun[event.target] = begun = self._begun.get(event.target, 0) + 1
            self._bars.update(task, completed=begun - 1, description=escape(event.text))


def _print_line(message: str) -> None:
    print(f"progress: {message}", file=sys.stderr, flush=True)


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None
