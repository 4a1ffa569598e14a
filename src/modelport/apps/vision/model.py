"""The model argument of the vision apps (``classify``, ``detect``, ``depth``): a model file or a ``port`` output.

A file in any format a runtime runs (ONNX, OpenVINO IR, TFLite, SavedModel …) runs on ``--runtime`` or, by
default, on the runtime that runs its format natively. A ``port`` output directory (it holds ``report.json``)
runs its fastest *verified* target — for latency, or for throughput when asked — with the runtime config
``port`` saved beside it (:mod:`modelport.backends.runtime_config`, applied by :func:`open_runner`). The
report is read as a file: the apps do not depend on the porting package.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelport.backends import backend_for_format, get_backend, open_runner
from modelport.backends.runner import RunnerOptions
from modelport.errors import InvalidInputError
from modelport.formats import Format, Precision, sniff_format

if TYPE_CHECKING:
    from modelport.backends.runner import Runner

log = logging.getLogger(__name__)

#: the file that marks a ``port`` output directory
PORT_REPORT = "report.json"


@dataclasses.dataclass(frozen=True)
class AppModel:
    """A resolved model argument: what file runs, on which runtime, with which options.

    Attributes:
        path: the model file (or SavedModel directory) that runs.
        runtime: the backend's canonical name.
        options: the runner options (threads, precision, engine settings); engine settings come from a saved
            runtime config when the caller chose none.
        description: one line for reports, e.g. ``out/targets/openvino-int8/model.xml (port's fastest: openvino/int8)``.
        precision: the artifact's precision as ``port`` recorded it ("" for a plain file).
    """

    path: Path
    runtime: str
    options: RunnerOptions
    description: str
    precision: str = ""

    def open(self) -> Runner:
        """A runner for the model (use it as a context manager: ``with model.open() as runner``)."""
        return open_runner(self.runtime, self.path, self.options)


def resolve_app_model(
    model: str | Path,
    *,
    runtime: str | None = None,
    threads: int | None = None,
    precision: Precision | None = None,
    for_throughput: bool = False,
) -> AppModel:
    """Resolve an app's model argument.

    Args:
        model: a model file/directory, or a ``port`` output directory.
        runtime: the runtime to run it on (None: the format's own runtime; for a ``port`` output, the fastest
            target's; given with a ``port`` output, the fastest verified target *of that runtime*).
        threads: intra-op threads (None: the saved config's, else the runtime's default).
        precision: the precision to execute in (None: the artifact's own — fp32 for a plain file).
        for_throughput: pick a ``port`` output's fastest target for throughput instead of latency.

    Raises:
        InvalidInputError: the path does not exist, the ``port`` report has no verified target (for ``runtime``),
            or the runtime cannot run the format.
        ModelLoadError: the file is not a model modelport knows.
    """
    path = Path(model)
    if not path.exists():
        raise InvalidInputError(
            f"model {path} does not exist", hint="give a model file or a `modelport port` output directory", path=path
        )
    if path.is_dir() and (path / PORT_REPORT).is_file():
        return _from_port(path, runtime=runtime, threads=threads, precision=precision, for_throughput=for_throughput)
    fmt = sniff_format(path)
    backend = get_backend(runtime) if runtime else backend_for_format(fmt)
    if fmt not in backend.formats:
        readers = ", ".join(b.name for b in _backends_reading(fmt)) or "none installed"
        raise InvalidInputError(
            f"runtime {backend.name} cannot run {fmt.value} models ({path})",
            hint=f"runtimes that run {fmt.value}: {readers}; or convert it first with `modelport convert`",
            path=path,
        )
    options = RunnerOptions(threads=threads, precision=precision or Precision.FP32)
    return AppModel(path=path, runtime=backend.name, options=options, description=f"{path} on {backend.name}")


def _backends_reading(fmt: Format) -> list[Any]:
    from modelport.backends import backends

    return [b for b in backends() if fmt in b.formats]


def _from_port(
    folder: Path, *, runtime: str | None, threads: int | None, precision: Precision | None, for_throughput: bool
) -> AppModel:
    """The fastest verified target of a ``port`` output directory (see :func:`resolve_app_model`)."""
    report_path = folder / PORT_REPORT
    try:
        report = json.loads(report_path.read_text(encoding="utf-8"))
        targets = [t for t in report["targets"] if isinstance(t, dict)]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InvalidInputError(
            f"{report_path} is not a `modelport port` report ({exc})",
            hint="give a model file, or the output directory of `modelport port` as it wrote it",
            path=report_path,
        ) from exc
    wanted = get_backend(runtime).name if runtime else None
    verified = [t for t in targets if t.get("status") == "verified" and (wanted is None or t.get("runtime") == wanted)]
    if not verified:
        which = f" on {wanted}" if wanted else ""
        ran = ", ".join(f"{t.get('runtime')}/{t.get('precision')} {t.get('status')}" for t in targets) or "none"
        raise InvalidInputError(
            f"the port in {folder} has no verified target{which} (targets: {ran})",
            hint="choose another --runtime, or port the model again",
            path=folder,
        )
    best = max(verified, key=_throughput) if for_throughput else min(verified, key=_latency)
    name = f"{best['runtime']}-{best['precision']}"
    target_dir = folder / "targets" / name
    artifact = target_dir / Path(str(best.get("artifact", ""))).name
    if not artifact.exists():
        raise InvalidInputError(
            f"the port in {folder} lists {name} but {artifact} is missing",
            hint="the output directory was moved or edited: port the model again",
            path=artifact,
        )
    options = RunnerOptions(threads=threads, precision=precision or Precision(best["precision"]))
    kind = "throughput" if for_throughput else "latency"
    return AppModel(
        path=artifact,
        runtime=get_backend(best["runtime"]).name,
        options=options,
        description=f"{artifact} (port's fastest for {kind}: {best['runtime']}/{best['precision']})",
        precision=str(best["precision"]),
    )


def _latency(target: dict[str, Any]) -> float:
    latency = target.get("latency") or {}
    value = latency.get("p50_ms") if isinstance(latency, dict) else None
    return float(value) if isinstance(value, (int, float)) else float("inf")


def _throughput(target: dict[str, Any]) -> float:
    value = target.get("throughput")
    return float(value) if isinstance(value, (int, float)) else 0.0
