"""Benchmarking: timing loops and latency statistics."""
