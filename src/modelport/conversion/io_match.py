"""Moved to :mod:`modelport.verify.matching` (the comparator's tensor matching); this name re-exports it until
the last importers (``conversion/tf_onnx.py``, ``conversion/onnx_tflite.py``, ``conversion/tflite.py``,
``benchmarks/bench_convert.py``) import from there. Do not add new imports of this module."""

from __future__ import annotations

from modelport.verify.matching import (
    adapt_feed,
    adapt_feeds,
    align_output,
    align_outputs,
    canonical,
    match_name,
    pair_names,
)

__all__ = ["adapt_feed", "adapt_feeds", "align_output", "align_outputs", "canonical", "match_name", "pair_names"]
