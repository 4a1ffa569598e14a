"""Measuring variants side by side: interleaved latency rounds, and each variant's outputs against FP32's.

Latency: the variants are timed in alternating rounds (fp32, int8, fp32, int8 …) and each variant's samples are
pooled, so a change in machine load during the measurement hits every variant alike; the median is compared.
Speed-up is ``p50(fp32) / p50(variant)``. Task metrics (top-1/top-5, agreement) come from
:mod:`modelport.data.evaluate`, the code ``port`` evaluates with.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from modelport.backends.runner import Runner
from modelport.benchmark.timing import BenchConfig, LatencyStats, time_callable
from modelport.data.samples import SampleSet
from modelport.verify.compare import Comparison, Tolerance, compare_outputs

ROUNDS = 3


def interleaved_latency(
    runners: Sequence[Runner], feeds: Mapping[str, np.ndarray], config: BenchConfig, rounds: int = ROUNDS
) -> list[LatencyStats]:
    """Time each runner on ``feeds`` in ``rounds`` alternating rounds; one LatencyStats per runner."""
    feed_dict = dict(feeds)
    for r in runners:
        r.infer(feed_dict)  # check the feeds once, outside the timed loop
    per_round = BenchConfig(
        warmup=config.warmup,
        iterations=None if config.iterations is None else max(1, math.ceil(config.iterations / rounds)),
        seconds=config.seconds / rounds,
        min_iterations=max(1, math.ceil(config.min_iterations / rounds)),
    )
    samples: list[list[float]] = [[] for _ in runners]
    for i in range(rounds):
        cfg = per_round if i == 0 else dataclasses.replace(per_round, warmup=min(per_round.warmup, 2))
        for j, r in enumerate(runners):
            run = r.run_raw
            samples[j] += time_callable(lambda run=run: run(feed_dict), cfg)  # type: ignore[misc]
    return [LatencyStats.from_seconds(s) for s in samples]


def bench_feeds(samples: SampleSet, batch: int, whole: bool = False) -> dict[str, np.ndarray]:
    """``batch`` real samples (repeated when the set holds fewer) for the latency measurement; the first feed of a
    whole-feed set (:mod:`modelport.quantization.feeds`)."""
    if whole:
        return {k: np.array(v[0]) for k, v in samples.inputs.items()}  # np.array keeps 0-d feeds 0-d
    idx = np.arange(batch) % len(samples)
    return {k: np.ascontiguousarray(v[idx]) for k, v in samples.inputs.items()}


def error_against_fp32(
    reference: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray], tolerance: Tolerance | None = None
) -> Comparison:
    """A variant's outputs against FP32's on the same samples (default: the int8 tolerance)."""
    return compare_outputs(
        reference,
        outputs,
        tolerance or Tolerance.for_precision("int8"),
        reference_label="fp32",
        candidate_label="quantized",
    )
