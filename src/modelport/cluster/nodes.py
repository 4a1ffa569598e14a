"""What the cluster holds: its nodes, their device labels and resources, and (``cluster status``) what each runs."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

from modelport.diagnostics import DoctorReport
from modelport.errors import InvalidInputError
from modelport.reports.serialize import JsonReport

#: the node label naming a node's device, and the prefix of the quantity-1 resource of the same name
DEVICE_LABEL = "device"
DEVICE_RESOURCE = "device:"


@dataclasses.dataclass(frozen=True)
class NodeInfo(JsonReport):
    """One node as Ray sees it.

    Attributes:
        node_id: Ray's node id.
        address: its IP address.
        device: its device name (the ``device`` label, else the name of a ``device:NAME`` resource); None for a node
            that is not a device (the head, a driver machine).
        cpus: CPUs it offers to Ray.
        gpus: GPUs it offers to Ray.
        labels: its labels (Ray's own ``ray.io/…`` ones left out).
        alive: False for a node Ray lost.
        slot: it has the quantity-1 ``device:NAME`` resource that keeps one benchmark at a time on the device.
    """

    node_id: str
    address: str
    device: str | None
    cpus: float
    gpus: float
    labels: tuple[tuple[str, str], ...]
    alive: bool
    slot: bool = False


def list_nodes(ray: Any) -> list[NodeInfo]:
    """Every node of the connected cluster."""
    found = []
    for node in ray.nodes():
        resources = node.get("Resources", {}) or {}
        labels = {k: str(v) for k, v in (node.get("Labels", {}) or {}).items() if not k.startswith("ray.io/")}
        device = labels.get(DEVICE_LABEL) or next(
            (r[len(DEVICE_RESOURCE) :] for r in resources if r.startswith(DEVICE_RESOURCE)), None
        )
        found.append(
            NodeInfo(
                node_id=node["NodeID"],
                address=node.get("NodeManagerAddress", "?"),
                device=device,
                cpus=float(resources.get("CPU", 0)),
                gpus=float(resources.get("GPU", 0)),
                labels=tuple(sorted(labels.items())),
                alive=bool(node.get("Alive")),
                slot=device is not None and f"{DEVICE_RESOURCE}{device}" in resources,
            )
        )
    return found


def nodes_for(nodes: Sequence[NodeInfo], devices: Sequence[str]) -> dict[str, list[NodeInfo]]:
    """The alive nodes of each requested device (most CPUs first); every device when ``devices`` is empty.

    Raises:
        InvalidInputError: a device no alive node has (fails at once instead of waiting for one to join).
    """
    alive = [n for n in nodes if n.alive and n.device]
    known = sorted({n.device for n in alive if n.device})
    wanted = list(devices) or known
    if not wanted:
        raise InvalidInputError(
            "the cluster has no device nodes",
            hint="start each device with `ray start --address HEAD --labels device=NAME` (see docs/cluster.md)",
        )
    missing = [d for d in wanted if d not in known]
    if missing:
        raise InvalidInputError(
            f"no node of the cluster is the device(s) {', '.join(missing)}",
            hint=f"the cluster's devices: {', '.join(known) or 'none'} (see `modelport cluster status ADDRESS`)",
        )
    chosen = {d: sorted((n for n in alive if n.device == d and n.slot), key=lambda n: -n.cpus) for d in wanted}
    unslotted = [d for d, found in chosen.items() if not found]
    if unslotted:
        d = unslotted[0]
        raise InvalidInputError(
            f"the node(s) of device {d} have no '{DEVICE_RESOURCE}{d}' resource, which keeps one benchmark at a time "
            "per device",
            hint=f"restart them with `ray start --address HEAD --labels {DEVICE_LABEL}={d} "
            f"--resources '{{\"{DEVICE_RESOURCE}{d}\": 1}}'`",
        )
    return chosen


@dataclasses.dataclass(frozen=True)
class NodeStatus(JsonReport):
    """One node and what ``doctor`` found on it (None with ``error`` when it did not answer in time)."""

    node: NodeInfo
    doctor: DoctorReport | None
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class ClusterStatus(JsonReport):
    """Every node of a cluster with its device, versions and runtimes; ``mismatched``: packages whose version
    differs between nodes (modelport and Ray must match everywhere)."""

    address: str
    nodes: tuple[NodeStatus, ...]
    mismatched: tuple[str, ...]
    seconds: float


def cluster_status(ray: Any, address: str, *, timeout_s: float = 120.0) -> ClusterStatus:
    """Run ``doctor`` on every alive node (in parallel, each pinned to its node, using no CPU slot so a busy node
    still answers) and gather the answers; a node that does not answer within ``timeout_s`` is reported as such."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from modelport.cluster.tasks import doctor_task

    start = time.perf_counter()
    nodes = list_nodes(ray)
    remote = ray.remote(doctor_task)
    refs = {
        n.node_id: remote.options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n.node_id, soft=False), max_retries=0
        ).remote()
        for n in nodes
        if n.alive
    }
    ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout_s)
    done = {id(r) for r in ready}
    statuses = []
    for node in nodes:
        ref = refs.get(node.node_id)
        if ref is None:
            statuses.append(NodeStatus(node, None, "the node is dead"))
        elif id(ref) not in done:
            ray.cancel(ref, force=True)
            statuses.append(NodeStatus(node, None, f"no answer within {timeout_s:g} s"))
        else:
            try:
                statuses.append(NodeStatus(node, DoctorReport.from_json(ray.get(ref))))
            except Exception as exc:  # the node's error, reported as that node's
                statuses.append(NodeStatus(node, None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"))
    return ClusterStatus(address, tuple(statuses), _mismatched(statuses), time.perf_counter() - start)


def _mismatched(statuses: Sequence[NodeStatus]) -> tuple[str, ...]:
    seen: dict[str, set[str]] = {}
    for s in statuses:
        if s.doctor is None:
            continue
        env = s.doctor.environment
        for name, version in (("python", ".".join(env.python.split(".")[:2])), *env.packages):
            if name in ("python", "modelport", "ray"):
                seen.setdefault(name, set()).add(version)
    return tuple(sorted(n for n, v in seen.items() if len(v) > 1))
