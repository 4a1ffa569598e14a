"""``modelport edit merge | extract | add-outputs | remove-outputs``: graph edits of ONNX models, each verified.

* ``merge A B --connect 0.y:1.x -o OUT`` (a chain; repeat ``--connect``) or ``merge A B C --parallel -o OUT``
  (side by side, equal inputs shared): :func:`modelport.edit.merge`.
* ``extract MODEL --inputs T1,T2 --outputs T3 -o OUT``: :func:`modelport.edit.extract`.
* ``add-outputs MODEL NAME… -o OUT`` / ``remove-outputs MODEL NAME… -o OUT``: :mod:`modelport.edit.outputs`.

What every edit command shares lives here too (``cli/edit_tensors.py`` uses it): the check flags (``--no-verify``,
``--rtol/--atol``, ``--seed``, ``--input-shape``, ``--batch``, ``--feeds``, ``--threads``) become one
:class:`modelport.edit.CheckOptions` in :func:`check_options`, and :func:`finish` writes the result and prints its
report (or the report as JSON).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from modelport.cli import options as opt
from modelport.cli.common import console, print_json

if TYPE_CHECKING:
    from modelport.edit.base import CheckOptions, EditReport, EditResult
    from modelport.edit.openvino_ir import IrEditResult

OUTPUT: Any = typer.Option(..., "--output", "-o", help="Where to write the edited model (never a source).")
VERIFY: Any = typer.Option(
    True,
    "--verify/--no-verify",
    help="Compare the result with its source(s) on the same inputs (ONNX Runtime; OpenVINO for ir-* edits).",
)
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
        threads: int | None = opt.THREADS,
        as_json: bool = opt.JSON,
    ) -> None:
        """Merge ONNX models into one graph (a chain or in parallel), verified against the sources."""
        from modelport.edit import merge

        guard_output(output, *models)  # before the work, not after it
        check = check_options(
            verify, rtol, atol, seed, input_shape=input_shape, batch=batch, feeds=feeds, threads=threads
        )
        result = merge(
            [str(m) for m in models],
            connect=list(connect) or None,
            parallel=parallel,
            prefixes=list(prefix) or None,
            opset=opset,
            check=check,
        )
        finish(result, output, check, as_json)


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
        threads: int | None = opt.THREADS,
        as_json: bool = opt.JSON,
    ) -> None:
        """Cut the sub-graph between --inputs and --outputs into a model of its own, verified on the original's
        inner tensors."""
        from modelport.edit import extract

        guard_output(output, model)  # before the work, not after it
        check = check_options(
            verify, rtol, atol, seed, input_shape=input_shape, batch=batch, feeds=feeds, threads=threads
        )
        result = extract(str(model), opt.split_list(inputs), opt.split_list(outputs), check=check)
        finish(result, output, check, as_json)


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
        threads: int | None = opt.THREADS,
        as_json: bool = opt.JSON,
    ) -> None:
        from modelport.edit import add_outputs, remove_outputs

        edit = add_outputs if adding else remove_outputs
        guard_output(output, model)  # before the work, not after it
        check = check_options(
            verify, rtol, atol, seed, input_shape=input_shape, batch=batch, feeds=feeds, threads=threads
        )
        finish(edit(str(model), opt.split_list(names), check=check), output, check, as_json)

    outputs_cmd.__doc__ = (
        "Make inner tensors graph outputs (typed by shape inference); the original outputs are verified unchanged."
        if adding
        else "Drop graph outputs and the nodes only they used; the remaining outputs are verified unchanged."
    )


# --- shared by every edit command (cli/edit_tensors.py too) ----------------------------------------------


def check_options(
    verify: bool,
    rtol: float | None,
    atol: float | None,
    seed: int,
    *,
    input_shape: list[str] | None = None,
    batch: int | None = None,
    feeds: Path | None = None,
    threads: int | None = None,
) -> CheckOptions:
    """The shared check flags as the edits' :class:`~modelport.edit.base.CheckOptions` (the fp32 tolerance policy
    under ``--rtol/--atol``)."""
    from modelport.edit import CheckOptions

    return CheckOptions(
        verify=verify,
        tolerance=opt.tolerance("fp32", rtol, atol),
        seed=seed,
        input_shapes=opt.input_shape_items(input_shape),
        batch=batch,
        feeds=feeds,
        threads=threads,
    )


def guard_output(output: Path, *models: Path) -> None:
    """Refuse an output that would replace an input model (or its external data, an IR's .bin) before the edit and
    its verification run; the edit's own write checks again."""
    from modelport.edit.base import refuse_source

    refuse_source(output, [str(m) for m in models])


def finish(result: EditResult | IrEditResult, output: Path, check: CheckOptions, as_json: bool) -> None:
    """Write the result to ``output``; print its report as JSON or as :func:`render` does."""
    report = result.write(output)
    if as_json:
        print_json(report.to_json())
    else:
        render(report, verified=check.verify)


def render(report: EditReport, verified: bool = True) -> None:
    """What changed, node counts, the result's inputs/outputs and the verification line."""
    out = console()
    sources = " + ".join(Path(s).name for s in report.sources)
    out.print(f"{escape(report.edit)}: {escape(sources)} → {escape(report.output)}")
    for line in report.changes:
        out.print(f"  {escape(line)}")
    out.print(f"nodes: {report.nodes_before} → {report.nodes_after}; {report.seconds:.2f} s")
    out.print(f"inputs: {escape(', '.join(report.inputs))}")
    out.print(f"outputs: {escape(', '.join(report.outputs))}")
    if report.verification is None:
        out.print("verification: skipped (--no-verify)" if not verified else "verification: not possible (see above)")
        return
    v = report.verification
    worst = v.worst
    where = f" (output {worst.name!r})" if worst is not None else ""
    tol = escape(str(v.tolerance))
    out.print(f"verification: [green]pass[/] — worst max abs error {v.max_abs:.3g}{escape(where)}, tolerance {tol}")
