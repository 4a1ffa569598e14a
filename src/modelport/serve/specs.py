"""What a job spec may hold, checked field by field, and the command line it becomes.

A job spec is JSON: ``{"model": ID, "verb": "port", <option>: value …}`` where each option is named as on the
command line (``"to"``, ``"input-shape"`` or ``"input_shape"``, ``"precision"`` …). The options a verb has come
from the CLI itself (a :class:`VerbCatalog`, built by :mod:`modelport.cli.jobspec` from the typer commands), so
the service never lags the CLI; the values are then parsed by the CLI's own parser before the job is queued.

What the service decides, not the client:

* where files go: ``--output`` (the job's artifact folder) and ``--json``;
* what may be read: a data option (``calib``, ``eval``, ``feeds``) is the id of an uploaded data file or a
  built-in source name (``mnist``, ``mnist:test``, ``random`` — no path), never a path on the server;
* nothing that runs code from an upload (``--trust-remote-code``) and nothing that is not a job (``--list-passes``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from modelport.serve.settings import JOB_VERBS

#: options the server sets itself
SERVER_OPTIONS = frozenset({"output", "json"})
#: options a job may never set
FORBIDDEN_OPTIONS = frozenset({"trust-remote-code", "list-passes", "debug"})
#: options that would make the server connect elsewhere (a Ray cluster at an address the client names)
REMOTE_OPTIONS = frozenset({"cluster", "devices"})
#: options whose value names data: an uploaded data id or a built-in source name
DATA_OPTIONS = frozenset({"calib", "eval", "feeds"})
#: options whose value becomes part of a file name
NAME_OPTIONS = frozenset({"name"})

_SOURCE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}(:[a-z0-9_-]{1,32})?$")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclasses.dataclass(frozen=True)
class OptionInfo:
    """One command-line option of a verb, as the CLI declares it.

    Attributes:
        key: its long flag without dashes (``input-shape``): the name a job spec uses.
        flag: the flag itself (``--input-shape``).
        is_flag: a switch (no value): the spec gives true/false.
        multiple: repeatable: the spec may give a list.
        default: the CLI's default (for the page).
        help: the CLI's help text (for the page).
    """

    key: str
    flag: str
    is_flag: bool
    multiple: bool
    default: Any
    help: str


class VerbCatalog(Protocol):
    """The CLI's view of the job verbs: their options, and its own parser to check a command line."""

    def options(self, verb: str) -> Sequence[OptionInfo]: ...

    def check(self, verb: str, argv: Sequence[str]) -> tuple[str | None, str] | None:
        """None when ``argv`` (model first) parses; else (the failing option's key or None, the parser's message)."""
        ...


@dataclasses.dataclass(frozen=True)
class FieldError:
    """One wrong field of a request: the field's name and what is wrong with it."""

    field: str
    message: str


class SpecError(Exception):
    """A job spec with one or more wrong fields (HTTP 422, one message per field)."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = tuple(errors)


@dataclasses.dataclass(frozen=True)
class JobSpec:
    """A checked job spec: the verb, the model id, the options as given, and the data ids it reads."""

    verb: str
    model: str
    options: Mapping[str, Any]
    data_ids: tuple[str, ...]


def check_spec(
    raw: Any,
    catalog: VerbCatalog,
    *,
    model_exists: Callable[[str], bool],
    data_exists: Callable[[str], bool],
) -> JobSpec:
    """Check a job spec field by field.

    Raises:
        SpecError: every wrong field, each with its own message.
    """
    if not isinstance(raw, dict):
        raise SpecError([FieldError("body", "a job spec is a JSON object")])
    errors: list[FieldError] = []
    verb = raw.get("verb")
    if verb not in JOB_VERBS:
        errors.append(FieldError("verb", f"must be one of {', '.join(JOB_VERBS)}; got {verb!r}"))
    model = raw.get("model")
    if not isinstance(model, str) or not model_exists(model):
        errors.append(FieldError("model", f"no uploaded model with id {model!r} (POST /api/models first)"))
    if verb not in JOB_VERBS:
        raise SpecError(errors)
    known = {o.key: o for o in catalog.options(verb)}
    options: dict[str, Any] = {}
    data_ids: list[str] = []
    for field, value in raw.items():
        if field in ("verb", "model"):
            continue
        key = field.replace("_", "-")
        error = _check_field(key, value, known.get(key), data_exists)
        if error is not None:
            errors.append(FieldError(field, error))
            continue
        options[key] = value
        if key in DATA_OPTIONS and data_exists(str(value)):
            data_ids.append(str(value))
    if errors:
        raise SpecError(errors)
    spec = JobSpec(verb, str(model), options, tuple(data_ids))
    argv = ["model.onnx", *command_options(spec, known, data_path=lambda i: f"{i}.npz"), "--output", "artifacts"]
    failed = catalog.check(verb, argv)
    if failed is not None:
        key, message = failed
        field = next((f for f in raw if f.replace("_", "-") == key), key or "options")
        raise SpecError([FieldError(field, message)])
    return spec


def _check_field(key: str, value: Any, info: OptionInfo | None, data_exists: Callable[[str], bool]) -> str | None:
    if key in SERVER_OPTIONS:
        return "set by the server (artifacts go to the job's folder; the report is always kept)"
    if key in FORBIDDEN_OPTIONS:
        return "not allowed in a job (the service never runs code from an upload)"
    if key in REMOTE_OPTIONS:
        return "not allowed in a job (the service never connects to an address a client names: use the CLI)"
    if info is None:
        return "not an option of this verb"
    if info.is_flag:
        return None if isinstance(value, bool) else "a switch: true or false"
    items = value if isinstance(value, list) else [value]
    if not items:
        return "an empty list"
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            return "a string or a number" + (" (or a list of them)" if info.multiple else "")
    if key in DATA_OPTIONS:
        if isinstance(value, list) or not isinstance(value, str):
            return "one uploaded data id or a built-in source name"
        if not data_exists(value) and not _SOURCE_NAME.match(value):
            return (
                f"{value!r} is neither an uploaded data id (POST /api/data) nor a built-in source name (mnist, random)"
            )
    if key in NAME_OPTIONS and not (isinstance(value, str) and _FILE_NAME.match(value)):
        return "a plain file name: letters, digits, '.', '_' and '-' (no path)"
    return None


def command_options(spec: JobSpec, known: Mapping[str, OptionInfo], *, data_path: Callable[[str], str]) -> list[str]:
    """The job's options as command-line arguments (after the model): data ids become their stored paths."""
    argv: list[str] = []
    for key, value in spec.options.items():
        info = known[key]
        if info.is_flag:
            if value:
                argv.append(info.flag)
            continue
        if key in DATA_OPTIONS and str(value) in spec.data_ids:
            argv += [info.flag, data_path(str(value))]
            continue
        items = value if isinstance(value, list) else [value]
        if info.multiple:
            for item in items:
                argv += [info.flag, _text(item)]
        else:
            argv += [info.flag, ",".join(_text(i) for i in items)]
    return argv


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)
