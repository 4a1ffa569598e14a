"""The CLI's verbs as a :class:`modelport.serve.specs.VerbCatalog`: their options, read from the typer commands,
and the CLI's own parser to check a command line before the service queues it (one source of truth for what a
job may say)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import typer

from modelport.serve.specs import OptionInfo


class CliCatalog:
    """The job verbs' options as the CLI declares them (typer commands built once per verb)."""

    def options(self, verb: str) -> Sequence[OptionInfo]:
        return _options(verb)

    def check(self, verb: str, argv: Sequence[str]) -> tuple[str | None, str] | None:
        command = _command(verb)
        try:
            command.make_context(verb, list(argv), resilient_parsing=False)
        except Exception as exc:  # the parser's usage errors (typer vendors click: no stable import path)
            formatter = getattr(exc, "format_message", None)
            message = formatter() if callable(formatter) else str(exc)
            param = getattr(exc, "param", None)
            key = _key(param) if param is not None and getattr(param, "opts", None) else None
            if key is None and "No such option: " in message:
                key = message.split("No such option: ", 1)[1].split()[0].lstrip("-")
            return key, message
        return None


@functools.cache
def _command(verb: str) -> Any:
    from modelport.cli.main import build_app

    return typer.main.get_command(build_app(verb)).commands[verb]  # type: ignore[attr-defined]


@functools.cache
def _options(verb: str) -> tuple[OptionInfo, ...]:
    found = []
    for param in _command(verb).params:
        if param.param_type_name != "option":
            continue
        key = _key(param)
        if key is None:
            continue
        found.append(
            OptionInfo(
                key=key,
                flag=f"--{key}",
                is_flag=bool(getattr(param, "is_flag", False)),
                multiple=bool(param.multiple),
                default=param.default if isinstance(param.default, (str, int, float, bool, type(None))) else None,
                help=str(getattr(param, "help", "") or ""),
            )
        )
    return tuple(found)


def _key(param: Any) -> str | None:
    longs = [o for o in param.opts if o.startswith("--")]
    return longs[0][2:] if longs else None
