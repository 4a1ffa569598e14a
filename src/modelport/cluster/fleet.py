"""``bench`` / ``port`` on every device of a Ray cluster, merged into one report.

For each device (a node label, :mod:`.nodes`) one Ray task runs the verb on a node of that device, pinned to it
(``NodeAffinitySchedulingStrategy``), holding the device's quantity-1 ``device:NAME`` resource (so one benchmark at a
time per device, whoever else submits) and **every CPU of that node** (nothing else of Ray's runs beside it while it
measures). The model goes into the object store once and every device reads it from there.

``port`` asks each device which targets it would port to (its runtimes and precisions), then builds every portable
artifact once, here (:mod:`modelport.porting.prebuilt`: the prepared source and the float conversions, in
``OUT/build/``), and sends that build to the devices, which verify, tune and time each target on their own runtime;
INT8, compiled engines and whatever this machine cannot convert are built on the device. Local ``--calib`` /
``--eval`` files travel with the model. Each device's output folder (the build, plus what the device made) lands in
``OUT/devices/DEVICE/``.

Failures: an unknown device fails at once (:func:`.nodes.nodes_for`); a task past ``timeout_s`` is cancelled and
reported; a node lost mid-run fails only its device's task, which is retried on the next node with the same label
(``retries`` times) and otherwise reported — the other devices' results stand.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os
import shutil
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modelport.benchmark.timing import BenchOptions, BenchReport
from modelport.cluster.connection import task_error
from modelport.cluster.nodes import NodeInfo, list_nodes, nodes_for
from modelport.cluster.tasks import device_task, targets_task, zip_folder, zip_path
from modelport.errors import InvalidInputError, ModelLoadError
from modelport.formats import Precision
from modelport.model_io import atomic_path, write_text
from modelport.porting.pipeline import PortOptions, write_reports
from modelport.porting.prebuilt import Prebuilt
from modelport.porting.results import PortReport
from modelport.reports.environment import Environment
from modelport.reports.serialize import JsonReport

log = logging.getLogger(__name__)

REPORT_NAME = "fleet.json"


@dataclasses.dataclass(frozen=True)
class FleetOptions:
    """How a verb runs across a cluster.

    Attributes:
        devices: the devices to run on (node ``device`` labels); empty: every device of the cluster.
        timeout_s: seconds one device's run may take (then it is cancelled and reported).
        retries: how many other nodes of the same device to try when a node is lost.
        build_once: ``port`` builds the portable artifacts once, on this machine (False: every device builds all of
            its targets itself, as a local ``port`` would; the benchmark's comparison).
    """

    devices: tuple[str, ...] = ()
    timeout_s: float = 3600.0
    retries: int = 1
    build_once: bool = True

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise InvalidInputError(f"the cluster timeout must be > 0 seconds, got {self.timeout_s:g}")
        if self.retries < 0:
            raise InvalidInputError(f"retries must be ≥ 0, got {self.retries}")


@dataclasses.dataclass(frozen=True)
class DeviceRun(JsonReport):
    """One device's run: on which node, that node's environment, the verb's report or the error.

    Attributes:
        device: the device name.
        node_id: the node that ran it (the last one tried).
        node_address: its IP address.
        attempts: nodes tried (more than 1 when a node was lost).
        seconds: wall time of the run, queueing for the device included.
        environment: the node's environment (CPU flags, versions, GPUs).
        bench: bench's report (verb ``bench``).
        port: port's report (verb ``port``); its artifacts are in ``OUT/devices/DEVICE/``.
        error: why there is no report.
        ran: when the verb ran on the node, (start, end) in seconds since the epoch (the node's clock), without the
            wait for the device.
    """

    device: str
    node_id: str
    node_address: str
    attempts: int
    seconds: float
    environment: Environment | None = None
    bench: BenchReport | None = None
    port: PortReport | None = None
    error: str | None = None
    ran: tuple[float, float] | None = None

    @property
    def fastest(self) -> str | None:
        """The fastest verified target (port) or fastest runtime at its first batch (bench) on this device."""
        if self.port is not None:
            return self.port.fastest
        if self.bench is not None and self.bench.results:
            best = min(self.bench.results, key=lambda r: r.latency.p50_ms)
            return f"{best.label} ({best.latency.p50_ms:.3f} ms p50, batch {best.batch})"
        return None


@dataclasses.dataclass(frozen=True)
class FleetReport(JsonReport):
    """Every device's run of one verb on one model."""

    verb: str
    model: str
    address: str
    runs: tuple[DeviceRun, ...]
    seconds: float
    build: Prebuilt | None = None
    interrupted: bool = False  # Ctrl-C: the devices that had not finished are errors "interrupted"

    def __bool__(self) -> bool:
        return not self.interrupted and all(r.error is None and (r.port is None or bool(r.port)) for r in self.runs)

    def write(self, out_dir: str | Path) -> Path:
        """Write ``fleet.json``, ``fleet.md`` and ``fleet.html`` (:mod:`.render`) into ``out_dir`` (created if
        needed), each atomically; returns the JSON's path."""
        from modelport.cluster.render import fleet_html, fleet_markdown

        out = Path(out_dir)
        write_text(out / "fleet.md", fleet_markdown(self))
        write_text(out / "fleet.html", fleet_html(self))
        return write_text(out / REPORT_NAME, self.to_json() + "\n")


def fleet_bench(
    model: str | Path,
    runtimes: Sequence[str],
    *,
    address: str,
    options: BenchOptions | None = None,
    fleet: FleetOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> FleetReport:
    """``bench`` the model on every device of the cluster at ``address``; one merged report."""
    return _run(
        "bench", model, None, address, tuple(runtimes), options or BenchOptions(), fleet or FleetOptions(), progress
    )


def fleet_port(
    model: str | Path | None,
    out_dir: str | Path,
    *,
    address: str,
    options: PortOptions | None = None,
    fleet: FleetOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> FleetReport:
    """``port`` the model (None: the shipped MNIST ConvNet) on every device; each device's output folder lands in
    ``OUT/devices/DEVICE/``.

    The portable artifacts are built once, here, into ``OUT/build/`` (see the module docstring); ``calib``/``eval``
    naming local files or folders are sent to the nodes with the model (other API sources — arrays, callables — are
    refused: they are read here, not on the devices).

    Raises:
        InvalidInputError: an unknown device, or ``calib``/``eval`` that cannot reach the nodes.
        ModelportError: the source cannot be prepared (converted to ONNX, optimized).
        KeyboardInterrupt: after cancelling the devices still running and writing ``fleet.json`` with the devices
            that finished (``interrupted``).
    """
    opts = options or PortOptions()
    for name, value in (("--calib", opts.calib), ("--eval", opts.eval)):
        if value is not None and not isinstance(value, str | Path):
            raise InvalidInputError(
                f"{name}: with --cluster, data must be a file, a folder or a built-in source (mnist, random), "
                f"not a {type(value).__name__}",
                hint="save the samples as an .npz file and pass its path",
            )
    if model is None:
        from modelport.assets import default_model_path

        model = default_model_path()
    return _run("port", model, Path(out_dir), address, (), opts, fleet or FleetOptions(), progress)


def _run(
    verb: str,
    model: str | Path,
    out_dir: Path | None,
    address: str,
    runtimes: tuple[str, ...],
    options: Any,
    fleet: FleetOptions,
    progress: Callable[[str], None] | None,
) -> FleetReport:
    from modelport.cluster.connection import connected

    say = progress or (lambda _m: None)
    main, bundle = bundle_model(Path(model))
    data = _data_bundles(options) if verb == "port" else {}
    start = time.perf_counter()
    build: Prebuilt | None = None
    with connected(address) as ray:
        candidates = nodes_for(list_nodes(ray), fleet.devices)
        extra: dict[str, Any] = {}
        if verb == "port" and out_dir is not None and fleet.build_once:
            build = _build_once(ray, Path(model), out_dir / BUILD_DIR, options, candidates, say)
            extra = {"build": ray.put(zip_folder(out_dir / BUILD_DIR))}
        if data:
            extra["data"] = data
        blob = ray.put(bundle)
        pending = {d: _Attempt(d, nodes) for d, nodes in candidates.items()}
        remote = ray.remote(device_task)
        refs: dict[Any, _Attempt] = {}
        for attempt in pending.values():
            refs[attempt.submit(ray, remote, verb, main, blob, runtimes, options, extra)] = attempt
            say(f"{attempt.device}: started on {attempt.node.address}")
        built = out_dir / BUILD_DIR if build is not None and out_dir is not None else None
        runs: list[DeviceRun] = []
        interrupted = False
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
                now = time.perf_counter()
                for ref in ready:
                    attempt = refs.pop(ref)
                    try:
                        answer = ray.get(ref)
                    except Exception as exc:  # the task's or the node's failure: that device's alone
                        if attempt.next_node(exc, fleet.retries):
                            refs[attempt.submit(ray, remote, verb, main, blob, runtimes, options, extra)] = attempt
                            say(f"{attempt.device}: node lost, retrying on {attempt.node.address}")
                            continue
                        runs.append(attempt.failed(task_error(exc), now))
                        say(f"{attempt.device}: failed: {task_error(exc)}")
                        continue
                    runs.append(attempt.done(verb, answer, now, out_dir, str(model), built))
                    say(f"{attempt.device}: done")
                for ref, attempt in list(refs.items()):
                    if now - attempt.started > fleet.timeout_s:
                        ray.cancel(ref, force=True)
                        refs.pop(ref)
                        runs.append(attempt.failed(f"timed out after {fleet.timeout_s:g} s", now))
                        say(f"{attempt.device}: timed out")
        except KeyboardInterrupt:  # Ctrl-C: stop the devices still running, keep what finished
            interrupted = True
            now = time.perf_counter()
            for ref, attempt in refs.items():
                ray.cancel(ref, force=True)
                runs.append(attempt.failed("interrupted (Ctrl-C) before it finished", now))
    order = list(candidates)
    runs.sort(key=lambda r: order.index(r.device))
    report = FleetReport(verb, str(model), address, tuple(runs), time.perf_counter() - start, build, interrupted)
    if out_dir is not None:
        report.write(out_dir)
    if interrupted:
        raise KeyboardInterrupt
    return report


class _Attempt:
    """One device's run across the nodes it may be retried on."""

    def __init__(self, device: str, nodes: list[NodeInfo]) -> None:
        self.device, self.nodes = device, nodes
        self.index = 0
        self.started = time.perf_counter()

    @property
    def node(self) -> NodeInfo:
        return self.nodes[self.index]

    def submit(
        self,
        ray: Any,
        remote: Any,
        verb: str,
        main: str,
        blob: Any,
        runtimes: tuple[str, ...],
        options: Any,
        extra: dict[str, Any],
    ) -> Any:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node = self.node
        cpus = max(node.cpus, 1.0)
        return remote.options(
            num_cpus=cpus,
            resources={f"device:{self.device}": 1},
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
            max_retries=0,
        ).remote(verb, main, blob, runtimes, options, int(cpus), **extra)

    def next_node(self, exc: BaseException, retries: int) -> bool:
        """Move to the next node of this device when ``exc`` is a lost node and retries remain."""
        lost = type(exc).__name__ in ("NodeDiedError", "WorkerCrashedError", "TaskUnschedulableError")
        if lost and self.index < min(retries, len(self.nodes) - 1):
            self.index += 1
            return True
        return False

    def failed(self, reason: str, now: float) -> DeviceRun:
        n = self.node
        return DeviceRun(self.device, n.node_id, n.address, self.index + 1, now - self.started, error=reason)

    def done(
        self, verb: str, answer: dict[str, Any], now: float, out_dir: Path | None, model: str, built: Path | None
    ) -> DeviceRun:
        n = self.node
        env = Environment.from_json(answer["environment"])
        reports: dict[str, Any] = {}
        if verb == "bench":
            reports["bench"] = BenchReport.from_json(answer["report"])
        else:
            port = PortReport.from_json(answer["report"])
            if out_dir is not None:
                dest = out_dir / "devices" / self.device
                if built is not None:
                    link_tree(built, dest)
                if answer.get("artifacts"):
                    unpack(answer["artifacts"], dest)
                port = _local_paths(port, answer.get("out", ""), dest, model)
                write_reports(port, dest)  # the node wrote its own temporary paths into them
            reports["port"] = port
        ran = tuple(answer["ran"]) if answer.get("ran") else None
        return DeviceRun(self.device, n.node_id, n.address, self.index + 1, now - self.started, env, **reports, ran=ran)


#: where ``port --cluster`` builds the portable artifacts once (``OUT/build``).
BUILD_DIR = "build"
#: seconds to wait for the devices to say which targets they would port to.
PLAN_TIMEOUT_S = 300.0


def _build_once(
    ray: Any,
    model: Path,
    build_dir: Path,
    options: PortOptions,
    candidates: dict[str, list[NodeInfo]],
    say: Callable[[str], None],
) -> Prebuilt:
    """Ask every device for its targets (a light task on its first node, no CPU held), then build the portable
    ones here once. A device that does not answer in time builds everything itself."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from modelport.porting.prebuilt import build_once

    remote = ray.remote(targets_task)
    refs = {
        remote.options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(nodes[0].node_id, soft=True), max_retries=1
        ).remote(options): device
        for device, nodes in candidates.items()
    }
    ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=PLAN_TIMEOUT_S)
    for ref in late:
        ray.cancel(ref, force=True)
        say(f"{refs[ref]}: did not say which targets it ports to within {PLAN_TIMEOUT_S:g} s: it builds them itself")
    targets: list[tuple[str, Precision]] = []
    for ref in ready:
        try:
            targets += [(r, Precision(p)) for r, p in ray.get(ref) if (r, Precision(p)) not in targets]
        except Exception as exc:  # that device builds its own
            say(f"{refs[ref]}: could not list its targets ({task_error(exc)}): it builds them itself")
    say(f"building {len(targets)} targets once, here: " + ", ".join(f"{r}/{p.value}" for r, p in targets))
    build = build_once(model, build_dir, targets, options=options)
    for label, why in build.left:
        say(f"{label}: not built here ({why}): each device builds it")
    return build


def _data_bundles(options: PortOptions) -> dict[str, tuple[str, bytes]]:
    """Local ``calib``/``eval`` files or folders, zipped for the nodes, by option name."""
    found = {}
    for field in ("calib", "eval"):
        value = getattr(options, field)
        if isinstance(value, str | Path) and Path(value).exists():
            found[field] = (Path(value).name, zip_path(Path(value)))
    return found


def link_tree(src: Path, dest: Path) -> None:
    """Every file under ``src`` at the same place under ``dest``: hard links (no copy of a large artifact), else
    copies (another file system)."""
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        target = dest / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        try:
            os.link(path, target)
        except OSError:
            with atomic_path(target) as tmp:
                shutil.copy2(path, tmp)


def _local_paths(report: PortReport, node_out: str, dest: Path, model: str) -> PortReport:
    """The report with the node's temporary paths replaced: the source by ``model``, the artifacts by their paths
    in ``dest``."""
    if not node_out:
        return report
    targets = tuple(
        dataclasses.replace(t, artifact=str(dest / Path(t.artifact).relative_to(node_out)))
        if t.artifact and Path(t.artifact).is_relative_to(node_out)
        else t
        for t in report.targets
    )
    return dataclasses.replace(report, source=model, targets=targets)


def bundle_model(path: Path) -> tuple[str, bytes]:
    """The model's files as one zip and the main file's path inside it: a folder (SavedModel) whole; an OpenVINO
    .xml with its .bin; an ONNX file with its external data files; any other file alone."""
    if not path.exists():
        raise ModelLoadError("file not found", path=path, hint="check the path")
    from modelport.passes.api import input_files

    return path.name, zip_path(path, [p for p in input_files(path)[1:] if p.is_file()])


def unpack(blob: bytes, dest: Path) -> None:
    """A node's zipped output into ``dest`` (entries that would leave it are refused)."""
    root = dest.resolve()
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        for info in archive.infolist():
            target = (root / info.filename).resolve()
            if root not in target.parents:
                raise InvalidInputError(f"a node sent an artifact path outside the output folder: {info.filename!r}")
            if not info.is_dir():
                target.unlink(missing_ok=True)  # never write through a hard link into the shared build
        archive.extractall(root)
