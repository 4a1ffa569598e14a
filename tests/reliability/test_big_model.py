"""A model over protobuf's 2 GiB round-trips: load → optimize → save with external data → load, same outputs.

The model is an embedding table of 2.03 GiB (float32 [8.5M, 64], written straight to an external data file by
numpy, a 64 MiB block repeated) read by a Gather whose indices the graph computes from its float input, then a
small MatMul and an Identity for the optimizer to remove. The flow runs in a child process so that its own peak
memory can be measured (its ``ru_maxrss``): it must stay under 8 GiB (the table is held at most twice, never thrice).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.helper as oh
import pytest
from onnx import numpy_helper

ROWS, WIDTH, OUT = 8_500_000, 64, 8
TABLE_BYTES = ROWS * WIDTH * 4  # 2,176,000,000 > 2 GiB
BLOCK_ROWS = 2**18  # the table repeats this block: row r holds block[r % BLOCK_ROWS]
PEAK_LIMIT = 8 * 2**30
X = np.array([0.1, -2.5, 3.75, 8.0], np.float32)  # rows 100000, 2500000, 3750000, 8000000


def _block() -> np.ndarray:
    rows = np.arange(BLOCK_ROWS, dtype=np.int64)[:, None]
    return (((rows * 7 + np.arange(WIDTH) * 13) % 1009) / 1009).astype(np.float32)


def _expected() -> np.ndarray:
    idx = (np.abs(X) * np.float32(1e6)).astype(np.int64) % ROWS
    w = np.linspace(-1, 1, WIDTH * OUT, dtype=np.float32).reshape(WIDTH, OUT)
    return _block()[idx % BLOCK_ROWS] @ w


def build(folder: Path) -> Path:
    """Write ``folder/big.onnx`` and its 2 GiB ``table.bin`` without holding the table in memory."""
    folder.mkdir(parents=True, exist_ok=True)
    block = _block().tobytes()
    with open(folder / "table.bin", "wb") as data:
        for start in range(0, ROWS, BLOCK_ROWS):
            data.write(block[: (min(ROWS, start + BLOCK_ROWS) - start) * WIDTH * 4])
    table = onnx.TensorProto(name="table", data_type=onnx.TensorProto.FLOAT, dims=[ROWS, WIDTH])
    table.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "table.bin"), ("offset", "0"), ("length", str(TABLE_BYTES))):
        entry = table.external_data.add()
        entry.key, entry.value = key, value
    weights = [
        table,
        numpy_helper.from_array(np.linspace(-1, 1, WIDTH * OUT, dtype=np.float32).reshape(WIDTH, OUT), "w"),
        numpy_helper.from_array(np.array(1e6, np.float32), "scale"),
        numpy_helper.from_array(np.array(ROWS, np.int64), "rows"),
    ]
    nodes = [
        oh.make_node("Abs", ["x"], ["a"]),
        oh.make_node("Mul", ["a", "scale"], ["s"]),
        oh.make_node("Cast", ["s"], ["i"], to=onnx.TensorProto.INT64),
        oh.make_node("Mod", ["i", "rows"], ["idx"]),
        oh.make_node("Gather", ["table", "idx"], ["emb"], axis=0),
        oh.make_node("MatMul", ["emb", "w"], ["mm"]),
        oh.make_node("Identity", ["mm"], ["y"]),
    ]
    graph = oh.make_graph(
        nodes,
        "big",
        [oh.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [4])],
        [oh.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4, OUT])],
        weights,
    )
    path = folder / "big.onnx"
    onnx.save(oh.make_model(graph, opset_imports=[oh.make_opsetid("", 17)], ir_version=8), path)
    return path


def flow(work: Path) -> dict[str, object]:
    """The round trip (run in the child): outputs of the original and of the re-loaded optimized model."""
    import modelport
    from modelport.backends import open_runner
    from modelport.model_io import load_proto
    from modelport.passes.api import OptimizeOptions

    source = build(work / "src")
    with open_runner("onnxruntime", source) as runner:
        before = runner.infer({"x": X})["y"]
    # the default passes (dedup-initializers skips hashing when no two initializers are alike); the test verifies
    # the outputs itself (verify=True would save two more 2 GiB copies)
    options = OptimizeOptions(verify=False)
    result = modelport.optimize(source, options=options)
    nodes = (result.report.nodes_before, result.report.nodes_after)
    out = work / "out" / "opt.onnx"
    result.write(out)
    del result
    skeleton = load_proto(out, load_external_data=False)  # the guard and the checker, by path
    with open_runner("onnxruntime", out) as runner:
        after = runner.infer({"x": X})["y"]
    return {
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "before": before.tolist(),
        "after": after.tolist(),
        "nodes": nodes,
        "files": sorted((p.name, p.stat().st_size) for p in out.parent.iterdir()),
        "external": sorted(
            {e.value for t in skeleton.graph.initializer for e in t.external_data if e.key == "location"}
        ),
    }


@pytest.mark.slow
def test_model_over_two_gib_round_trips(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    assert free > 3 * TABLE_BYTES, f"the test needs {3 * TABLE_BYTES / 2**30:.1f} GiB free in {tmp_path}"
    code = (
        "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); import test_big_model as t; "
        "print('RESULT ' + json.dumps(t.flow(Path(sys.argv[2]))))"
    )
    args = [sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    child = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert child.returncode == 0, child.stderr[-4000:]
    result = json.loads(next(ln for ln in child.stdout.splitlines() if ln.startswith("RESULT "))[len("RESULT ") :])
    assert result["peak_rss"] < PEAK_LIMIT, f"peak RSS {result['peak_rss'] / 2**30:.2f} GiB"
    np.testing.assert_array_equal(np.array(result["before"], np.float32), np.array(result["after"], np.float32))
    # against numpy's float32 matmul: summation order differs by kernel and ISA, hence fp32's verification tolerance
    np.testing.assert_allclose(np.array(result["after"], np.float32), _expected(), rtol=1e-4, atol=1e-5)
    assert result["nodes"] == [7, 6]  # the Identity is gone
    files = dict(result["files"])
    assert result["external"] == ["opt.onnx.data"] and files["opt.onnx.data"] >= TABLE_BYTES
    assert files["opt.onnx"] < 2**20 and set(files) == {"opt.onnx", "opt.onnx.data"}
