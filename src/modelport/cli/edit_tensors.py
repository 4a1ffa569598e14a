"""``modelport edit rename | set-batch | set-input-shape | set-opset | shrink-constants | ir-rename | ir-set-shape``.

Each sub-command calls one edit of :mod:`modelport.edit` (``rename``, ``shapes``, ``constants``, ``openvino_ir``),
writes the result with ``-o`` and prints what changed, the node counts and the verification line; ``--json`` prints
the report instead. An error is one line and nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from modelport.cli import options as opt
from modelport.cli.common import console, print_json

if TYPE_CHECKING:
    from modelport.edit.base import EditReport

_OUTPUT = typer.Option(..., "--output", "-o", help="Where to write the edited model (never one of the inputs).")
_VERIFY = typer.Option(True, "--verify/--no-verify", help="Compare the edited model with the original.")
_MODEL = typer.Argument(..., help="The ONNX model to edit (never modified).")
_IR = typer.Argument(..., help="The OpenVINO IR (.xml, with its .bin beside it) to edit (never modified).")
_MAP = typer.Option([], "--map", metavar="OLD=NEW", help="Rename the tensor (or node) OLD to NEW (repeatable).")


def register(edit_app: typer.Typer) -> None:
    """Add the sub-commands to ``modelport edit``."""
    _register_onnx(edit_app)
    _register_ir(edit_app)


def _register_onnx(edit_app: typer.Typer) -> None:
    @edit_app.command("rename")
    def rename_cmd(
        model: Path = _MODEL,
        output: Path = _OUTPUT,
        mapping: list[str] = _MAP,
        replace: list[str] = typer.Option(
            [],
            "--replace",
            metavar="OLD:NEW",
            help="Replace the substring OLD by NEW in every name (repeatable; write OLD=NEW when names hold ':').",
        ),
        what: str = typer.Option("tensors", "--what", help="Which names: tensors, nodes or both."),
        input_shape: list[str] = opt.INPUT_SHAPE,
        verify: bool = _VERIFY,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
    ) -> None:
        """Rename tensors and/or nodes (exact names or substrings), everywhere they appear, sub-graphs included."""
        from modelport.edit.rename import rename

        result = rename(
            model,
            _pairs(mapping, "--map", "="),
            replace=list(_pairs(replace, "--replace", ":").items()),
            what=what,
            verify=verify,
            tolerance=opt.tolerance("fp32", rtol, atol),
            seed=seed,
            input_shapes=opt.input_shapes(input_shape),
        )
        _finish(result.write(output), model, output, verify, as_json)

    @edit_app.command("set-batch")
    def set_batch_cmd(
        model: Path = _MODEL,
        output: Path = _OUTPUT,
        batch: int = typer.Option(..., "--batch", help="The batch size for every input's dynamic leading dim."),
        verify: bool = _VERIFY,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
    ) -> None:
        """Fix every input's dynamic leading (batch) dim; inner shapes are inferred again."""
        from modelport.edit.shapes import set_batch

        result = set_batch(model, batch, verify=verify, tolerance=opt.tolerance("fp32", rtol, atol), seed=seed)
        _finish(result.write(output), model, output, verify, as_json)

    @edit_app.command("set-input-shape")
    def set_input_shape_cmd(
        model: Path = _MODEL,
        output: Path = _OUTPUT,
        input_shape: list[str] = opt.INPUT_SHAPE,
        verify: bool = _VERIFY,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
    ) -> None:
        """Give inputs whole static shapes (--input-shape NAME:D0,D1,…); inner shapes are inferred again."""
        from modelport.edit.shapes import set_input_shape

        tol = opt.tolerance("fp32", rtol, atol)
        result = set_input_shape(model, opt.input_shapes(input_shape), verify=verify, tolerance=tol, seed=seed)
        _finish(result.write(output), model, output, verify, as_json)

    @edit_app.command("set-opset")
    def set_opset_cmd(
        model: Path = _MODEL,
        output: Path = _OUTPUT,
        version: int = typer.Option(..., "--opset", help="The default-domain opset to convert to."),
        input_shape: list[str] = opt.INPUT_SHAPE,
        verify: bool = _VERIFY,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
    ) -> None:
        """Convert the model to another opset (onnx.version_converter)."""
        from modelport.edit.shapes import set_opset

        tol = opt.tolerance("fp32", rtol, atol)
        shapes = opt.input_shapes(input_shape)
        result = set_opset(model, version, verify=verify, tolerance=tol, seed=seed, input_shapes=shapes)
        _finish(result.write(output), model, output, verify, as_json)

    @edit_app.command("shrink-constants")
    def shrink_constants_cmd(
        model: Path = _MODEL,
        output: Path = _OUTPUT,
        external_threshold: int | None = typer.Option(
            None,
            "--external-threshold",
            metavar="BYTES",
            help="Store initializers of at least BYTES bytes in OUT.data beside the model.",
        ),
        input_shape: list[str] = opt.INPUT_SHAPE,
        verify: bool = _VERIFY,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
    ) -> None:
        """Merge equal initializers and Constant nodes; optionally move big initializers to external data."""
        from modelport.edit.constants import shrink_constants

        tol = opt.tolerance("fp32", rtol, atol)
        shapes = opt.input_shapes(input_shape)
        result = shrink_constants(
            model, external_threshold=external_threshold, verify=verify, tolerance=tol, seed=seed, input_shapes=shapes
        )
        _finish(result.write(output), model, output, verify, as_json)


def _register_ir(edit_app: typer.Typer) -> None:
    @edit_app.command("ir-rename")
    def ir_rename_cmd(
        model: Path = _IR,
        output: Path = typer.Option(..., "--output", "-o", help="The .xml to write (its .bin is written beside it)."),
        mapping: list[str] = typer.Option(
            [], "--map", metavar="OLD=NEW", help="Rename the input or output tensor OLD to NEW (repeatable)."
        ),
        verify: bool = typer.Option(True, "--verify/--no-verify", help="Run both IRs in OpenVINO and compare."),
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
    ) -> None:
        """Rename inputs/outputs of an OpenVINO IR (OpenVINO's API; weights kept bit for bit)."""
        from modelport.edit.openvino_ir import ir_rename

        tol = opt.tolerance("fp32", rtol, atol)
        result = ir_rename(model, _pairs(mapping, "--map", "="), verify=verify, tolerance=tol, seed=seed)
        _finish(result.write(output), model, output, verify, as_json)

    @edit_app.command("ir-set-shape")
    def ir_set_shape_cmd(
        model: Path = _IR,
        output: Path = typer.Option(..., "--output", "-o", help="The .xml to write (its .bin is written beside it)."),
        input_shape: list[str] = opt.INPUT_SHAPE,
        verify: bool = typer.Option(True, "--verify/--no-verify", help="Run both IRs in OpenVINO and compare."),
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        as_json: bool = opt.JSON,
    ) -> None:
        """Reshape inputs of an OpenVINO IR (Model.reshape; OpenVINO infers the rest of the graph)."""
        from modelport.edit.openvino_ir import ir_set_shape

        tol = opt.tolerance("fp32", rtol, atol)
        result = ir_set_shape(model, opt.input_shapes(input_shape), verify=verify, tolerance=tol, seed=seed)
        _finish(result.write(output), model, output, verify, as_json)


def _pairs(values: list[str], flag: str, sep: str) -> dict[str, str]:
    """``OLD=NEW`` (split at the first ``=``) or ``OLD:NEW`` (at the last ``:``) values as ``{old: new}``."""
    from modelport.errors import InvalidInputError

    pairs: dict[str, str] = {}
    for value in values:
        if "=" in value:
            old, _, new = value.partition("=")
        elif sep == ":" and ":" in value:
            old, _, new = value.rpartition(":")
        else:
            raise InvalidInputError(f"{flag} takes OLD{sep}NEW, got {value!r}")
        if not old:
            raise InvalidInputError(f"{flag} {value!r} has an empty OLD part", hint=f"write {flag} OLD{sep}NEW")
        pairs[old] = new
    return pairs


def _finish(report: EditReport, model: Path, output: Path, verify: bool, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
    else:
        _render(report, model, output, verify)


def _render(report: EditReport, model: Path, output: Path, verify: bool) -> None:
    """What changed, node counts and the verification line (as ``optimize`` prints it)."""
    out = console()
    out.print(f"{escape(report.edit)}: {escape(model.name)} → {escape(str(output))}")
    for line in report.changes:
        out.print(f"  {escape(line)}")
    out.print(f"nodes: {report.nodes_before} → {report.nodes_after}; {report.seconds:.2f} s")
    if report.verification is None:
        out.print("verification: skipped (--no-verify)" if not verify else "verification: not possible (see above)")
        return
    v = report.verification
    worst = v.worst
    where = f" (output {worst.name!r})" if worst is not None else ""
    tol = escape(str(v.tolerance))
    out.print(f"verification: [green]pass[/] — worst max abs error {v.max_abs:.3g}{escape(where)}, tolerance {tol}")
