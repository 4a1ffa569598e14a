"""TensorRT runner: a serialized engine (``.engine``/``.plan``) on a CUDA GPU.

Device memory comes from PyTorch's CUDA allocator (``torch.empty(..., device="cuda")``): TensorRT's Python API
takes raw device pointers, and torch is the CUDA array library this project already depends on. Each call
copies the feeds to the GPU, binds every I/O tensor by name (``set_tensor_address``), sets dynamic input shapes
(``set_input_shape``), runs ``execute_async_v3`` on the current stream and copies the outputs back.

An engine is built for one GPU architecture and TensorRT version: load it where it was built. The engine's
precision (fp32/fp16/int8) was fixed when it was built (see :mod:`modelport.conversion.tensorrt`).

Backend: TensorRT: builds and runs engines on NVIDIA GPUs only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modelport.backends import register_backend
from modelport.backends.base import Backend
from modelport.backends.runner import Runner, RunnerInfo
from modelport.errors import InferenceError, ModelLoadError, RuntimeUnavailable, optional_import
from modelport.formats import Format, Precision
from modelport.inputs import TensorSpec


def import_tensorrt() -> Any:
    """Import tensorrt or raise RuntimeUnavailable naming the extra."""
    hint = "pip install 'modelport[tensorrt]' on a machine with an NVIDIA GPU"
    return optional_import("tensorrt", extra="tensorrt", what="TensorRT", hint=hint)


def require_cuda() -> Any:
    """torch with a usable CUDA device, or RuntimeUnavailable (TensorRT runs on NVIDIA GPUs only)."""
    try:
        import torch
    except ImportError as exc:
        raise RuntimeUnavailable("the TensorRT runner needs torch with CUDA", hint="pip install torch") from exc
    if not torch.cuda.is_available():
        raise RuntimeUnavailable("TensorRT needs a CUDA GPU and none is visible here", hint="run on a GPU machine")
    return torch


def _np_dtype(trt: Any, dtype: Any) -> np.dtype:
    return np.dtype(trt.nptype(dtype))


class TensorRTRunner(Runner):
    """Runs a TensorRT engine file on GPU 0 (always the GPU: the default ``options.device`` "cpu" means GPU 0 too)."""

    name = "tensorrt"

    def load(self) -> None:
        trt = import_tensorrt()
        torch = require_cuda()
        if self.options.device.lower() not in ("cuda", "gpu", "tensorrt", "cpu"):
            raise RuntimeUnavailable(f"TensorRT runs on a CUDA GPU, not {self.options.device!r}")
        if not self.model_path.is_file():
            raise ModelLoadError("engine file not found", path=self.model_path)
        logger = trt.Logger(trt.Logger.WARNING)  # TensorRT prints INFO lines by default
        runtime = trt.Runtime(logger)
        engine = runtime.deserialize_cuda_engine(self.model_path.read_bytes())
        if engine is None:
            raise ModelLoadError(
                "TensorRT cannot deserialize the engine (built by another TensorRT version or for another GPU?)",
                path=self.model_path,
                hint="rebuild it here with `modelport convert model.onnx --to tensorrt`",
            )
        self._trt, self._torch, self._runtime, self._engine = trt, torch, runtime, engine
        self._context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._output_list = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._inputs = [
            TensorSpec(
                n,
                _np_dtype(trt, engine.get_tensor_dtype(n)).name,
                tuple(None if d < 0 else int(d) for d in engine.get_tensor_shape(n)),
            )
            for n in inputs
        ]
        self._stream = torch.cuda.Stream()

    def close(self) -> None:
        self._context = None
        self._engine = None
        self._runtime = None

    @property
    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._output_list)

    def info(self) -> RunnerInfo:
        torch = self._torch
        return RunnerInfo(
            runtime=self.name,
            version=self._trt.__version__,
            device="cuda",
            requested_precision=self.options.precision.value,
            executed_precision=self._engine_precision(),
            threads=None,
            details=(("device_name", torch.cuda.get_device_name(0)),),
        )

    def _engine_precision(self) -> str:
        """The precision the engine's layers run in, read from its inspector (engines built by modelport keep
        detailed layer information; fp32 when an engine does not say)."""
        try:
            inspector = self._engine.create_engine_inspector()
            text = inspector.get_engine_information(self._trt.LayerInformationFormat.JSON)
        except AttributeError:  # pragma: no cover - very old TensorRT
            return "fp32"
        if "Int8" in text or "INT8" in text:
            return "int8"
        if "Half" in text or "FP16" in text:
            return "fp16"
        return "fp32"

    def _run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        torch, ctx, trt, engine = self._torch, self._context, self._trt, self._engine
        keep: list[Any] = []
        with torch.cuda.stream(self._stream):
            for spec in self._inputs:
                arr = np.ascontiguousarray(feeds[spec.name])
                dev = torch.from_numpy(arr).to("cuda", non_blocking=False)
                keep.append(dev)
                ctx.set_input_shape(spec.name, tuple(arr.shape))
                ctx.set_tensor_address(spec.name, dev.data_ptr())
            outputs = []
            for name in self._output_list:
                shape = tuple(ctx.get_tensor_shape(name))
                dtype = _np_dtype(trt, engine.get_tensor_dtype(name))
                out = torch.empty(shape, dtype=_torch_dtype(torch, dtype), device="cuda")
                ctx.set_tensor_address(name, out.data_ptr())
                outputs.append(out)
            if not ctx.execute_async_v3(self._stream.cuda_stream):
                raise InferenceError("TensorRT execution failed", path=self.model_path)
        self._stream.synchronize()
        return [o.cpu().numpy() for o in outputs]


def _torch_dtype(torch: Any, dtype: np.dtype) -> Any:
    table = {
        np.dtype(np.float32): torch.float32,
        np.dtype(np.float16): torch.float16,
        np.dtype(np.int32): torch.int32,
        np.dtype(np.int64): torch.int64,
        np.dtype(np.int8): torch.int8,
        np.dtype(np.uint8): torch.uint8,
        np.dtype(np.bool_): torch.bool,
    }
    return table[dtype]


def probe() -> tuple[str, tuple[str, ...]]:
    """The engine's version and the devices it sees here (imports the engine; RuntimeUnavailable without it)."""
    m = import_tensorrt()
    return str(m.__version__), ("cuda",)


# ---------------------------------------------------------------------------------------------------
# The descriptor

F32, F16, BF16, I8 = Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8

BACKEND = register_backend(
    Backend(
        name="tensorrt",
        aliases=("trt",),
        formats=(Format.TENSORRT,),
        precisions=(("cuda", (F32, F16, I8)),),
        runner="modelport.backends.tensorrt:TensorRTRunner",
        extra="tensorrt",
        probe="modelport.backends.tensorrt:probe",
        engine="tensorrt",
    )
)
