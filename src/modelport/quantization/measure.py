"""Measuring variants side by side: interleaved latency rounds and evaluation against FP32.

Latency: the variants are timed in alternating rounds (fp32, int8, fp32, int8 …) and each variant's samples are
pooled, so a change in machine load during the measurement hits every variant alike; the median is compared.
Speed-up is ``p50(fp32) / p50(variant)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from modelport.backends.runner import Runner
from modelport.benchmark.timing import BenchConfig, LatencyStats, time_callable
from modelport.evaluate import topk_hits
from modelport.quantization.calibration import SampleSet, padded_batches
from modelport.quantization.report import Metric
from modelport.verify.compare import Tolerance, compare_outputs

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


def bench_feeds(samples: SampleSet, batch: int) -> dict[str, np.ndarray]:
    """``batch`` real samples (repeated when the set holds fewer) for the latency measurement."""
    idx = np.arange(batch) % len(samples)
    return {k: np.ascontiguousarray(v[idx]) for k, v in samples.inputs.items()}


def run_samples(runner: Runner, samples: SampleSet, batch: int, fixed: bool) -> dict[str, np.ndarray]:
    """Every sample through ``runner`` in batches; outputs concatenated along axis 0 (padding dropped)."""
    names = runner.output_names
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for feeds, n in padded_batches(samples, batch, fixed):
        out = runner.infer(feeds)
        for name in names:
            chunks[name].append(np.asarray(out[name])[:n])
    return {n: np.concatenate(c) for n, c in chunks.items()}


def is_classifier(outputs: Mapping[str, np.ndarray], samples: SampleSet) -> bool:
    """One 2-D score output with at least two classes (and room for every label)."""
    if len(outputs) != 1:
        return False
    scores = next(iter(outputs.values()))
    if scores.ndim != 2 or scores.shape[1] < 2 or scores.dtype.kind != "f":
        return False
    return samples.labels is None or int(samples.labels.max()) < scores.shape[1]


def metric(
    outputs: Mapping[str, np.ndarray],
    samples: SampleSet,
    reference: Mapping[str, np.ndarray] | None = None,
    tolerance: Tolerance | None = None,
) -> Metric:
    """Top-1/top-5 with labels; against ``reference`` (FP32's outputs) the error statistics and top-1 agreement."""
    classifier = is_classifier(outputs, samples)
    top1 = top5 = agreement = None
    scores = next(iter(outputs.values()))
    if classifier and samples.labels is not None:
        ks = [1, 5] if scores.shape[1] > 5 else [1]
        hits = topk_hits(scores, samples.labels, ks)
        top1, top5 = hits[0], (hits[1] if len(hits) > 1 else None)
    error = None
    if reference is not None:
        error = compare_outputs(
            reference,
            outputs,
            tolerance or Tolerance.for_precision("int8"),
            reference_label="fp32",
            candidate_label="quantized",
        )
        if classifier:
            ref = next(iter(reference.values()))
            agreement = float(np.mean(np.argmax(ref, axis=1) == np.argmax(scores, axis=1)))
    return Metric(samples.name, len(samples), top1, top5, agreement, error)
