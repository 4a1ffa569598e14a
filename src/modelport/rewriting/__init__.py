"""Target rewrites: ``modelport rewrite`` applies named rules or a target profile, verified; the NMS split."""

from __future__ import annotations

from modelport.rewriting.api import RewriteOptions, RewriteResult, plan_rules, rewrite, rule_tolerance
from modelport.rewriting.report import RewriteReport, RuleApplied

__all__ = ["RewriteOptions", "RewriteReport", "RewriteResult", "RuleApplied", "plan_rules", "rewrite", "rule_tolerance"]
