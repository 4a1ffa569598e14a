"""``modelport rewrite MODEL (--rules A,B | --target T) [-o OUT] [--check]`` and ``modelport rewrite --list``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from modelport.cli import options as opt
from modelport.cli.common import console, onnx_feeds, print_json

if TYPE_CHECKING:
    from modelport.rewriting import RewriteReport


_OUTPUT_HELP = "Where to write the rewritten model (with split-nms also OUT.tail.onnx and OUT.nms.json)."


def register(app: typer.Typer) -> None:
    """Add the ``rewrite`` verb to the app."""

    @app.command("rewrite")
    def rewrite_cmd(
        model: Path | None = typer.Argument(None, help="The ONNX model to rewrite (never modified)."),
        output: Path | None = typer.Option(
            None,
            "--output",
            "-o",
            help="Where to write the rewritten model (with split-nms also OUT.tail.onnx and OUT.nms.json).",
        ),
        rules: list[str] = typer.Option([], "--rules", help="Comma-separated rules to apply (see --list)."),
        target: str | None = typer.Option(
            None, "--target", help="Apply a target profile: edgetpu, myriad, tflite, tensorrt, openvino-cpu."
        ),
        check: bool = typer.Option(
            False, "--check", help="List the ops the target cannot run before and after (no -o needed)."
        ),
        depthwise: bool = typer.Option(False, "--depthwise", help="split-group-conv: split depthwise convs too."),
        list_rules: bool = typer.Option(False, "--list", help="List the rules and target profiles and exit."),
        verify: bool = typer.Option(True, "--verify/--no-verify", help="Compare outputs in ONNX Runtime."),
        input_shape: list[str] = opt.INPUT_SHAPE,
        feeds: Path | None = opt.FEEDS,
        rtol: float | None = opt.RTOL,
        atol: float | None = opt.ATOL,
        seed: int = opt.SEED,
        threads: int | None = opt.THREADS,
        as_json: bool = opt.JSON,
    ) -> None:
        """Apply target rewrite rules (by name or a target profile) and verify the result against the source."""
        from modelport.errors import InvalidInputError
        from modelport.rewriting import RewriteOptions, rewrite
        from modelport.rules.catalog import RuleSettings

        if list_rules:
            _print_catalog()
            return
        if model is None:
            raise InvalidInputError("rewrite needs a MODEL", hint="see modelport rewrite --help")
        if output is None and not check:
            raise InvalidInputError("rewrite needs --output/-o OUT (or --check to only list)", path=model)
        if check and target is None:
            raise InvalidInputError("--check needs --target", hint="modelport rewrite --list shows the targets")
        options = RewriteOptions(
            rules=tuple(opt.split_list(rules)),
            target=target,
            settings=RuleSettings(depthwise=depthwise),
            verify=verify,
            tolerance=opt.tolerance("fp32", rtol, atol),
            input_shapes=opt.input_shape_items(input_shape),
            seed=seed,
            threads=threads,
        )
        if output is not None:  # before the work, not after it (the write checks the split's other files too)
            from modelport.passes.api import onnx_outputs, refuse_overwrite

            refuse_overwrite(onnx_outputs(output), [model])
        feed_data = onnx_feeds(feeds, model) if feeds is not None else None
        result = rewrite(model, options=options, feeds=feed_data)
        report = result.write(output) if output is not None else result.report
        if as_json:
            print_json(report.to_json())
        else:
            _render(report, model)


def _ops(unsupported: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{op}×{n}" for op, n in unsupported) or "none"


def _render(report: RewriteReport, model: Path) -> None:
    out = console()
    title = f"{model.name}" + (f" → {report.outputs[0]}" if report.outputs else "")
    if report.target:
        title += f" (target {report.target})"
    table = Table(title=title, title_justify="left")
    for col in ("rule", "contract", "matches"):
        table.add_column(col, justify="right" if col == "matches" else "left")
    for r in report.rules:
        contract = r.exactness.value + (f" (≤ {r.bound:.2g})" if r.bound else "")
        table.add_row(r.name, contract, str(r.matches))
    out.print(table)
    for r in report.rules:
        for why in r.refused:
            out.print(f"{escape(r.name)} refused a match: {escape(why)}")
    delta = escape(", ".join(f"{op} {a} → {b}" for op, a, b in report.ops_changed) or "no op changed")
    out.print(f"nodes: {report.nodes_before} → {report.nodes_after}; ops: {delta}")
    if report.target:
        out.print(f"ops {report.target} cannot run: before {_ops(report.unsupported_before)}; "
                  f"after {_ops(report.unsupported_after)}")  # fmt: skip
    v = report.verification
    if v is None:
        why = "nothing was rewritten" if report.matches == 0 else "--no-verify"
        out.print(f"verification: skipped ({why})")
    else:
        worst = v.worst
        where = f" (output {worst.name!r})" if worst is not None else ""
        out.print(
            f"verification: [green]pass[/] — worst max abs error {v.max_abs:.3g}{escape(where)}, tolerance "
            f"{escape(str(v.tolerance))} ({escape(report.tolerance_basis)})"
        )
    for path in report.outputs:
        out.print(f"wrote {escape(path)}")


def _print_catalog() -> None:
    from modelport.rules.catalog import target_rules
    from modelport.rules.profiles import PROFILES

    rules = Table(title="rules (modelport rewrite --rules NAME,…)", title_justify="left")
    for col in ("name", "contract", "removes", "what it does"):
        rules.add_column(col)
    for spec in target_rules().values():
        contract = spec.exactness.value + (f" ≤ {spec.bound:.2g}" if spec.bound else "")
        rules.add_row(spec.name, contract, ", ".join(spec.removes), spec.summary)
    profiles = Table(title="targets (modelport rewrite --target NAME)", title_justify="left")
    for col in ("name", "rules", "what it is"):
        profiles.add_column(col)
    for p in PROFILES.values():
        profiles.add_row(p.name, ", ".join(p.rules), p.summary)
    console().print(rules)
    console().print(profiles)
