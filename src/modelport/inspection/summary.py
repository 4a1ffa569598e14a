"""What ``inspect`` reports about a model file: one summary type for every format."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from modelport.formats import Format
from modelport.inputs import TensorSpec
from modelport.reports.serialize import JsonReport

#: the file :meth:`ModelSummary.write` writes
REPORT_NAME = "inspect.json"


@dataclasses.dataclass(frozen=True)
class QuantizedTensor(JsonReport):
    """A TFLite tensor's quantization: per-tensor (one scale) or per-axis (``axis`` ≥ 0)."""

    name: str
    dtype: str
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int = -1


@dataclasses.dataclass(frozen=True)
class SignatureSummary(JsonReport):
    """A SavedModel or TFLite signature: its key, method and typed inputs/outputs (``None`` = ``-1`` dims)."""

    key: str
    method: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclasses.dataclass(frozen=True)
class ModelSummary(JsonReport):
    """The structure of a model file."""

    path: str
    format: Format
    file_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opsets: tuple[tuple[str, int], ...]
    op_histogram: tuple[tuple[str, int], ...]
    node_count: int
    parameter_count: int
    parameter_bytes: int
    external_data: tuple[str, ...] = ()
    producer: str = ""
    ir_version: int | None = None
    tensor_count: int = 0
    quantized: tuple[QuantizedTensor, ...] = ()
    signatures: tuple[SignatureSummary, ...] = ()

    def write(self, out_dir: str | Path) -> Path:
        """Write ``inspect.json`` into ``out_dir`` (created if needed) atomically; returns its path."""
        from modelport.model_io import write_text

        return write_text(Path(out_dir) / REPORT_NAME, self.to_json() + "\n")
