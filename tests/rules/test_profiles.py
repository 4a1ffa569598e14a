"""Target profiles: every rule they name exists, none changes numerics by design, each removes an op its target
cannot run, and the op check reads allowlists and denylists right."""

from __future__ import annotations

import pytest

from modelport.errors import PassError
from modelport.rules.catalog import Exactness, rule_spec, target_rules
from modelport.rules.profiles import PROFILES, profile


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_rules_exist_and_keep_numerics(name: str) -> None:
    p = PROFILES[name]
    assert p.rules and p.source and p.summary
    for rule in p.rules:
        assert rule_spec(rule).exactness is not Exactness.CHANGES, f"{name} applies {rule} silently"


@pytest.mark.parametrize("name", [n for n, p in PROFILES.items() if p.supported is not None or p.unsupported])
def test_each_profile_rule_removes_an_op_the_target_cannot_run(name: str) -> None:
    p = PROFILES[name]
    for rule in p.rules:
        removes = rule_spec(rule).removes
        assert p.cannot_run(removes), f"{name}: {rule} removes only ops it runs ({removes})"


def test_cannot_run_allowlist_denylist_and_domains() -> None:
    edgetpu, tflite = profile("edgetpu"), profile("tflite")
    assert edgetpu.cannot_run(["Conv", "HardSwish", "Relu", "HardSwish", "GatherND"]) == ("GatherND", "HardSwish")
    assert tflite.cannot_run(["Conv", "Erf", "Atan"]) == ("Atan", "Erf")
    assert tflite.cannot_run(["com.microsoft::FusedConv"]) == ("com.microsoft::FusedConv",)


def test_unknown_target_lists_the_valid_ones() -> None:
    with pytest.raises(PassError, match="unknown target 'coral'") as info:
        profile("coral")
    assert "edgetpu" in str(info.value) and "openvino-cpu" in str(info.value)


def test_every_registered_rule_declares_its_contract() -> None:
    rules = target_rules()
    assert {"abs-to-sqrt-square", "erf-decompose", "split-nms"} <= set(rules)
    for spec in rules.values():
        assert spec.removes and spec.summary
        if spec.exactness is Exactness.APPROX:
            assert spec.bound is not None and 0 < spec.bound < 0.1
