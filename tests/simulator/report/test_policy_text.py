"""A policy table in one line, as the side-by-side review shows it next to each verdict."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.report.policy_text import describe_policy


@pytest.mark.parametrize(
    ("params", "text"),
    [
        ({"kind": "threshold", "score": "fraud_score", "challenge_above": 0.05, "block_above": 0.3},
         "threshold fraud_score: challenge ≥ 0.05, block ≥ 0.3"),
        ({"kind": "threshold", "score": "fraud_score", "block_above": 0.7}, "threshold fraud_score: block ≥ 0.7"),
        ({"kind": "segment_threshold", "score": "fraud_score", "column": "card_country",
          "default": {"block_above": 0.8}, "thresholds": {"BR": {"challenge_above": 0.2, "block_above": 0.6}}},
         "segment_threshold fraud_score by card_country: default block ≥ 0.8; BR: challenge ≥ 0.2, block ≥ 0.6"),
        ({"kind": "rules", "rules": [{"when": "amount > 500", "action": "challenge"},
                                     {"when": "fraud_score >= 0.9", "action": "block"},
                                     {"when": "channel = 'moto'", "action": "allow"}],
          "fallback": {"kind": "threshold", "score": "fraud_score", "block_above": 0.8}},
         "rules: challenge if amount > 500; block if fraud_score >= 0.9; … 1 more rules; "
         "otherwise threshold fraud_score: block ≥ 0.8"),
        ({"kind": "epsilon", "epsilon": 0.05, "base": {"kind": "threshold", "score": "s", "block_above": 0.5}},
         "epsilon 0.05: threshold s: block ≥ 0.5 with uniform exploration"),
        ({"kind": "python", "object": "pkg.mod:Cls"}, "python pkg.mod:Cls"),
        ({"kind": "mine", "level": 3}, "mine: level = 3"),
    ],
)
def test_describe_policy(params: dict[str, Any], text: str) -> None:
    assert describe_policy(params) == text
