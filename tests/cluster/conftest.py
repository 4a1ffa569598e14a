"""One multi-node Ray cluster on loopback for the cluster tests (ray.cluster_utils.Cluster): a head with no CPUs and
three device nodes — pi4 (1 CPU), nuc (2 CPUs) and a second nuc (1 CPU) — each with its ``device`` label and
quantity-1 ``device:NAME`` resource, as docs/cluster.md tells users to start them. Node failures are detected fast
(health checks every 0.5 s)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 0,
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
        },
    )
    nodes = {
        "pi4": cluster.add_node(num_cpus=1, resources={"device:pi4": 1}, labels={"device": "pi4"}),
        "nuc": cluster.add_node(num_cpus=2, resources={"device:nuc": 1}, labels={"device": "nuc"}),
        "nuc-b": cluster.add_node(num_cpus=1, resources={"device:nuc": 1}, labels={"device": "nuc"}),
    }
    cluster.wait_for_nodes()
    cluster.device_nodes = nodes  # type: ignore[attr-defined]
    yield cluster
    if ray.is_initialized():
        ray.shutdown()
    cluster.shutdown()
