"""The environment a report was made in: Python, packages, CPU flags, GPUs, memory.

Package versions come from installed metadata (nothing heavy is imported to read them); CPU flags from
/proc/cpuinfo (Linux) and GPUs from ``nvidia-smi`` when present.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import time

from modelport.reports.serialize import JsonReport

#: Distribution names whose versions every report records.
PACKAGES = (
    "modelport",
    "numpy",
    "onnx",
    "onnx-ir",
    "onnxscript",
    "onnxruntime",
    "onnxruntime-gpu",
    "openvino",
    "nncf",
    "tensorflow",
    "tf-keras",
    "tf2onnx",
    "onnx2tf",
    "ai-edge-litert",
    "torch",
    "torchvision",
    "tensorrt",
    "faster-whisper",
    "ctranslate2",
    "av",
    "opencv-python-headless",
    "ray",
)

#: CPU features that change which kernels runtimes pick.
CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "amx_fp16",
    "asimd",
    "asimddp",
    "sve",
)


@dataclasses.dataclass(frozen=True)
class Environment(JsonReport):
    """Where a measurement was made."""

    python: str
    platform: str
    machine: str
    cpu_model: str
    cpu_count: int
    cpu_flags: tuple[str, ...]
    memory_gb: float
    gpus: tuple[str, ...]
    packages: tuple[tuple[str, str], ...]
    timestamp: str

    @property
    def package_versions(self) -> dict[str, str]:
        return dict(self.packages)

    def has_flag(self, flag: str) -> bool:
        return flag in self.cpu_flags

    def summary(self) -> str:
        flags = ", ".join(self.cpu_flags) or "none detected"
        return f"{self.cpu_model} ({self.cpu_count} cores; {flags}), {self.memory_gb:.0f} GiB, Python {self.python}"


def cpu_description() -> str:
    """The CPU model and core count, without importing any engine (what a light record needs)."""
    return f"{_cpuinfo()[0]}, {os.cpu_count() or 1} cores"


def _cpuinfo() -> tuple[str, set[str]]:
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "Hardware") and model in ("", platform.machine()):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


def _memory_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return 0.0


def detect_gpus() -> tuple[str, ...]:
    """NVIDIA GPUs reported by nvidia-smi (name, memory), or an empty tuple."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return ()
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in out.splitlines() if line.strip())


def package_versions(names: tuple[str, ...] = PACKAGES) -> tuple[tuple[str, str], ...]:
    """(name, version) of each installed distribution in ``names``."""
    found = []
    for name in names:
        try:
            found.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            continue
    return tuple(found)


def capture_environment() -> Environment:
    """Record this machine and the installed engines."""
    model, flags = _cpuinfo()
    return Environment(
        python=platform.python_version(),
        platform=platform.platform(),
        machine=platform.machine(),
        cpu_model=model,
        cpu_count=os.cpu_count() or 1,
        cpu_flags=tuple(f for f in CPU_FLAGS if f in flags),
        memory_gb=round(_memory_gb(), 1),
        gpus=detect_gpus(),
        packages=package_versions(),
        timestamp=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
