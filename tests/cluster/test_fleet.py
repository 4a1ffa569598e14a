"""bench/port across device nodes of a real (loopback) Ray cluster, cluster status, and the failure paths."""

from __future__ import annotations

import json
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


def test_fleet_port_builds_once_and_each_device_measures_the_build(ray_cluster: Any, tmp_path: Path) -> None:
    from modelport.formats import Precision
    from modelport.porting.pipeline import PortOptions
    from modelport.porting.results import PREBUILT_HOP

    options = PortOptions(targets=("onnxruntime", "openvino"), precisions=(Precision.FP32,), quick=True)
    report = fleet_port(
        MNIST, tmp_path, address=ray_cluster.address, options=options, fleet=FleetOptions(devices=("pi4", "nuc"))
    )
    assert report, report
    assert report.build is not None
    assert [a.label for a in report.build.artifacts] == ["onnxruntime/fp32", "openvino/fp32"]
    build_xml = tmp_path / "build" / "targets" / "openvino-fp32" / "model.xml"
    for run in report.runs:
        assert run.error is None and run.port is not None and run.port.fastest is not None
        folder = tmp_path / "devices" / run.device
        ov = next(t for t in run.port.targets if t.runtime == "openvino")
        assert ov.verified and ov.route[-1] == PREBUILT_HOP, ov.route  # measured there, converted once here
        assert Path(ov.artifact) == folder / "targets" / "openvino-fp32" / "model.xml"
        assert Path(ov.artifact).read_bytes() == build_xml.read_bytes()
        assert (folder / "targets" / "openvino-fp32" / "runtime.json").exists()  # the device's own settings
        assert run.port.source == str(MNIST)  # not the node's temporary copy
        assert str(folder) in (folder / "report.md").read_text()
    assert build_xml.read_bytes().startswith(b"<?xml")
    fleet = json.loads((tmp_path / "fleet.json").read_text())
    assert fleet["build"]["artifacts"][1]["artifact"] == "targets/openvino-fp32/model.xml"
    md = (tmp_path / "fleet.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| openvino/fp32 |"))
    assert row.count(" ms") == 2, row  # measured on both devices
    assert sum(line.count("★") for line in md.splitlines() if line.startswith("| ")) == 2  # one per device
    page = (tmp_path / "fleet.html").read_text()
    assert 'href="devices/pi4/report.html"' in page and "Built once on" in page


def test_fleet_port_sends_local_calibration_and_evaluation_files(ray_cluster: Any, tmp_path: Path) -> None:
    import numpy as np

    from modelport.formats import Precision
    from modelport.porting.pipeline import PortOptions, default_eval_set

    _, samples = default_eval_set(limit=200)
    (name,) = samples.inputs
    np.savez(tmp_path / "calib.npz", **{name: samples.inputs[name][:100]})
    np.savez(tmp_path / "eval.npz", **{name: samples.inputs[name][100:]}, labels=samples.labels[100:])
    options = PortOptions(
        targets=("onnxruntime",),
        precisions=(Precision.INT8,),
        calib=tmp_path / "calib.npz",
        eval=str(tmp_path / "eval.npz"),
        quick=True,
        budget=0,
    )
    out = tmp_path / "out"
    report = fleet_port(MNIST, out, address=ray_cluster.address, options=options, fleet=FleetOptions(devices=("pi4",)))
    (run,) = report.runs
    assert run.error is None and run.port is not None, run.error
    assert run.port.calibration == "INT8 calibrated on 64 samples of feeds:calib.npz"  # --quick: 64
    (int8,) = run.port.targets
    assert int8.accuracy is not None and int8.accuracy.samples == 100 and int8.accuracy.top1 is not None
    assert report.build is not None and report.build.artifacts == ()  # INT8 is built on the device


def test_fleet_port_refuses_in_memory_data() -> None:
    import numpy as np

    from modelport.porting.pipeline import PortOptions

    with pytest.raises(InvalidInputError, match="not a ndarray"):
        fleet_port(MNIST, "unused", address="127.0.0.1:1", options=PortOptions(calib=np.zeros((4, 1, 28, 28))))


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
    assert "median latency per runtime and device" in out


def test_cli_port_on_one_device(ray_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from modelport.cli.main import main

    args = ["port", str(MNIST), "--cluster", ray_cluster.address, "--devices", "pi4", "-o", str(tmp_path)]
    code = main([*args, "--to", "onnxruntime", "--precision", "fp32", "--quick", "--budget", "0"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "fastest verified on pi4: onnxruntime/fp32" in out
    assert "built once on " in out and ": onnxruntime/fp32" in out
    assert (tmp_path / "devices" / "pi4" / "targets" / "onnxruntime-fp32" / "model.onnx").exists()


def test_cli_devices_without_cluster_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    from modelport.cli.main import main

    assert main(["bench", str(MNIST), "--devices", "pi4"]) == 2
    assert "--devices needs --cluster" in capsys.readouterr().err


def test_unreachable_cluster_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    from modelport.cli.main import main

    assert main(["bench", str(MNIST), "--cluster", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "cannot connect to a Ray cluster at 127.0.0.1:1" in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_keeps_the_devices_that_finished(ray_cluster: Any, tmp_path: Path) -> None:
    from modelport.formats import Precision
    from modelport.porting.pipeline import PortOptions

    options = PortOptions(targets=("onnxruntime",), precisions=(Precision.FP32,), quick=True, budget=0)

    def interrupt_after_the_first(line: str) -> None:
        if line.endswith(": done"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fleet_port(
            MNIST, tmp_path, address=ray_cluster.address, options=options, fleet=FleetOptions(devices=("pi4", "nuc")),
            progress=interrupt_after_the_first,
        )  # fmt: skip
    fleet = json.loads((tmp_path / "fleet.json").read_text())
    assert fleet["interrupted"] is True
    runs = {r["device"]: r for r in fleet["runs"]}
    finished = [d for d, r in runs.items() if r["port"] is not None]
    stopped = [d for d, r in runs.items() if r["error"] == "interrupted (Ctrl-C) before it finished"]
    assert len(finished) == 1 and len(stopped) == 1, runs
    assert "Interrupted" in (tmp_path / "fleet.md").read_text()


def test_two_drivers_benchmarking_one_device_take_turns(ray_cluster: Any) -> None:
    """Two fleet runs submitted at once for the same device: the device's quantity-1 resource (and its CPUs, all
    reserved) make them run one after the other, never side by side."""
    import threading

    import ray

    from modelport.cluster.connection import NAMESPACE

    ray.init(address=ray_cluster.address, namespace=NAMESPACE, log_to_driver=False)  # shared by both runs
    try:
        options = BenchOptions(timing=BenchConfig(warmup=2, seconds=2.0))
        reports: list[Any] = []

        def run() -> None:
            reports.append(fleet_bench(MNIST, ["onnxruntime"], address=ray_cluster.address, options=options,
                                       fleet=FleetOptions(devices=("pi4",))))  # fmt: skip

        threads = [threading.Thread(target=run) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    finally:
        ray.shutdown()
    assert len(reports) == 2
    (first,), (second,) = sorted((r.runs for r in reports), key=lambda runs: runs[0].ran[0])
    assert first.error is None and second.error is None
    assert first.ran is not None and second.ran is not None
    assert first.ran[1] <= second.ran[0], (first.ran, second.ran)  # the second started after the first ended


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
