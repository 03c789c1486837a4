"""A policy table in one short line, for a reviewer reading verdicts side by side.

`describe_policy({"kind": "threshold", "score": "fraud_score", "challenge_above": 0.05, "block_above": 0.3})`
gives `threshold fraud_score: challenge ≥ 0.05, block ≥ 0.3` (thresholds are
inclusive, policies/threshold.py). Kinds without a dedicated line show their
parameters as written. The text is for people; the config itself is in the
report's provenance section.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

RULES_SHOWN = 2  # a rules policy lists its first rules, then says how many more


def describe_policy(params: Mapping[str, Any]) -> str:
    """One line for a `[[policies]]` table (its `kind` and parameters, without the name)."""
    kind = str(params.get("kind", "?"))
    describe = _KINDS.get(kind, _generic)
    return describe(params)


def _cutoffs(params: Mapping[str, Any]) -> str:
    ladder = dict(params.get("above") or {})
    ladder |= {action: params[key] for action, key in (("challenge", "challenge_above"), ("block", "block_above"))
               if params.get(key) is not None}
    parts = [f"{action} ≥ {cut:g}" for action, cut in sorted(ladder.items(), key=lambda item: item[1])]
    below = params.get("below")
    return ", ".join(parts) + (f", else {below}" if below else "")


def _threshold(params: Mapping[str, Any]) -> str:
    return f"threshold {params.get('score')}: {_cutoffs(params)}"


def _segment_threshold(params: Mapping[str, Any]) -> str:
    thresholds: Mapping[str, Mapping[str, Any]] = params.get("thresholds") or {}
    values = "; ".join(f"{value}: {_cutoffs(cut)}" for value, cut in thresholds.items())
    return (f"segment_threshold {params.get('score')} by {params.get('column')}: default "
            f"{_cutoffs(params.get('default') or {})}" + (f"; {values}" if values else ""))


def _rules(params: Mapping[str, Any]) -> str:
    rules = list(params.get("rules") or [])
    shown = "; ".join(f"{r.get('action')} if {r.get('when')}" for r in rules[:RULES_SHOWN])
    more = f"; … {len(rules) - RULES_SHOWN} more rules" if len(rules) > RULES_SHOWN else ""
    fallback = params.get("fallback")
    otherwise = describe_policy(fallback) if isinstance(fallback, Mapping) else str(fallback)
    return f"rules: {shown}{more}; otherwise {otherwise}"


def _epsilon(params: Mapping[str, Any]) -> str:
    base = params.get("base")
    inner = describe_policy(base) if isinstance(base, Mapping) else str(base)
    return f"epsilon {params.get('epsilon')}: {inner} with uniform exploration"


def _python(params: Mapping[str, Any]) -> str:
    return f"python {params.get('object')}" + (f" {dict(params['params'])}" if params.get("params") else "")


def _generic(params: Mapping[str, Any]) -> str:
    rest = ", ".join(f"{key} = {value}" for key, value in params.items() if key != "kind")
    return f"{params.get('kind')}" + (f": {rest}" if rest else "")


_KINDS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "threshold": _threshold, "segment_threshold": _segment_threshold, "rules": _rules, "epsilon": _epsilon,
    "python": _python,
}
