"""A bounded smoke of the fuzz campaign for CI: seeded damaged ONNX, TFLite and OpenVINO IR files through the CLI.

Each format gets ``CASES`` distinct cases (byte-level and structural mutations of small real seeds, see
:mod:`fuzz_seeds`); every case runs ``inspect`` and a seeded few also ``compare``/``optimize``/``convert``, each
verb as the CLI's ``main()`` in a forked child with a timeout and a memory cap (``campaign.run_forked``). The
test asserts zero uncaught exceptions, crashes and hangs: every failure is one ``modelport: error:`` line. The
full campaign (``tests/fuzz/campaign.py``, ≥ 1,000 cases per format) is documented in docs/reliability.md.
About 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import subprocess
import sys
from pathlib import Path

import campaign
import fuzz_seeds
import mutators
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CASES = 40
SEED = 15


def opts() -> argparse.Namespace:
    return campaign.parse_args(
        ["--format", "onnx", "--out", "unused", "--in-process", "--heavy", "0.05", "--heavy-timeout", "150"]
    )


def smoke(fmt: str, seeds: list[mutators.Model], out: Path) -> list[campaign.Result]:
    options = opts()
    results: list[campaign.Result] = []
    for index, recipe in campaign.distinct_recipes(seeds, fmt, CASES, SEED):
        results += campaign.run_case(fmt, index, recipe, out, options, random.Random(index ^ SEED))
    return results


def report(results: list[campaign.Result]) -> str:
    return "\n".join(
        f"case {r.case} {r.verb} {r.outcome} (exit {r.exit_code}): {r.stderr_tail[-600:]}"
        for r in results
        if r.outcome in campaign.BAD
    )


def run_smoke(fmt: str, folder: str) -> list[dict[str, object]]:
    """The smoke of one format, in the process that calls it (see :func:`test_fuzz_smoke`)."""
    seeds = {
        "onnx": lambda: [fuzz_seeds.onnx_seed()],
        "tflite": lambda: [fuzz_seeds.tflite_seed()],
        "openvino": lambda: [fuzz_seeds.openvino_seed(Path(folder) / "seed")],
    }[fmt]()
    return [dataclasses.asdict(r) for r in smoke(fmt, seeds, Path(folder) / "out")]


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "openvino"])
def test_fuzz_smoke(tmp_path: Path, fmt: str) -> None:
    # The cases fork from a fresh parent, as the campaign's do: forked from this test process they would inherit
    # whatever earlier tests left in it (engine thread pools, a forkserver), which is not what a user's run meets.
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import test_fuzz_smoke as t; "
        "print('RESULTS ' + json.dumps(t.run_smoke(sys.argv[2], sys.argv[3])))"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), fmt, str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-4000:]
    line = next(ln for ln in child.stdout.splitlines() if ln.startswith("RESULTS "))
    results = [campaign.Result(**r) for r in json.loads(line[len("RESULTS ") :])]
    inspected = [r for r in results if r.verb == "inspect"]
    assert len(inspected) == CASES, "every distinct case ran inspect"
    assert {r.outcome for r in inspected} <= {"ok", "error"}, report(results)
    assert {r.outcome for r in inspected} == {"ok", "error"}, "the mutations both damage and spare the models"
    assert not [r for r in results if r.outcome in campaign.BAD], report(results)


def test_classify() -> None:
    """The campaign's verdicts: what counts as a clean error, a noisy one, an escape, a crash and a hang."""
    one = "modelport: error: x.onnx: truncated or corrupt\n"
    assert campaign.classify(2, one, timed_out=False) == "error"
    assert campaign.classify(2, "WARNING some.lib: noise\n" + one, timed_out=False) == "noisy"
    assert campaign.classify(0, "", timed_out=False) == "ok"
    assert campaign.classify(1, "", timed_out=False) == "ok"  # compare: outputs differ
    escaped = 'Traceback (most recent call last):\n  File "x"\nIndexError: list index out of range\n'
    assert campaign.classify(1, escaped, timed_out=False) == "uncaught"
    assert campaign.classify(campaign.UNCAUGHT_EXIT, "", timed_out=False) == "uncaught"
    assert campaign.classify(-11, "", timed_out=False) == "crash"
    assert campaign.classify(-9, "", timed_out=True) == "hang"


def test_mutators_are_deterministic_and_damage() -> None:
    seed = fuzz_seeds.onnx_seed()
    for name in mutators.mutator_names("onnx"):
        first = mutators.mutate(seed, name, 7)
        assert first == mutators.mutate(seed, name, 7), name
    changed = sum(mutators.mutate(seed, n, 7) != seed.as_dict() for n in mutators.mutator_names("onnx"))
    assert changed >= len(mutators.mutator_names("onnx")) - 2  # a mutator may find nothing to change on a seed
