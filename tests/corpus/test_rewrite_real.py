"""Target rewrites on real models of the corpus test subset: each rule or profile removes what it says, the model
still computes the same thing (verified by the comparator on plain and signed feeds), and the split or fused
ops stay where the target runs them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx
import pytest

from modelport import RewriteOptions, rewrite

CorpusModel = Callable[[str], Path]


def _ops(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in onnx.load(str(path)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def test_prelu_to_relu_on_mtcnn_pnet(corpus_model: CorpusModel, tmp_path: Path) -> None:
    source = corpus_model("mtcnn_pnet")
    result = rewrite(source, options=RewriteOptions(rules=("prelu-to-relu",)))
    report = result.write(tmp_path / "pnet.onnx")
    assert report.rules[0].matches == 3 and "PRelu" not in _ops(tmp_path / "pnet.onnx")
    assert report.verification is not None and report.verification.passed
    assert report.verification.max_abs < 1e-4


def test_edgetpu_profile_on_basic_pitch(corpus_model: CorpusModel, tmp_path: Path) -> None:
    """basic-pitch's 9 Neg become Mul by −1; its depthwise convolutions are left alone (the Edge TPU runs them)."""
    source = corpus_model("basic_pitch_onnx")
    report = rewrite(source, options=RewriteOptions(target="edgetpu")).write(tmp_path / "bp.onnx")
    matches = {r.name: r.matches for r in report.rules}
    assert matches["neg-to-mul"] == 9
    assert ("Neg", 9) in report.unsupported_before and all(op != "Neg" for op, _ in report.unsupported_after)
    assert report.verification is not None and report.verification.passed


@pytest.mark.parametrize("depthwise", [False, True])
def test_split_group_conv_on_rapidocr_cls(corpus_model: CorpusModel, tmp_path: Path, depthwise: bool) -> None:
    """PP-LCNet's grouped convolutions are all depthwise: skipped by default, split with ``depthwise``."""
    from modelport.rules.catalog import RuleSettings

    source = corpus_model("rapidocr_cls_v2")
    options = RewriteOptions(rules=("split-group-conv",), settings=RuleSettings(depthwise=depthwise))
    result = rewrite(source, options=options)
    matches = result.report.rules[0].matches
    if not depthwise:
        assert matches == 0 and result.report.verification is None
        return
    assert matches == 11
    grouped = [
        n
        for n in result.model.graph.node
        if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute)
    ]
    assert grouped == []
    assert result.report.verification is not None and result.report.verification.passed


def test_pow_to_mul_inside_silero_branches_on_the_users_feeds(corpus_model: CorpusModel) -> None:
    """silero_vad's Pows sit in If branches, and only a real sample rate drives it: verified on the user's feeds."""
    import numpy as np

    source = corpus_model("silero_vad")
    rng = np.random.default_rng(0)
    feeds = {
        "input": rng.uniform(-0.5, 0.5, (1, 512)).astype(np.float32),
        "state": np.zeros((2, 1, 128), np.float32),
        "sr": np.array(16000, np.int64),
    }
    report = rewrite(source, options=RewriteOptions(rules=("pow-to-mul",)), feeds=feeds).report
    assert report.rules[0].matches >= 2 and "Pow" not in report.ops_after
    assert report.verification is not None and report.verification.passed
