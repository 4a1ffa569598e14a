"""``modelport edit rename | set-batch | set-input-shape | set-opset | shrink-constants | ir-rename | ir-set-shape``.

Each sub-command calls one edit of :mod:`modelport.edit` (``rename``, ``shapes``, ``constants``, ``openvino_ir``),
writes the result with ``-o`` and prints what changed, the node counts and the verification line; ``--json`` prints
the report instead. An error is one line and nothing is written. The check flags and the printing are the ones of
every edit command (:func:`modelport.cli.edit_graph.check_options`, :func:`~modelport.cli.edit_graph.finish`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from modelport.cli import options as opt
from modelport.cli.edit_graph import BATCH, OUTPUT, VERIFY, check_options, finish, guard_output

_MODEL: Any = typer.Argument(..., help="The ONNX model to edit (never modified).")
_IR: Any = typer.Argument(..., help="The OpenVINO IR (.xml, with its .bin beside it) to edit (never modified).")
_IR_OUTPUT: Any = typer.Option(..., "--output", "-o", help="The .xml to write (its .bin is written beside it).")


def register(edit_app: typer.Typer) -> None:
    """Add the sub-commands to ``modelport edit``."""
    _register_rename(edit_app)
    _register_shapes(edit_app)
    _register_constants(edit_app)
    _register_ir(edit_app)


def _register_rename(edit_app: typer.Typer) -> None:
    @edit_app.command("rename")
    def rename_cmd(
        model: Path = _MODEL,
        output: Path = OUTPUT,
        mapping: list[str] = typer.Option(
            [], "--map", metavar="OLD=NEW", help="Rename the tensor (or node) OLD to NEW (repeatable)."
        ),
        replace: list[str] = typer.Option(
            [],
            "--replace",
            metavar="OLD:NEW",
            help="Replace the substring OLD by NEW in every name (repeatable; write OLD=NEW when names hold ':').",
        ),
        what: str = typer.Option("tensors", "--what", help="Which names: tensors, nodes or both."),
        input_shape: list[str] = opt.INPUT_SHAPE,
        batch: int | None = BATCH,
        feeds: Path | None = opt.FEEDS,
        verify: bool = VERIFY,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        threads: int | None = opt.THREADS,
        as_json: bool = opt.JSON,
    ) -> None:
        """Rename tensors and/or nodes (exact names or substrings), everywhere they appear, sub-graphs included."""
        from modelport.edit import rename

        guard_output(output, model)  # before the work, not after it
        check = check_options(
            verify, rtol, atol, seed, input_shape=input_shape, batch=batch, feeds=feeds, threads=threads
        )
        renames = list(_pairs(replace, "--replace", ":").items())
        result = rename(model, _pairs(mapping, "--map", "="), replace=renames, what=what, check=check)
        finish(result, output, check, as_json)


def _register_shapes(edit_app: typer.Typer) -> None:
    @edit_app.command("set-batch")
    def set_batch_cmd(
        model: Path = _MODEL,
        output: Path = OUTPUT,
        batch: int = typer.Option(..., "--batch", help="The batch size for every input's dynamic leading dim."),
        feeds: Path | None = opt.FEEDS,
        verify: bool = VERIFY,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        threads: int | None = opt.THREADS,
        as_json: bool = opt.JSON,
    ) -> None:
        """Fix every input's dynamic leading (batch) dim; inner shapes are inferred again."""
        from modelport.edit import set_batch

        guard_output(output, model)  # before the work, not after it
        check = check_options(verify, rtol, atol, seed, feeds=feeds, threads=threads)
        finish(set_batch(model, batch, check=check), output, check, as_json)

    @edit_app.command("set-input-shape")
    def set_input_shape_cmd(
        model: Path = _MODEL,
        output: Path = OUTPUT,
        input_shape: list[str] = opt.INPUT_SHAPE,
        feeds: Path | None = opt.FEEDS,
        verify: bool = VERIFY,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        threads: int | None = opt.THREADS,
        as_json: bool = opt.JSON,
    ) -> None:
        """Give inputs whole static shapes (--input-shape NAME:D0,D1,…); inner shapes are inferred again."""
        from modelport.edit import set_input_shape

        guard_output(output, model)  # before the work, not after it
        check = check_options(verify, rtol, atol, seed, feeds=feeds, threads=threads)
        finish(set_input_shape(model, opt.input_shapes(input_shape), check=check), output, check, as_json)

    @edit_app.command("set-opset")
    def set_opset_cmd(
        model: Path = _MODEL,
        output: Path = OUTPUT,
        version: int = typer.Option(..., "--opset", help="The default-domain opset to convert to."),
        input_shape: list[str] = opt.INPUT_SHAPE,
        batch: int | None = BATCH,
        feeds: Path | None = opt.FEEDS,
        verify: bool = VERIFY,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        threads: int | None = opt.THREADS,
        as_json: bool = opt.JSON,
    ) -> None:
        """Convert the model to another opset (onnx.version_converter)."""
        from modelport.edit import set_opset

        guard_output(output, model)  # before the work, not after it
        check = check_options(
            verify, rtol, atol, seed, input_shape=input_shape, batch=batch, feeds=feeds, threads=threads
        )
        finish(set_opset(model, version, check=check), output, check, as_json)


def _register_constants(edit_app: typer.Typer) -> None:
    @edit_app.command("shrink-constants")
    def shrink_constants_cmd(
        model: Path = _MODEL,
        output: Path = OUTPUT,
        external_threshold: int | None = typer.Option(
            None,
            "--external-threshold",
            metavar="BYTES",
            help="Store initializers of at least BYTES bytes in OUT.data beside the model.",
        ),
        input_shape: list[str] = opt.INPUT_SHAPE,
        batch: int | None = BATCH,
        feeds: Path | None = opt.FEEDS,
        verify: bool = VERIFY,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        threads: int | None = opt.THREADS,
        as_json: bool = opt.JSON,
    ) -> None:
        """Merge equal initializers and Constant nodes; optionally move big initializers to external data."""
        from modelport.edit import shrink_constants

        guard_output(output, model)  # before the work, not after it
        check = check_options(
            verify, rtol, atol, seed, input_shape=input_shape, batch=batch, feeds=feeds, threads=threads
        )
        finish(shrink_constants(model, external_threshold=external_threshold, check=check), output, check, as_json)


def _register_ir(edit_app: typer.Typer) -> None:
    @edit_app.command("ir-rename")
    def ir_rename_cmd(
        model: Path = _IR,
        output: Path = _IR_OUTPUT,
        mapping: list[str] = typer.Option(
            [], "--map", metavar="OLD=NEW", help="Rename the input or output tensor OLD to NEW (repeatable)."
        ),
        feeds: Path | None = opt.FEEDS,
        verify: bool = VERIFY,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        threads: int | None = opt.THREADS,
        as_json: bool = opt.JSON,
    ) -> None:
        """Rename inputs/outputs of an OpenVINO IR (OpenVINO's API; weights kept bit for bit)."""
        from modelport.edit import ir_rename

        guard_output(output, model)  # before the work, not after it
        check = check_options(verify, rtol, atol, seed, feeds=feeds, threads=threads)
        finish(ir_rename(model, _pairs(mapping, "--map", "="), check=check), output, check, as_json)

    @edit_app.command("ir-set-shape")
    def ir_set_shape_cmd(
        model: Path = _IR,
        output: Path = _IR_OUTPUT,
        input_shape: list[str] = opt.INPUT_SHAPE,
        feeds: Path | None = opt.FEEDS,
        verify: bool = VERIFY,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        threads: int | None = opt.THREADS,
        as_json: bool = opt.JSON,
    ) -> None:
        """Reshape inputs of an OpenVINO IR (Model.reshape; OpenVINO infers the rest of the graph)."""
        from modelport.edit import ir_set_shape

        guard_output(output, model)  # before the work, not after it
        check = check_options(verify, rtol, atol, seed, feeds=feeds, threads=threads)
        finish(ir_set_shape(model, opt.input_shapes(input_shape), check=check), output, check, as_json)


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
