"""Entry point of the ``modelport`` command.

Each verb lives in its own module exposing ``register(app)``. Errors derived from ModelportError become one
line ``modelport: error: …`` and the error's exit code; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

import typer
from rich.console import Console

from modelport.cli.common import exit_cleanly_on_signals
from modelport.errors import ModelportError

#: verb → the module under modelport.cli that registers it (several verbs may share one module).
VERBS: dict[str, str] = {
    "inspect": "inspect",
    "compare": "compare",
    "bench": "bench",
    "convert": "convert",
    "port": "port",
    "doctor": "doctor",
    "optimize": "optimize",
    "rewrite": "rewrite",
    "edit": "edit",
    "transcribe": "transcribe",
    "bench-transcribe": "transcribe",
    "quantize": "quantize",
    "example": "example",
    "classify": "classify",
    "depth": "depth",
    "detect": "detect",
    "serve": "serve",
    "cluster": "cluster",
}
VERB_MODULES = tuple(dict.fromkeys(VERBS.values()))
_ROOT_FLAGS = {"--debug", "--verbose", "-v"}
_ROOT_OPTIONS = {"--max-memory"}  # root options that take a value


def invoked_verb(args: Sequence[str]) -> str | None:
    """The verb a command line runs (the first argument that is not a root flag), if it is a known one."""
    skip = False
    for arg in args:
        if skip or arg in _ROOT_FLAGS or arg.split("=", 1)[0] in _ROOT_OPTIONS:
            skip = arg in _ROOT_OPTIONS
            continue
        return arg if arg in VERBS else None
    return None


def build_app(verb: str | None = None) -> typer.Typer:
    """Create the typer application.

    Args:
        verb: register only the module of this verb (start-up imports only what that verb needs);
            None registers every verb (for help and unknown verbs).
    """
    app = typer.Typer(
        name="modelport",
        help="Port trained neural networks to fast inference runtimes — converted, verified, measured.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )

    @app.callback()
    def _root(
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Show info logs."),
        max_memory: str | None = typer.Option(
            None,
            "--max-memory",
            help="Most tensor data a model may declare (e.g. 8G; default: this machine's memory); a model asking "
            "for more is refused before anything is allocated.",
        ),
    ) -> None:
        level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        if not debug:  # onnx-ir logs a failed shape inference as a warning with a whole traceback
            logging.getLogger("onnx_ir").setLevel(logging.ERROR)
        if max_memory is not None:
            from modelport.model_guard import MAX_MEMORY_ENV, parse_size

            parse_size(max_memory)  # a bad size is one clear error here, not in a child process later
            os.environ[MAX_MEMORY_ENV] = max_memory  # read by the guards here and in every child process

    for name in (VERBS[verb],) if verb in VERBS else VERB_MODULES:
        importlib.import_module(f"modelport.cli.{name}").register(app)
    return app


def _usage_errors() -> tuple[type[Exception], ...]:
    """typer's command-line parsing errors: newer typer vendors click (``typer._click``), older typer uses click."""
    found: list[type[Exception]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 verification mismatch, 2 bad input or failure)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        app = build_app(invoked_verb(args))
        # without standalone mode, a verb's `raise typer.Exit(code)` comes back as the return value
        with exit_cleanly_on_signals():  # SIGTERM/SIGHUP unwind like Ctrl-C: temporary files removed, exit 128 + N
            result = app(args=args, prog_name="modelport", standalone_mode=False)
    except ModelportError as exc:
        if debug:
            traceback.print_exc()
        err.print(f"modelport: error: {exc}", markup=False)
        return exc.exit_code
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        err.print("modelport: aborted", markup=False)
        return 130
    except _usage_errors() as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `modelport`: show the help, not an error line
            err.print(exc.format_message(), markup=False)  # type: ignore[attr-defined]
            return 2
        if debug:
            traceback.print_exc()
        err.print(f"modelport: error: {exc.format_message()}", markup=False)  # type: ignore[attr-defined]
        return 2
    except KeyboardInterrupt:
        err.print("modelport: interrupted", markup=False)
        return 130
    if result == 130:  # typer turns Ctrl-C (KeyboardInterrupt) into Exit(130), returned here without a word
        err.print("modelport: interrupted", markup=False)
    return result if isinstance(result, int) else 0


def run() -> None:  # pragma: no cover - console-script shim
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
