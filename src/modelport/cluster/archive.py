"""``transcribe DIR --cluster ADDRESS``: an archive of audio/video files over one Whisper actor per node.

One actor per alive node with CPUs (one per GPU on a GPU node), each holding every CPU it is given and its model
loaded once. Files go out longest first (by the container's duration; size when it has none), one in flight per
actor, each sent as bytes through the object store; results come back as JSON and the driver writes the outputs,
so the local batch mode's semantics hold as they are: per-file outputs under ``OUT`` (written atomically), a file
whose outputs exist and are newer is skipped (a re-run resumes), one failing file is recorded in the manifest and
the others go on. An actor that dies (its node lost) is dropped and its file re-sent to another actor once; when
no actor is left the remaining files are recorded as failed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modelport.apps.transcribe import TranscribeListener
from modelport.apps.transcribe.batch import MANIFEST_NAME, PlannedInput, done_outcome, existing_outputs, plan_inputs
from modelport.apps.transcribe.formats import write_outputs
from modelport.apps.transcribe.results import (
    BatchManifest,
    DecodeOptions,
    Device,
    FileOutcome,
    FileStatus,
    ModelOptions,
    OutputFormat,
    TranscriptionResult,
)
from modelport.cluster.connection import task_error
from modelport.cluster.nodes import NodeInfo, list_nodes
from modelport.cluster.tasks import ArchiveWorker, zip_path
from modelport.errors import InvalidInputError

log = logging.getLogger(__name__)


def transcribe_on_cluster(
    inputs: Sequence[str | Path],
    *,
    address: str,
    model: ModelOptions | None = None,
    options: DecodeOptions | None = None,
    out_dir: str | Path | None = None,
    formats: Sequence[OutputFormat] = (),
    overwrite: bool = False,
    listener: TranscribeListener | None = None,
    progress: Callable[[int, int], None] | None = None,
    timeout_s: float = 3600.0,
) -> BatchManifest:
    """Transcribe files and folders across the cluster at ``address``; the manifest as :func:`transcribe_files`'s.

    Args:
        progress: called with (files finished, files in all) after each file, skipped ones included.
        timeout_s: the longest one file may take on an actor (then it is recorded as failed).

    Raises:
        InvalidInputError: nothing to transcribe, formats without an output folder, no node with CPUs.
    """
    from modelport.cluster.connection import connected

    started = time.perf_counter()
    model = model or ModelOptions()
    options = options or DecodeOptions()
    if formats and out_dir is None:
        raise InvalidInputError("output formats were given without an output directory")
    out = Path(out_dir) if out_dir is not None else None
    say = listener or TranscribeListener()
    planned = plan_inputs(inputs, out)
    outcomes: dict[Path, FileOutcome] = {}
    todo: list[PlannedInput] = []
    for item in planned:
        existing = None if overwrite else existing_outputs(item, formats)
        if existing is not None:
            say.on_skip(str(item.path), existing)
            outcomes[item.path] = FileOutcome(str(item.path), FileStatus.SKIPPED, outputs=tuple(map(str, existing)))
        else:
            todo.append(item)
    tick = progress or (lambda _done, _all: None)
    tick(len(outcomes), len(planned))
    todo.sort(key=_length, reverse=True)
    bundle = _model_bundle(model)
    load_seconds = 0.0
    with connected(address) as ray:
        actors = _start_actors(ray, list_nodes(ray), model, bundle)
        load_seconds = max(ray.get([a.load_seconds.remote() for a in actors]) or [0.0])
        run = _Dispatch(ray, actors, options, timeout_s)
        for item, outcome in run.results(deque(todo)):
            if outcome is None:  # the transcript came back: write it here, as the local batch mode does
                outcome = _write(item, run.last_result, out, formats, say)
            else:
                say.on_error(str(item.path), RuntimeError(outcome.error or "failed"))
            outcomes[item.path] = outcome
            tick(len(outcomes), len(planned))
    manifest = BatchManifest(
        model=str(model.model),
        device=f"cluster {address}: {len(run.started)} actors",
        compute_type=model.compute_type.value,
        out_dir=str(out) if out is not None else None,
        formats=tuple(formats),
        files=tuple(outcomes[item.path] for item in planned),
        elapsed=round(time.perf_counter() - started, 3),
        load_seconds=round(load_seconds, 3),
    )
    if out is not None:
        from modelport.model_io import write_text

        write_text(out / MANIFEST_NAME, manifest.to_json() + "\n")
    return manifest


class _Dispatch:
    """Keeps one file in flight per actor; yields (file, None) on success (the result in ``last_result``) or
    (file, the failed outcome)."""

    def __init__(self, ray: Any, actors: list[Any], options: DecodeOptions, timeout_s: float) -> None:
        self.ray, self.options, self.timeout_s = ray, options, timeout_s
        self.idle = list(actors)
        self.started = list(actors)
        self.last_result: TranscriptionResult | None = None

    def results(self, queue: deque[PlannedInput]) -> Any:
        ray = self.ray
        flying: dict[Any, tuple[PlannedInput, Any, float, int]] = {}
        tries: dict[Path, int] = {}
        while queue or flying:
            while queue and self.idle:
                item = queue.popleft()
                actor = self.idle.pop()
                ref = actor.transcribe.remote(item.path.name, _read(item.path), self.options)
                flying[ref] = (item, actor, time.perf_counter(), tries.get(item.path, 0))
            if not flying:  # files left, no actor left
                for item in queue:
                    yield item, _failed(item, "no transcription actor is left (every node was lost)")
                return
            ready, _ = ray.wait(list(flying), num_returns=1, timeout=1.0)
            for ref in ready:
                item, actor, _t, attempt = flying.pop(ref)
                try:
                    self.last_result = TranscriptionResult.from_json(ray.get(ref))
                except Exception as exc:  # this file's failure, or its actor's
                    if type(exc).__name__ in ("RayActorError", "ActorDiedError", "ActorUnavailableError"):
                        self._drop(actor)
                        if attempt == 0:
                            tries[item.path] = 1
                            queue.appendleft(item)
                            continue
                        yield item, _failed(item, f"its actor was lost twice: {task_error(exc)}")
                        continue
                    self.idle.append(actor)
                    yield item, _failed(item, task_error(exc))
                    continue
                self.idle.append(actor)
                yield item, None
            now = time.perf_counter()
            for ref, (item, actor, t, _attempt) in list(flying.items()):
                if now - t > self.timeout_s:
                    ray.cancel(ref, force=True)
                    flying.pop(ref)
                    self._drop(actor)  # force-cancelling kills the actor's worker
                    yield item, _failed(item, f"timed out after {self.timeout_s:g} s")

    def _drop(self, actor: Any) -> None:
        if actor in self.started:
            self.started.remove(actor)


def actor_plan(nodes: Sequence[NodeInfo], device: Device) -> list[tuple[NodeInfo, int, int]]:
    """(node, actors, CPUs each) for the archive: one actor per alive node with CPUs, one per GPU on GPU nodes
    (``device`` auto or cuda; with ``cpu`` the GPUs are left alone), the node's CPUs shared between its actors.

    Raises:
        InvalidInputError: no node with CPUs, or ``cuda`` asked for on a cluster without GPUs (at once: an actor
            waiting for a GPU that never comes would wait forever).
    """
    usable = [n for n in nodes if n.alive and n.cpus >= 1]
    if not usable:
        raise InvalidInputError("the cluster has no node with CPUs to transcribe on", hint="see docs/cluster.md")
    if device is Device.CUDA:
        usable = [n for n in usable if n.gpus >= 1]
        if not usable:
            raise InvalidInputError(
                "--device cuda, but no alive node of the cluster has a GPU",
                hint="start the GPU nodes with `ray start … --num-gpus N`, or use --device auto to run on CPUs",
            )
    plan = []
    for node in usable:
        count = int(node.gpus) if node.gpus >= 1 and device is not Device.CPU else 1
        plan.append((node, count, max(1, int(node.cpus // count))))
    return plan


def _start_actors(ray: Any, nodes: list[NodeInfo], model: ModelOptions, bundle: bytes | None) -> list[Any]:
    """The actors of :func:`actor_plan`, pinned to their nodes, each holding its CPUs (and its GPU)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    plan = actor_plan(nodes, model.device)
    remote = ray.remote(ArchiveWorker)
    blob = ray.put(bundle) if bundle is not None else None
    actors = []
    for node, count, cpus in plan:
        gpu = node.gpus >= 1 and model.device is not Device.CPU
        for _ in range(count):
            actors.append(
                remote.options(
                    num_cpus=cpus,
                    num_gpus=1 if gpu else 0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
                    max_restarts=0,
                ).remote(model, blob, cpus)
            )
    return actors


def _model_bundle(model: ModelOptions) -> bytes | None:
    """A model folder on this machine, zipped for the nodes; None for a name each node resolves itself."""
    path = Path(str(model.model))
    return zip_path(path) if path.is_dir() else None


def _write(
    item: PlannedInput,
    result: TranscriptionResult | None,
    out: Path | None,
    formats: Sequence[OutputFormat],
    say: TranscribeListener,
) -> FileOutcome:
    assert result is not None
    written = write_outputs(result, item.out_base, formats) if item.out_base is not None else []
    say.on_done(str(item.path), result, written)
    return done_outcome(result, written, str(item.path))


def _failed(item: PlannedInput, why: str) -> FileOutcome:
    return FileOutcome(str(item.path), FileStatus.FAILED, error=why, error_type="ClusterError")


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""


def _length(item: PlannedInput) -> float:
    """The file's duration from its container (seconds); its size in MB when the container has none."""
    try:
        import av

        with av.open(str(item.path)) as container:
            if container.duration:
                return float(container.duration) / 1e6
    except Exception:  # an unreadable file fails later, in its turn, with the decoder's message
        pass
    return item.path.stat().st_size / 1e6 if item.path.is_file() else 0.0
