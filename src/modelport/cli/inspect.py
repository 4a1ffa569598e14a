"""``modelport inspect MODEL``."""

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
    from modelport.inspection import ModelSummary


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect_cmd(
        model: Path = typer.Argument(..., help="ONNX (.onnx), OpenVINO IR (.xml), TFLite file or SavedModel dir."),
        as_json: bool = opt.JSON,
    ) -> None:
        """Show a model's inputs, outputs, opsets, op types, parameters and external data."""
        from modelport.inspection import inspect

        summary = inspect(model)
        if as_json:
            print_json(summary.to_json())
            return
        out = console()
        out.print(f"[bold]{escape(summary.path)}[/] ({summary.format.value}, {summary.file_bytes / 1024:.1f} KiB)")
        if summary.producer or summary.ir_version is not None:
            out.print(f"producer: {summary.producer or '?'}  ir_version: {summary.ir_version}")
        if summary.opsets:
            out.print("opsets: " + ", ".join(f"{d} {v}" for d, v in summary.opsets))
        io = Table(title="inputs and outputs", title_justify="left")
        for col in ("kind", "name", "dtype", "shape"):
            io.add_column(col)
        for kind, specs in (("input", summary.inputs), ("output", summary.outputs)):
            for s in specs:
                io.add_row(kind, escape(s.name), s.dtype, escape(s.shape_text()))  # "[batch, 8]" is not markup
        out.print(io)
        out.print(
            f"nodes: {summary.node_count}  parameters: {summary.parameter_count:,} "
            f"({summary.parameter_bytes / 2**20:.2f} MiB)"
        )
        if summary.external_data:
            out.print("external data: " + ", ".join(summary.external_data))
        ops = Table(title="op types", title_justify="left")
        ops.add_column("op")
        ops.add_column("count", justify="right")
        for op, n in summary.op_histogram:
            ops.add_row(op, str(n))
        out.print(ops)
        _print_tf_extras(out, summary)


def _print_tf_extras(out: Console, summary: ModelSummary) -> None:
    """Signatures (SavedModel/TFLite, like ``saved_model_cli show``) and TFLite quantization parameters."""
    for sig in summary.signatures:
        table = Table(title=f"signature {sig.key!r} ({sig.method})", title_justify="left")
        for col in ("kind", "key", "dtype", "shape"):
            table.add_column(col)
        for kind, specs in (("input", sig.inputs), ("output", sig.outputs)):
            for s in specs:
                dims = "unknown rank" if s.shape is None else str([-1 if d is None else d for d in s.shape])
                table.add_row(kind, escape(s.name), s.dtype, escape(dims))
        out.print(table)
    if summary.tensor_count:
        out.print(f"tensors: {summary.tensor_count}  quantized: {len(summary.quantized)}")
    if summary.quantized:
        table = Table(title="quantization (scale, zero point)", title_justify="left")
        for col in ("tensor", "dtype", "scale", "zero point", "axis"):
            table.add_column(col)
        for q in summary.quantized[:50]:
            scale = (
                f"{q.scales[0]:.6g}"
                if len(q.scales) == 1
                else f"{len(q.scales)} scales ({min(q.scales):.3g}…{max(q.scales):.3g})"
            )
            zero = str(q.zero_points[0]) if len(set(q.zero_points)) == 1 else f"{len(q.zero_points)} values"
            table.add_row(escape(q.name), q.dtype, scale, zero, "-" if q.axis < 0 else str(q.axis))
        out.print(table)
