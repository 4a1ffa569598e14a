"""``rewrite``: rules by name and by target profile, the op check, the tolerance from the rules' contracts, a wrong
rule caught by the verification, the NMS split (written as three files that ``detect`` runs), bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnxscript.rewriter import RewriteRuleClassBase, RewriteRuleSet

import models
from detectors import nms_model, white
from modelport.apps.detect import Detector, DetectorOptions
from modelport.apps.vision.model import resolve_app_model
from modelport.errors import InvalidInputError, PassError, VerificationError
from modelport.rewriting import RewriteOptions, rewrite
from modelport.rewriting.nms_split import read_split, sidecar
from modelport.rules import catalog
from modelport.rules.catalog import Exactness, RuleSettings, RuleSpec

ERF_ABS = """
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 16] x) => (float[N, 16] y) {
        a = Erf(x)
        y = Abs(a)
    }
"""


def test_target_profile_removes_the_ops_it_cannot_run(tmp_path: Path) -> None:
    source = models.save(models.parse(ERF_ABS), tmp_path / "m.onnx")
    before = source.read_bytes()
    result = rewrite(source, options=RewriteOptions(target="tflite"))
    report = result.report
    assert report.unsupported_before == (("Erf", 1),) and report.unsupported_after == ()
    assert (report.rules[0].name, report.rules[0].matches) == ("erf-decompose", 1)
    assert "Erf" not in report.ops_after and report.ops_after["Exp"] == 1
    assert report.verification is not None and report.verification.passed
    assert report.verification.max_abs < 1e-6  # the erf approximation's measured error, far below its bound
    assert "fp32" in report.tolerance_basis
    written = result.write(tmp_path / "out.onnx")
    assert written.outputs == (str(tmp_path / "out.onnx"),)
    onnx.checker.check_model(onnx.load(str(tmp_path / "out.onnx")), full_check=True)
    assert source.read_bytes() == before  # the input is never modified
    with pytest.raises(InvalidInputError, match="refusing to overwrite"):
        result.write(source)


def test_named_rules_run_after_the_profile_and_once_each() -> None:
    options = RewriteOptions(rules=("abs-to-sqrt-square", "erf-decompose"), target="tflite")
    report = rewrite(models.parse(ERF_ABS), options=options).report
    names = [r.name for r in report.rules]
    assert names[0] == "erf-decompose" and names.count("erf-decompose") == 1 and names[-1] == "abs-to-sqrt-square"
    # the Abs of the model and the one inside the decomposed erf are both rewritten
    assert dict((r.name, r.matches) for r in report.rules)["abs-to-sqrt-square"] == 2
    assert "Abs" not in report.ops_after


class _AbsToIdentity(RewriteRuleClassBase):
    """A wrong rule: Abs(x) → x (differs for every negative x)."""

    def pattern(self, op, x):  # type: ignore[no-untyped-def]
        return op.Abs(x)

    def rewrite(self, op, x):  # type: ignore[no-untyped-def]
        return op.Identity(x)


def test_a_wrong_rule_fails_the_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    catalog.target_rules()
    spec = RuleSpec(
        "abs-to-identity", "wrong", lambda s: RewriteRuleSet([_AbsToIdentity.rule()]), ("Abs",), (), Exactness.EXACT,
        None, __name__,
    )  # fmt: skip
    monkeypatch.setitem(catalog._REGISTRY, "abs-to-identity", spec)
    with pytest.raises(VerificationError, match="differs from the source"):
        rewrite(models.parse(ERF_ABS), options=RewriteOptions(rules=("abs-to-identity",)))


def test_bad_rules_and_targets() -> None:
    model = models.parse(ERF_ABS)
    with pytest.raises(PassError, match="unknown rule 'abs-to-sqrt'") as info:
        rewrite(model, options=RewriteOptions(rules=("abs-to-sqrt",)))
    assert "abs-to-sqrt-square" in str(info.value)  # the valid names are listed
    with pytest.raises(PassError, match="unknown target 'coral'"):
        rewrite(model, options=RewriteOptions(target="coral"))
    with pytest.raises(InvalidInputError, match="--rules or --target"):
        rewrite(model, options=RewriteOptions())


def test_the_op_check_counts_grouped_convs() -> None:
    """A grouped Conv is an op the Edge TPU lacks although it runs Conv: the check names it, the profile splits it."""
    rng = np.random.default_rng(0)
    model = models.build(
        """
            <ir_version: 8, opset_import: ["" : 17]>
            g (float[N, 4, 8, 8] x) => (float[N, 4, 8, 8] y) { y = Conv<group=2, pads=[1, 1, 1, 1]>(x, w) }
        """,
        w=rng.normal(0, 0.3, (4, 2, 3, 3)).astype(np.float32),
    )
    report = rewrite(model, options=RewriteOptions(target="edgetpu")).report
    assert report.unsupported_before == (("Conv(grouped)", 1),) and report.unsupported_after == ()
    assert report.ops_after["Conv"] == 2 and report.verification is not None and report.verification.passed


def test_a_refused_match_says_why() -> None:
    model = models.parse("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[N, 8] x) => (float[N, 8] y) { y = LeakyRelu<alpha=2.5>(x) }
    """)
    report = rewrite(model, options=RewriteOptions(rules=("leakyrelu-to-max",))).report
    assert report.rules[0].matches == 0 and report.verification is None
    assert any("2.5" in why for why in report.rules[0].refused), report.rules[0].refused


def test_nothing_to_rewrite_is_not_verified() -> None:
    report = rewrite(models.mlp(), options=RewriteOptions(target="tflite")).report
    assert report.matches == 0 and report.verification is None
    assert report.unsupported_before == report.unsupported_after == ()


# --- split-nms -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("guarded", [False, True])
def test_split_nms_writes_head_tail_and_description(tmp_path: Path, guarded: bool) -> None:
    source = nms_model(tmp_path / "nms.onnx", guarded)
    result = rewrite(source, options=RewriteOptions(target="tensorrt"))
    report = result.report
    assert report.unsupported_before == (("NonMaxSuppression", 1),) and report.unsupported_after == ()
    assert report.verification is not None and report.verification.passed
    assert report.verification.max_abs == 0.0  # the host NMS selects exactly what the operator selects
    out = tmp_path / "split" / "det.onnx"
    out.parent.mkdir()
    written = result.write(out)
    assert written.outputs == (str(out), str(out.with_suffix(".tail.onnx")), str(sidecar(out)))
    head = onnx.load(str(out))
    assert not any(n.op_type in ("NonMaxSuppression", "If") for n in head.graph.node)
    cut = read_split(sidecar(out))
    assert cut is not None and cut.head == out and (cut.max_per_class, cut.iou) == (3, pytest.approx(0.5))
    assert json.loads(sidecar(out).read_text())["head"] == "det.onnx"  # relative: the folder can move


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_detect_runs_a_split_model_like_the_source(tmp_path: Path, runtime: str) -> None:
    source = nms_model(tmp_path / "nms.onnx", guarded=True)
    out = tmp_path / "det.onnx"
    rewrite(source, options=RewriteOptions(rules=("split-nms",))).write(out)
    image = white(64, 64)
    with Detector(resolve_app_model(out, runtime=runtime), DetectorOptions(score=0.3)) as det:
        assert det.cut is not None and "host" in det.nms
        split = det(image)
    options = DetectorOptions(score=0.3, in_graph_nms=True)
    with Detector(resolve_app_model(source, runtime="onnxruntime"), options) as det:
        graph = det(image)
    assert len(graph) >= 2
    np.testing.assert_array_equal(split.class_ids, graph.class_ids)
    np.testing.assert_allclose(split.scores, graph.scores, atol=1e-6)
    np.testing.assert_allclose(split.boxes, graph.boxes, atol=1e-4)


def test_split_nms_without_nms_changes_nothing(tmp_path: Path) -> None:
    result = rewrite(models.mlp(), options=RewriteOptions(rules=("split-nms",)))
    assert [(r.name, r.matches) for r in result.report.rules] == [("split-nms", 0)]
    written = result.write(tmp_path / "m.onnx")
    assert written.outputs == (str(tmp_path / "m.onnx"),) and not sidecar(tmp_path / "m.onnx").exists()


def test_rule_settings_reach_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[RuleSettings] = []

    class Probe:
        def apply_to_model(self, model: ir.Model) -> int:
            return 0

    def factory(settings: RuleSettings) -> Probe:
        seen.append(settings)
        return Probe()

    catalog.target_rules()
    spec = RuleSpec("probe", "probe", factory, ("Abs",), (), Exactness.EXACT, None, __name__)
    monkeypatch.setitem(catalog._REGISTRY, "probe", spec)
    rewrite(models.parse(ERF_ABS), options=RewriteOptions(rules=("probe",), settings=RuleSettings(depthwise=True)))
    assert seen == [RuleSettings(depthwise=True)]
