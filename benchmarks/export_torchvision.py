"""Export torchvision classifiers (random weights) to ONNX for the benchmarks.

Runs in the benchmark environment (torch 2.14.1 + torchvision 0.29.1, see README "Benchmarks"):

    .venv-bench/bin/python benchmarks/export_torchvision.py resnet50 mobilenet_v2 --out benchmarks/.cache

Writes ``<name>.onnx`` with input ``input`` [1,3,224,224] (legacy exporter, opset 17, constant folding on),
skipping files that already exist.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def export(name: str, out_dir: Path, size: int = 224) -> Path:
    import torch
    import torchvision

    dst = out_dir / f"{name}.onnx"
    if dst.exists():
        return dst
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.rand(1, 3, size, size)
    tmp = dst.with_suffix(".onnx.tmp")
    with torch.no_grad():
        torch.onnx.export(
            model, (x,), str(tmp), input_names=["input"], output_names=["output"], opset_version=17, dynamo=False
        )
    tmp.replace(dst)
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/.cache"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        print(export(name, args.out))


if __name__ == "__main__":
    main()
