"""``modelport convert MODEL --to FORMATS [--via FORMATS] -o OUTDIR``: conversion chains, every hop verified.

Example (the seeds' stereo-depth route in one command)::

    modelport convert model.pb --inputs input:0 --outputs out:0 --input-shape input:0:1,480,640,6 \\
        --via saved_model,tflite --to onnx,openvino,tflite --inputs-as-nchw input -o out/
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from modelport.cli import options as opt
from modelport.cli.common import comparison_table, console, print_json


def _dynamic_axes(values: list[str]) -> dict[str, tuple[int, ...]]:
    """``x:0,2`` items → ``{"x": (0, 2)}``."""
    from modelport.errors import InvalidInputError

    axes: dict[str, tuple[int, ...]] = {}
    for item in values:
        name, _, dims = item.rpartition(":")
        try:
            axes[name] = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise InvalidInputError(f"cannot parse --dynamic-axes {item!r}", hint="write NAME:AXIS[,AXIS…]") from None
        if not name:
            raise InvalidInputError(f"cannot parse --dynamic-axes {item!r}", hint="write NAME:AXIS[,AXIS…]")
    return axes


def hop_table(report: object) -> Table:
    """One row per hop: route, runtime, engine, seconds, worst error against the previous artifact and the source."""
    from modelport.conversion.chain import ChainReport

    assert isinstance(report, ChainReport)
    table = Table(title="hops (each verified against the previous artifact and the source)", title_justify="left")
    for col in ("hop", "artifact", "runtime", "engine", "s", "vs previous", "vs source", "tolerance", "result"):
        table.add_column(col, justify="right" if col in ("s", "vs previous", "vs source") else "left")
    for hop in report.hops:
        prev, src = hop.against_previous, hop.against_source
        result = "-" if src is None else ("[green]pass[/]" if hop.passed else "[red]FAIL[/]")
        table.add_row(
            escape(hop.label) + (" ★" if hop.target else ""),
            escape(Path(hop.conversion.artifact).name),
            hop.runtime,
            escape(hop.conversion.engine),
            f"{hop.conversion.seconds:.1f}",
            "-" if prev is None else f"{prev.max_abs:.3g}",
            "-" if src is None else f"{src.max_abs:.3g}",
            "-" if src is None else escape(str(src.tolerance)),
            result,
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command("convert")
    def convert_cmd(
        model: str = typer.Argument(..., help="Source: model file, SavedModel dir, or package.module:factory."),
        to: list[str] = typer.Option(
            ..., "--to", help="Target format(s): onnx, openvino, tflite, saved_model, tensorrt."
        ),
        out_dir: Path = typer.Option(..., "--output", "-o", help="Output directory."),
        via: list[str] = typer.Option(
            [], "--via", help="Formats to pass through first, in order (saved_model,tflite)."
        ),
        precision: str = opt.precision_option(),
        name: str | None = typer.Option(None, "--name", help="Artifact base name (default: source's)."),
        inputs: list[str] = opt.INPUTS,
        outputs: list[str] = opt.OUTPUTS,
        input_shape: list[str] = opt.INPUT_SHAPE,
        inputs_as_nchw: list[str] = typer.Option(
            [], "--inputs-as-nchw", help="Inputs tf2onnx transposes NHWC→NCHW (and onnx2tf keeps NCHW)."
        ),
        dynamic_axes: list[str] = typer.Option([], "--dynamic-axes", help="PyTorch → ONNX: NAME:AXIS[,AXIS…]."),
        trust_remote_code: bool = opt.TRUST_REMOTE_CODE,
        opset: int = typer.Option(17, "--opset", help="ONNX opset."),
        feeds: Path | None = opt.FEEDS,
        seed: int = opt.SEED,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        threads: int | None = opt.THREADS,
        optimize: bool = typer.Option(
            False, "--optimize", help="Optimize every ONNX artifact converted from another format (modelport optimize)."
        ),
        no_verify: bool = typer.Option(False, "--no-verify", help="Skip verification."),
        as_json: bool = opt.JSON,
    ) -> None:
        """Convert a model through a chain of formats, verifying every hop against the previous one and the source."""
        from modelport.conversion import ChainOptions, ConvertOptions, convert_chain

        feed_arrays = _load_feeds(feeds) if feeds is not None else None
        out = None if as_json else console()
        prec = opt.precision(precision)
        artifacts = ConvertOptions(
            precision=prec,
            name=name or "",
            inputs=tuple(opt.split_list(inputs)),
            outputs=tuple(opt.split_list(outputs)),
            input_shapes=opt.input_shape_items(input_shape),
            inputs_as_nchw=tuple(opt.split_list(inputs_as_nchw)),
            dynamic_axes=tuple(_dynamic_axes(opt.split_list(dynamic_axes)).items()),
            trust_remote_code=trust_remote_code,
            opset=opset,
        )
        options = ChainOptions(
            artifacts,
            via=tuple(opt.split_list(via)),
            verify=not no_verify,
            seed=seed,
            tolerance=opt.tolerance(prec, rtol, atol),
            threads=threads,
            optimize=optimize,
        )
        report = convert_chain(model, opt.split_list(to), out_dir, options=options, feeds=feed_arrays)
        if as_json:
            # one target and no --via: the target's ConversionReport (as `modelport.conversion.convert` returns it)
            single = len(report.hops) == 1
            hop = report.hops[-1]
            print_json(
                dataclasses.replace(hop.conversion, verification=hop.against_source).to_json()
                if single
                else report.to_json()
            )
            return
        assert out is not None
        for hop in report.hops:
            if hop.target:
                c = hop.conversion
                out.print(
                    f"wrote {escape(c.artifact)} ({c.size_bytes / 1024:.1f} KiB, {escape(c.engine)}, {c.seconds:.2f} s)"
                )
        out.print(hop_table(report))
        for hop in report.hops:
            for note in hop.conversion.notes:
                out.print(f"  {escape(hop.label)}: {escape(note)}")
        last = [h.against_source for h in report.hops if h.target and h.against_source is not None]
        if last:
            out.print(comparison_table(last, f"targets against the source ({escape(str(last[0].tolerance))})"))


def _load_feeds(path: Path) -> dict[str, np.ndarray]:
    """Arrays from an .npz (keys = input names) or an .npy (a single-input model's feed, paired by position)."""
    from modelport.errors import InvalidInputError, ModelLoadError

    if not path.exists():
        raise ModelLoadError("feed file not found", path=path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    if path.suffix == ".npy":
        return {"input": np.load(path, allow_pickle=False)}
    raise InvalidInputError("feed files must be .npy or .npz", path=path)
