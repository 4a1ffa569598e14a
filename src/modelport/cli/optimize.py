"""``modelport optimize MODEL -o OUT [--passes …] [--skip …] [--input-shape …] [--batch N] [--opset N]``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from modelport.cli import options as opt
from modelport.cli.common import console, onnx_feeds, print_json

if TYPE_CHECKING:
    from modelport.passes import OptimizeReport, PassSpec


def register(app: typer.Typer) -> None:
    """Add the ``optimize`` verb to the app."""

    @app.command("optimize")
    def optimize_cmd(
        model: Path | None = typer.Argument(None, help="The ONNX model to optimize (never modified)."),
        output: Path | None = typer.Option(None, "--output", "-o", help="Where to write the optimized model."),
        passes: list[str] = typer.Option(
            [], "--passes", help="Comma-separated passes to run ('default' = the default pipeline)."
        ),
        skip: list[str] = typer.Option([], "--skip", help="Comma-separated passes to leave out."),
        input_shape: list[str] = opt.INPUT_SHAPE,
        batch: int | None = typer.Option(None, "--batch", help="Fix every input's dynamic leading dim."),
        opset: int | None = typer.Option(None, "--opset", help="Convert to this default-domain opset."),
        verify: bool = typer.Option(True, "--verify/--no-verify", help="Compare outputs in ONNX Runtime."),
        feeds: Path | None = opt.FEEDS,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        threads: int | None = opt.THREADS,
        list_passes: bool = typer.Option(False, "--list-passes", help="List the passes and exit."),
        as_json: bool = opt.JSON,
    ) -> None:
        """Optimize an ONNX graph (fold, fuse, eliminate) and verify it against the original."""
        from modelport.errors import InvalidInputError
        from modelport.passes import OptimizeOptions, optimize, registry
        from modelport.passes.api import onnx_outputs, refuse_overwrite

        if list_passes:
            _print_passes(registry())
            return
        if model is None or output is None:
            raise InvalidInputError("optimize needs a MODEL and --output/-o OUT", hint="see modelport optimize --help")
        options = OptimizeOptions(
            passes=tuple(opt.split_list(passes)) or None,
            skip=tuple(opt.split_list(skip)),
            input_shapes=opt.input_shape_items(input_shape),
            batch=batch,
            opset=opset,
            verify=verify,
            tolerance=opt.tolerance("fp32", rtol, atol),
            seed=seed,
            threads=threads,
        )
        refuse_overwrite(onnx_outputs(output), [model])  # before the work, not after it
        feed_data = onnx_feeds(feeds, model) if feeds is not None else None
        report = optimize(model, options=options, feeds=feed_data).write(output)
        if as_json:
            print_json(report.to_json())
        else:
            _render(report, model, output)


def _render(report: OptimizeReport, model: Path, output: Path) -> None:
    """Per-pass table, node counts, sizes and the verification line."""
    out = console()
    table = Table(title=f"{model.name} → {output}", title_justify="left")
    for col in ("pass", "modified", "nodes before", "nodes after", "runs", "seconds"):
        table.add_column(col, justify="left" if col in ("pass", "modified") else "right")
    for p in report.passes:
        table.add_row(
            p.name, "yes" if p.modified else "no", str(p.nodes_before), str(p.nodes_after), str(p.runs),
            f"{p.seconds:.3f}",
        )  # fmt: skip
    out.print(table)
    out.print(
        f"nodes: {report.nodes_before} → {report.nodes_after} ({report.removed_fraction:.1%} removed) in "
        f"{report.iterations} iteration(s); size {report.size_before / 2**20:.2f} → "
        f"{report.size_after / 2**20:.2f} MiB; opset {report.opset_before} → {report.opset_after}; "
        f"{report.seconds:.2f} s"
    )
    for name, why in report.rolled_back:
        out.print(f"[yellow]rolled back[/] {escape(name)}: its result {escape(why)} — optimized again without it")
    if report.verification is None:
        out.print("verification: skipped (--no-verify)")
    else:
        v = report.verification
        worst = v.worst
        where = f" (output {worst.name!r})" if worst is not None else ""
        tol = escape(str(v.tolerance))
        out.print(f"verification: [green]pass[/] — worst max abs error {v.max_abs:.3g}{escape(where)}, tolerance {tol}")


def _print_passes(specs: dict[str, PassSpec]) -> None:
    table = Table(title="passes (in pipeline order within each phase)", title_justify="left")
    for col in ("name", "phase", "default", "engine", "what it does"):
        table.add_column(col)
    for spec in specs.values():
        table.add_row(
            spec.name, spec.phase.name.lower(), "yes" if spec.default else "opt-in", spec.engine, spec.summary
        )
    console().print(table)
