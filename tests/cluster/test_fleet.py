"""bench/port across device nodes of a real (loopback) Ray cluster, cluster status, and the failure paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelport.benchmark.timing import BenchConfig, BenchOptions
from modelport.cluster.fleet import FleetOptions, fleet_bench, fleet_port
from modelport.cluster.nodes import NodeInfo, nodes_for
from modelport.errors import InvalidInputError

MNIST = Path(__file__).resolve().parents[2] / "src" / "modelport" / "assets" / "mnist_convnet.onnx"
QUICK = BenchOptions(timing=BenchConfig(warmup=2, iterations=20))

pytestmark = pytest.mark.slow


def _node(device: str | None, cpus: float = 1, slot: bool = True, alive: bool = True) -> NodeInfo:
    return NodeInfo(f"id-{device}-{cpus}", "10.0.0.1", device, cpus, 0, (), alive, slot)


def test_nodes_for_picks_alive_slotted_nodes_most_cpus_first() -> None:
    nodes = [_node("pi4"), _node("nuc", 2), _node("nuc", 4), _node("nuc", 8, alive=False), _node(None, 16)]
    found = nodes_for(nodes, ["nuc"])
    assert [n.cpus for n in found["nuc"]] == [4, 2]
    assert set(nodes_for(nodes, [])) == {"pi4", "nuc"}


def test_unknown_device_fails_at_once_naming_the_known_ones() -> None:
    with pytest.raises(InvalidInputError, match="gpu") as err:
        nodes_for([_node("pi4"), _node("nuc")], ["pi4", "gpu"])
    assert "nuc, pi4" in str(err.value)


def test_a_label_without_its_resource_is_refused_not_waited_on() -> None:
    with pytest.raises(InvalidInputError, match="device:pi4"):
        nodes_for([_node("pi4", slot=False)], ["pi4"])


def test_fleet_bench_runs_each_device_on_its_own_node(ray_cluster: Any) -> None:
    report = fleet_bench(MNIST, ["onnxruntime"], address=ray_cluster.address, options=QUICK)
    assert [r.device for r in report.runs] == ["nuc", "pi4"] or [r.device for r in report.runs] == ["pi4", "nuc"]
    ids = {name: node.node_id for name, node in ray_cluster.device_nodes.items()}
    by_device = {r.device: r for r in report.runs}
    assert by_device["pi4"].node_id == ids["pi4"]
    assert by_device["nuc"].node_id == ids["nuc"]  # the nuc with the most CPUs
    for run in report.runs:
        assert run.error is None and run.bench is not None and run.environment is not None
        assert run.bench.results[0].runtime == "onnxruntime"
        assert run.fastest is not None and run.fastest.startswith("onnxruntime/")
    assert report


def test_fleet_bench_on_unknown_device_fails_fast(ray_cluster: Any) -> None:
    with pytest.raises(InvalidInputError, match="gpu"):
        fleet_bench(MNIST, ["onnxruntime"], address=ray_cluster.address, fleet=FleetOptions(devices=("gpu",)))


def test_fleet_port_brings_back_each_devices_artifacts(ray_cluster: Any, tmp_path: Path) -> None:
    from modelport.formats import Precision
    from modelport.porting.pipeline import PortOptions

    options = PortOptions(targets=("onnxruntime",), precisions=(Precision.FP32,), quick=True)
    report = fleet_port(
        MNIST, tmp_path, address=ray_cluster.address, options=options, fleet=FleetOptions(devices=("pi4",))
    )
    (run,) = report.runs
    assert run.error is None and run.port is not None and run.port.fastest == "onnxruntime/fp32"
    assert (tmp_path / "devices" / "pi4" / "report.html").exists()
    assert (tmp_path / "devices" / "pi4" / "targets" / "onnxruntime-fp32" / "model.onnx").exists()
    assert (tmp_path / "fleet.json").exists()


def test_one_failing_device_does_not_stop_the_others(ray_cluster: Any) -> None:
    report = fleet_bench(MNIST, ["no-such-runtime"], address=ray_cluster.address, options=QUICK)
    assert not report
    assert {r.device for r in report.runs} == {"pi4", "nuc"}
    assert all(r.error and "no-such-runtime" in r.error for r in report.runs)


def test_cli_cluster_status_lists_every_node(ray_cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from modelport.cli.main import main

    # doctor imports every engine on every node at once: slow on 2 shared cores
    assert main(["cluster", "status", ray_cluster.address, "--json", "--wait", "600"]) == 0
    status = json.loads(capsys.readouterr().out)
    alive = [s for s in status["nodes"] if s["node"]["alive"]]
    assert sorted(s["node"]["device"] for s in alive if s["node"]["device"]) == ["nuc", "nuc", "pi4"]
    for s in alive:
        assert s["error"] is None
        assert any(r["name"] == "onnxruntime" and r["available"] for r in s["doctor"]["runtimes"])
    assert status["mismatched"] == []


def test_cli_bench_on_one_device(ray_cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from modelport.cli.main import main

    code = main(
        ["bench", str(MNIST), "--cluster", ray_cluster.address, "--devices", "pi4", "-n", "20", "--warmup", "2"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "pi4 (node" in out and "fastest on pi4: onnxruntime/" in out


def test_cli_devices_without_cluster_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    from modelport.cli.main import main

    assert main(["bench", str(MNIST), "--devices", "pi4"]) == 2
    assert "--devices needs --cluster" in capsys.readouterr().err


def test_unreachable_cluster_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    from modelport.cli.main import main

    assert main(["bench", str(MNIST), "--cluster", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to a Ray cluster at 127.0.0.1:1" in err and len(err.strip().splitlines()) == 1


def test_a_node_lost_mid_run_is_retried_on_another_node_of_its_device(ray_cluster: Any) -> None:
    """Last in the module: it removes a node from the shared cluster."""
    import threading

    long = BenchOptions(timing=BenchConfig(warmup=2, seconds=15.0))
    victim = ray_cluster.device_nodes["nuc"]  # the nuc with the most CPUs: tried first

    def kill_when_started(line: str) -> None:
        if line.startswith("nuc: started"):
            threading.Timer(5.0, ray_cluster.remove_node, args=(victim,)).start()

    report = fleet_bench(
        MNIST,
        ["onnxruntime"],
        address=ray_cluster.address,
        options=long,
        fleet=FleetOptions(devices=("nuc",), timeout_s=300),
        progress=kill_when_started,
    )
    (run,) = report.runs
    assert run.attempts == 2, run
    assert run.node_id == ray_cluster.device_nodes["nuc-b"].node_id
    assert run.error is None and run.bench is not None
