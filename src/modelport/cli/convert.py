"""``modelport convert MODEL --to openvino [--precision fp16] -o OUTDIR``."""

from __future__ import annotations

from pathlib import Path

import typer

from modelport.cli.common import comparison_table, console, print_json, shapes_option


def register(app: typer.Typer) -> None:
    @app.command("convert")
    def convert_cmd(
        model: Path = typer.Argument(..., help="Source model."),
        to: str = typer.Option(..., "--to", help="Target format: openvino, onnx."),
        out_dir: Path = typer.Option(..., "--output", "-o", help="Output directory."),
        precision: str = typer.Option("fp32", "--precision", help="Weights precision: fp32 or fp16."),
        name: str | None = typer.Option(None, "--name", help="Artifact base name (default: source's)."),
        input_shape: list[str] = typer.Option([], "--input-shape", help="NAME:D1,D2,… for verification feeds."),
        no_verify: bool = typer.Option(False, "--no-verify", help="Skip verification against the source."),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ) -> None:
        """Convert a model to another format and verify it against the source."""
        from modelport.convert import convert

        report = convert(
            model,
            to,
            out_dir,
            precision=precision,
            name=name,
            verify=not no_verify,
            input_shapes=shapes_option(input_shape),
        )
        if as_json:
            print_json(report.to_json())
            return
        out = console()
        out.print(
            f"wrote {report.artifact} ({report.size_bytes / 1024:.1f} KiB, {report.engine}, {report.seconds:.2f} s)"
        )
        if report.verification is not None:
            out.print(
                comparison_table(
                    [report.verification], f"verified against the source ({report.verification.tolerance})"
                )
            )
