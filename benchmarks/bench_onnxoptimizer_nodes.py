"""Node counts of onnxoptimizer next to modelport's on the optimizer benchmark's corpus.

Reads the inputs and modelport outputs that ``benchmarks/bench_optimizer.py`` left in its work directory
(the torchvision exports) plus the nine ``onnx`` light models, runs onnxoptimizer with its default passes and
counts nodes (sub-graphs included):

    .venv-bench/bin/python benchmarks/bench_onnxoptimizer_nodes.py --work out/bench_optimizer
"""

from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path

import onnx

from modelport.passes import OptimizeOptions, optimize


def count(graph: onnx.GraphProto) -> int:
    n = 0
    for node in graph.node:
        n += 1
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                n += count(sub)
    return n


def corpus(work: Path) -> list[tuple[str, Path]]:
    light = Path(onnx.__file__).parent / "backend/test/data/light"
    items = [(Path(p).stem, Path(p)) for p in sorted(glob.glob(str(light / "*.onnx")))]
    for p in sorted(work.glob("*.onnx")):
        if p.stem.count(".") == 1 and p.stem.split(".")[1] in ("legacy", "dynamo"):
            items.append((p.stem, p))
    return items


def main() -> None:
    import onnxoptimizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("out/bench_optimizer"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/optimizer_onnxoptimizer.md"))
    args = parser.parse_args()
    lines = [
        "### onnxoptimizer node counts (same corpus)",
        "",
        f"onnxoptimizer {onnxoptimizer.__version__ if hasattr(onnxoptimizer, '__version__') else ''} with its"
        " default passes; modelport with its default passes (verification off). Command:",
        "`.venv-bench/bin/python benchmarks/bench_onnxoptimizer_nodes.py`.",
        "",
        "| model | input | onnxoptimizer | modelport | modelport ≤ onnxoptimizer | onnxoptimizer s |",
        "|---|---:|---:|---:|:---:|---:|",
    ]
    for name, path in corpus(args.work):
        proto = onnx.load(str(path))
        t0 = time.perf_counter()
        try:
            opt_nodes: int | str = count(onnxoptimizer.optimize(proto).graph)
        except Exception as exc:  # report the peer's failure, keep going
            opt_nodes = f"fail: {type(exc).__name__}"
        seconds = time.perf_counter() - t0
        ours = count(
            onnx.shape_inference.infer_shapes(
                __import__("onnx_ir").serde.serialize_model(optimize(path, options=OptimizeOptions(verify=False)).model)
            ).graph
        )
        ok = (
            "yes" if isinstance(opt_nodes, int) and ours <= opt_nodes else ("—" if isinstance(opt_nodes, str) else "no")
        )
        lines.append(f"| {name} | {count(proto.graph)} | {opt_nodes} | {ours} | {ok} | {seconds:.2f} |")
        print(lines[-1])
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
