"""Small PyTorch modules for the PyTorch runner and converter tests (imported as ``torch_nets:factory``)."""

from __future__ import annotations

import torch


class ConvNet(torch.nn.Module):
    """image[N,3,16,16] → conv → BN → ReLU → pool → linear[10]."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(image)))
        return self.fc(h.mean(dim=(2, 3)))


class DataDependent(torch.nn.Module):
    """Branches on a tensor's value: torch.export cannot trace it, the legacy (tracing) exporter can."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x)
        if y.sum() > -1e9:  # data-dependent: always true, but torch.export refuses to guess
            return y * 2
        return y


class TwoOutputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(6, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lin(a) + b, torch.sigmoid(a).sum(dim=1)


def convnet() -> torch.nn.Module:
    torch.manual_seed(0)
    model = ConvNet()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def convnet_with_examples() -> torch.nn.Module:
    model = convnet()
    model.example_inputs = (torch.rand(2, 3, 16, 16),)  # type: ignore[assignment]
    return model


def data_dependent() -> torch.nn.Module:
    torch.manual_seed(1)
    return DataDependent().eval()


def two_outputs() -> torch.nn.Module:
    torch.manual_seed(2)
    return TwoOutputs().eval()


def not_a_module() -> object:
    return object()
