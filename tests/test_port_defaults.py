"""port's defaults for this machine: installed runtimes with a device here, and the precisions the CPU flags and
GPUs say run fast (bf16 only with AVX512-BF16/AMX, fp16 only with a GPU or AMX-FP16, int8 always)."""

from __future__ import annotations

import dataclasses

import pytest

from modelport.formats import Precision
from modelport.porting.defaults import default_precisions, default_runtimes, explain
from modelport.porting.pipeline import choose_targets
from modelport.porting.results import PortOptions
from modelport.reports.environment import Environment, capture_environment

F32, F16, BF16, I8 = Precision.FP32, Precision.FP16, Precision.BF16, Precision.INT8


def _env(flags: tuple[str, ...], gpus: tuple[str, ...] = ()) -> Environment:
    return dataclasses.replace(capture_environment(), cpu_flags=flags, gpus=gpus)


@pytest.mark.parametrize(
    ("flags", "gpus", "expected"),
    [
        (("avx2", "fma"), (), (F32, I8)),  # AVX2 only: bf16 would be emulated, fp16 computes in fp32
        (("avx512f", "avx512_vnni", "avx512_bf16"), (), (F32, BF16, I8)),
        (("avx512f", "amx_bf16", "amx_int8", "amx_tile"), (), (F32, BF16, I8)),
        (("avx512f", "amx_bf16", "amx_fp16"), (), (F32, BF16, F16, I8)),
        (("avx2",), ("NVIDIA H200",), (F32, F16, I8)),
    ],
)
def test_precisions_follow_the_hardware(flags: tuple[str, ...], gpus: tuple[str, ...], expected: tuple) -> None:
    assert default_precisions(_env(flags, gpus)) == expected


def test_runtimes_are_the_installed_ones_with_a_device() -> None:
    cpu_only = default_runtimes(_env(("avx2",)))
    assert cpu_only[:2] == ("onnxruntime", "openvino")  # both installed by the setup
    assert "tensorrt" not in cpu_only  # CUDA only, no GPU here
    assert "litert-noxnnpack" not in cpu_only and "torch" not in cpu_only  # not port targets


def test_explicit_choices_win_and_the_report_says_why() -> None:
    env = _env(("avx512_bf16",))
    runtimes, precisions, why = choose_targets(PortOptions(targets=("ov",), precisions=(F32,)), env)
    assert (runtimes, precisions, why) == (("openvino",), (F32,), "runtimes and precisions as asked")
    runtimes, precisions, why = choose_targets(PortOptions(), env)
    assert precisions == (F32, BF16, I8) and why == explain(env, runtimes, precisions)
    assert "avx512_bf16" in why and "no GPU" in why
