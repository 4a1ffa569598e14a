"""What ``port`` tries when the user names no runtime or precision: what this machine has and executes fast.

**Runtimes.** Every port target runtime (:data:`PORT_RUNTIMES`) whose engine is installed and that has a device
here: ONNX Runtime, OpenVINO and LiteRT on any CPU; TensorRT only when a GPU is present.

**Precisions** (read from the CPU flags and GPUs that ``doctor`` reports, :mod:`modelport.reports.environment`):

- fp32 always — the reference every other precision is judged against;
- bf16 when the CPU computes it natively (``avx512_bf16`` or AMX ``amx_bf16``): OpenVINO's CPU plugin runs bf16
  kernels there, twice the FLOPs of fp32 per instruction, and elsewhere it would emulate them slowly;
- fp16 when a GPU is present or the CPU has AMX-FP16 (``amx_fp16``); on other CPUs an fp16 artifact computes in
  fp32 with compressed weights, which is smaller, not faster;
- int8 always: every x86-64 CPU with AVX2 has integer dot-product kernels (VNNI and AMX make them faster), and the
  INT8 target carries its own accuracy guard (``quantize``'s verdict and recovery ladder).

A pair a runtime does not execute on this device is reported as skipped, as with explicit choices.
"""

from __future__ import annotations

from modelport.backends import get_backend
from modelport.formats import Precision
from modelport.reports.environment import Environment

#: the runtimes ``port`` builds targets for, in the order they are tried and shown.
PORT_RUNTIMES = ("onnxruntime", "openvino", "litert", "tensorrt")
#: CPU flags under which bf16 is computed natively.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
#: CPU flags under which fp16 is computed natively.
FP16_FLAGS = ("amx_fp16",)


def default_runtimes(env: Environment) -> tuple[str, ...]:
    """The installed port runtimes that have a device on this machine."""
    found = []
    for name in PORT_RUNTIMES:
        devices = dict(get_backend(name).precisions)
        usable = "cpu" in devices or (bool(env.gpus) and bool(set(devices) & {"cuda", "gpu"}))
        if usable and get_backend(name).installed():
            found.append(name)
    return tuple(found)


def default_precisions(env: Environment) -> tuple[Precision, ...]:
    """fp32, then the precisions this hardware executes fast (see the module docstring), then int8."""
    chosen = [Precision.FP32]
    if any(env.has_flag(f) for f in BF16_FLAGS):
        chosen.append(Precision.BF16)
    if env.gpus or any(env.has_flag(f) for f in FP16_FLAGS):
        chosen.append(Precision.FP16)
    chosen.append(Precision.INT8)
    return tuple(chosen)


def explain(env: Environment, runtimes: tuple[str, ...], precisions: tuple[Precision, ...]) -> str:
    """One sentence: what was chosen for this machine and why."""
    flags = [f for f in (*BF16_FLAGS, *FP16_FLAGS, "avx512_vnni", "avx_vnni", "amx_int8") if env.has_flag(f)]
    gpu = f"GPU {', '.join(env.gpus)}" if env.gpus else "no GPU"
    return (
        f"chosen for this machine ({env.cpu_model or env.machine}; {', '.join(flags) or 'no bf16/VNNI/AMX flags'}; "
        f"{gpu}): runtimes {', '.join(runtimes)}; precisions {', '.join(p.value for p in precisions)}"
    )
