"""``modelport edit merge | extract | add-outputs | remove-outputs``: graph edits of ONNX models, each verified.

* ``merge A B --connect 0.y:1.x -o OUT`` (a chain; repeat ``--connect``) or ``merge A B C --parallel -o OUT``
  (side by side, equal inputs shared): :func:`modelport.edit.merge.merge`.
* ``extract MODEL --inputs T1,T2 --outputs T3 -o OUT``: :func:`modelport.edit.extract.extract`.
* ``add-outputs MODEL NAME… -o OUT`` / ``remove-outputs MODEL NAME… -o OUT``: :mod:`modelport.edit.outputs`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from modelport.cli import options as opt
from modelport.cli.common import console, print_json

if TYPE_CHECKING:
    from modelport.edit.base import EditReport, EditResult

OUTPUT: Any = typer.Option(..., "--output", "-o", help="Where to write the edited model (never a source).")
VERIFY: Any = typer.Option(True, "--verify/--no-verify", help="Compare the result with the sources in ONNX Runtime.")
BATCH: Any = typer.Option(None, "--batch", help="Verification: size of every input's dynamic leading dim.")


def register(edit_app: typer.Typer) -> None:
    """Add the sub-commands to ``modelport edit``."""
    _register_merge(edit_app)
    _register_extract(edit_app)
    for verb in ("add-outputs", "remove-outputs"):
        _register_outputs(edit_app, verb)


def _register_merge(edit_app: typer.Typer) -> None:
    @edit_app.command("merge")
    def merge_cmd(
        models: list[Path] = typer.Argument(..., help="Two or more ONNX models, in chain order (never modified)."),
        output: Path = OUTPUT,
        connect: list[str] = typer.Option(
            [],
            "--connect",
            metavar="SRC:DST",
            help="Chain: an output of an earlier model feeds an input of a later one (repeatable). Each side is a "
            "tensor name or K.name with K the model's 0-based position, e.g. 0.logits:1.x.",
        ),
        parallel: bool = typer.Option(
            False, "--parallel", help="Run the models side by side; inputs with equal name, dtype and shape are shared."
        ),
        prefix: list[str] = typer.Option(
            [],
            "--prefix",
            help="Name prefix per model, in order (repeat once per model; '' for none). Default: m0/, m1/ … on "
            "every model when names collide, else none.",
        ),
        opset: int | None = typer.Option(
            None, "--opset", help="Default-domain opset of the result (default: highest)."
        ),
        verify: bool = VERIFY,
        input_shape: list[str] = opt.INPUT_SHAPE,
        batch: int | None = BATCH,
        feeds: Path | None = opt.FEEDS,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
    ) -> None:
        """Merge ONNX models into one graph (a chain or in parallel), verified against the sources."""
        from modelport.edit.merge import merge

        result = merge(
            [str(m) for m in models],
            connect=list(connect) or None,
            parallel=parallel,
            prefixes=list(prefix) or None,
            opset=opset,
            verify=verify,
            tolerance=opt.tolerance("fp32", rtol, atol),
            seed=seed,
            input_shapes=opt.input_shapes(input_shape),
            batch=batch,
            feeds=feeds,
        )
        _finish(result, output, as_json)


def _register_extract(edit_app: typer.Typer) -> None:
    @edit_app.command("extract")
    def extract_cmd(
        model: Path = typer.Argument(..., help="The ONNX model (never modified)."),
        output: Path = OUTPUT,
        inputs: list[str] = opt.INPUTS,
        outputs: list[str] = opt.OUTPUTS,
        verify: bool = VERIFY,
        input_shape: list[str] = opt.INPUT_SHAPE,
        batch: int | None = BATCH,
        feeds: Path | None = opt.FEEDS,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
    ) -> None:
        """Cut the sub-graph between --inputs and --outputs into a model of its own, verified on the original's
        inner tensors."""
        from modelport.edit.extract import extract

        result = extract(
            str(model),
            opt.split_list(inputs),
            opt.split_list(outputs),
            verify=verify,
            tolerance=opt.tolerance("fp32", rtol, atol),
            seed=seed,
            input_shapes=opt.input_shapes(input_shape),
            batch=batch,
            feeds=feeds,
        )
        _finish(result, output, as_json)


def _register_outputs(edit_app: typer.Typer, verb: str) -> None:
    adding = verb == "add-outputs"
    names_help = "Inner tensors to expose as outputs" if adding else "Graph outputs to drop"

    @edit_app.command(verb)
    def outputs_cmd(
        model: Path = typer.Argument(..., help="The ONNX model (never modified)."),
        names: list[str] = typer.Argument(..., help=f"{names_help} (comma-separated or several arguments)."),
        output: Path = OUTPUT,
        verify: bool = VERIFY,
        input_shape: list[str] = opt.INPUT_SHAPE,
        batch: int | None = BATCH,
        feeds: Path | None = opt.FEEDS,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
    ) -> None:
        from modelport.edit.outputs import add_outputs, remove_outputs

        edit = add_outputs if adding else remove_outputs
        result = edit(
            str(model),
            opt.split_list(names),
            verify=verify,
            tolerance=opt.tolerance("fp32", rtol, atol),
            seed=seed,
            input_shapes=opt.input_shapes(input_shape),
            batch=batch,
            feeds=feeds,
        )
        _finish(result, output, as_json)

    outputs_cmd.__doc__ = (
        "Make inner tensors graph outputs (typed by shape inference); the original outputs are verified unchanged."
        if adding
        else "Drop graph outputs and the nodes only they used; the remaining outputs are verified unchanged."
    )


def _finish(result: EditResult, output: Path, as_json: bool) -> None:
    report = result.write(output)
    if as_json:
        print_json(report.to_json())
    else:
        render(report)


def render(report: EditReport) -> None:
    """What changed, node counts, the result's inputs/outputs and the verification line."""
    out = console()
    sources = " + ".join(Path(s).name for s in report.sources)
    out.print(f"{report.edit}: {escape(sources)} → {escape(report.output)}")
    for line in report.changes:
        out.print(f"  {escape(line)}")
    out.print(f"nodes: {report.nodes_before} → {report.nodes_after}; {report.seconds:.2f} s")
    out.print(f"inputs: {escape(', '.join(report.inputs))}")
    out.print(f"outputs: {escape(', '.join(report.outputs))}")
    if report.verification is None:
        out.print("verification: skipped (--no-verify)")
        return
    v = report.verification
    worst = v.worst
    where = f" (output {worst.name!r})" if worst is not None else ""
    tol = escape(str(v.tolerance))
    out.print(f"verification: [green]pass[/] — worst max abs error {v.max_abs:.3g}{escape(where)}, tolerance {tol}")
