"""`segment_threshold`: default versus per-value cutoffs, value matching, config errors."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest

from simulator.errors import InvalidConfig, UnknownName
from tests.policies.conftest import Build

SPEC = {
    "kind": "segment_threshold",
    "score": "fraud_score",
    "column": "card_country",
    "default": {"challenge_above": 0.5, "block_above": 0.8},
    "thresholds": {"BR": {"challenge_above": 0.3, "block_above": 0.6}, "FR": {"block_above": 0.9}},
}
ACTIONS = ("allow", "challenge", "block")


def chosen(probs: np.ndarray) -> list[str]:
    """The action each one-hot row puts 1 on."""
    return [ACTIONS[i] for i in probs.argmax(axis=1)]


def test_default_versus_overrides(build: Build) -> None:
    batch = pl.DataFrame(
        {
            "card_country": ["DE", "DE", "DE", "BR", "BR", "BR", "FR", "FR", "FR", None],
            "fraud_score": [0.49, 0.5, 0.8, 0.29, 0.3, 0.6, 0.5, 0.89, 0.9, 0.8],
        }
    )
    expected = [
        "allow", "challenge", "block",  # DE: default, challenge at 0.5, block at 0.8
        "allow", "challenge", "block",  # BR: challenge at 0.3, block at 0.6
        "allow", "allow", "block",  # FR: block at 0.9 only, never challenge
        "block",  # null country: default
    ]  # fmt: skip
    assert chosen(build(SPEC).probabilities(batch)) == expected


def test_values_match_as_text(build: Build) -> None:
    spec = {**SPEC, "column": "mcc", "thresholds": {"7995": {"block_above": 0.2}}}
    batch = pl.DataFrame({"mcc": [7995, 5411], "fraud_score": [0.3, 0.3]})
    # 7995 matches "7995": 0.3 >= 0.2 blocks; 5411 takes the default, 0.3 < 0.5 allows.
    assert chosen(build(spec, columns=None).probabilities(batch)) == ["block", "allow"]


def test_no_overrides_is_a_threshold(build: Build, frame: pl.DataFrame) -> None:
    plain = build({"kind": "threshold", "score": "fraud_score", "challenge_above": 0.5, "block_above": 0.8})
    segmented = build({**SPEC, "thresholds": {}})
    np.testing.assert_array_equal(segmented.probabilities(frame), plain.probabilities(frame))


def test_declares_its_capabilities(build: Build) -> None:
    policy = build(SPEC)
    assert policy.columns == frozenset({"fraud_score", "card_country"})
    assert (policy.deterministic, policy.logging) == (True, False)


def test_override_out_of_order(build: Build) -> None:
    spec = {**SPEC, "thresholds": {"BR": {"challenge_above": 0.7, "block_above": 0.6}}}
    message = "policies[0].thresholds.BR.block_above: must be > challenge_above (0.7), got 0.6"
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build(spec)


def test_missing_default(build: Build) -> None:
    spec = {key: value for key, value in SPEC.items() if key != "default"}
    message = "policies[0].default: missing; policy kind 'segment_threshold' requires it"
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build(spec)


def test_empty_override(build: Build) -> None:
    message = "policies[0].thresholds.FR: needs challenge_above and/or block_above"
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build({**SPEC, "thresholds": {"FR": {}}})


def test_unknown_segment_column(build: Build) -> None:
    with pytest.raises(UnknownName, match=re.escape("policies[0].column: unknown column 'country'; known: ")):
        build({**SPEC, "column": "country"})


def test_override_needs_an_action_missing_from_the_action_set(build: Build) -> None:
    message = (
        "policies[0].thresholds.BR.challenge_above: needs action 'challenge', "
        "which is not in the action set (allow, block)"
    )
    spec = {**SPEC, "default": {"block_above": 0.8}, "thresholds": {"BR": {"challenge_above": 0.3}}}
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build(spec, actions=("allow", "block"))
