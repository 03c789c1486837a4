"""`threshold`: known answers at and around the thresholds, and its config errors."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import PolicyContext, build_policy
from simulator.errors import InvalidConfig, PolicysimError, UnknownName
from tests.policies.conftest import Build

SPEC = {"kind": "threshold", "score": "fraud_score", "challenge_above": 0.4, "block_above": 0.7}


def chosen(probs: np.ndarray, actions: tuple[str, ...] = ("allow", "challenge", "block")) -> list[str]:
    """The action each one-hot row puts 1 on."""
    return [actions[i] for i in probs.argmax(axis=1)]


def test_inclusive_thresholds(build: Build) -> None:
    batch = pl.DataFrame({"fraud_score": [0.0, 0.39, 0.4, 0.41, 0.69, 0.7, 0.71, 1.0]})
    # score >= 0.7 blocks, else score >= 0.4 challenges: a score on a threshold takes the stricter action.
    expected = ["allow", "allow", "challenge", "challenge", "challenge", "block", "block", "block"]
    assert chosen(build(SPEC).probabilities(batch)) == expected


def test_block_only_never_challenges(build: Build) -> None:
    batch = pl.DataFrame({"fraud_score": [0.1, 0.5, 0.8, 0.9]})
    policy = build({"kind": "threshold", "score": "fraud_score", "block_above": 0.8})
    assert chosen(policy.probabilities(batch)) == ["allow", "allow", "block", "block"]


def test_challenge_only_works_without_block_action(build: Build) -> None:
    actions = ("allow", "challenge")
    policy = build({"kind": "threshold", "score": "fraud_score", "challenge_above": 0.5}, actions=actions)
    probs = policy.probabilities(pl.DataFrame({"fraud_score": [0.49, 0.5]}))
    assert probs.shape == (2, 2)
    assert chosen(probs, actions) == ["allow", "challenge"]


def test_columns_follow_the_action_order(build: Build) -> None:
    actions = ("block", "allow", "challenge")
    probs = build(SPEC, actions=actions).probabilities(pl.DataFrame({"fraud_score": [0.1, 0.5, 0.9]}))
    np.testing.assert_array_equal(probs, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])


def test_coded_is_the_chosen_action(build: Build) -> None:
    coded = build(SPEC).coded(pl.DataFrame({"fraud_score": [0.1, 0.5, 0.9]}))
    assert coded is not None
    np.testing.assert_array_equal(coded.codes, [0, 1, 2])
    np.testing.assert_array_equal(coded.table, np.eye(3))


def test_declares_its_capabilities(build: Build) -> None:
    policy = build(SPEC)
    assert (policy.columns, policy.deterministic, policy.logging) == (frozenset({"fraud_score"}), True, False)


@pytest.mark.parametrize("value", [None, float("nan")])
def test_null_or_nan_score_is_an_error(build: Build, value: float | None) -> None:
    batch = pl.DataFrame({"fraud_score": [0.5, value, 0.2]}, schema={"fraud_score": pl.Float64})
    message = "policies[0]: score column 'fraud_score' has 1 null or NaN rows"
    with pytest.raises(PolicysimError, match=re.escape(message)):
        build(SPEC).probabilities(batch)


def test_missing_column_at_run_time(build: Build) -> None:
    message = "policies[0]: the batch has no column 'fraud_score'; columns: amount"
    with pytest.raises(PolicysimError, match=re.escape(message)):
        build(SPEC).probabilities(pl.DataFrame({"amount": [1.0]}))


def test_text_score_is_an_error(build: Build) -> None:
    with pytest.raises(PolicysimError, match=re.escape("score column 'fraud_score' must be numeric, got String")):
        build(SPEC, columns=None).probabilities(pl.DataFrame({"fraud_score": ["high"]}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"block_above": 1.3}, "policies[0].block_above: must be <= 1, got 1.3"),
        ({"challenge_above": -0.1}, "policies[0].challenge_above: must be >= 0, got -0.1"),
        ({"challenge_above": 0.8}, "policies[0].block_above: must be > challenge_above (0.8), got 0.7"),
        ({"challenge_above": 0.7}, "policies[0].block_above: must be > challenge_above (0.7), got 0.7"),
        ({"challenge_above": None, "block_above": None}, "policies[0]: needs challenge_above and/or block_above"),
        ({"block_above": "0.9"}, "policies[0].block_above: input should be a valid number, got '0.9'"),
    ],
)
def test_invalid_thresholds(build: Build, change: dict[str, object], message: str) -> None:
    spec = {key: value for key, value in {**SPEC, **change}.items() if value is not None}
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build(spec)


def test_unknown_score_column(build: Build) -> None:
    message = "policies[0].score: unknown column 'fraud_scor'; known: "
    with pytest.raises(UnknownName, match=re.escape(message) + ".*" + re.escape("(did you mean 'fraud_score'?)")):
        build({**SPEC, "score": "fraud_scor"})


def test_unknown_columns_pass_when_the_data_is_unknown(build: Build) -> None:
    assert build({**SPEC, "score": "risk_score"}, columns=None).columns == frozenset({"risk_score"})


def test_action_missing_from_the_action_set(build: Build) -> None:
    message = "policies[0].challenge_above: needs action 'challenge', which is not in the action set (allow, block)"
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build(SPEC, actions=("allow", "block"))


unit = st.floats(min_value=0.0, max_value=1.0)


@given(scores=st.lists(unit, max_size=20), cutoffs=st.lists(unit, min_size=2, max_size=2, unique=True))
def test_matches_the_rule_written_out(scores: list[float], cutoffs: list[float]) -> None:
    challenge, block = sorted(cutoffs)
    spec = {"kind": "threshold", "score": "fraud_score", "challenge_above": challenge, "block_above": block}
    context = PolicyContext(actions=("allow", "challenge", "block"), columns=None)
    batch = pl.DataFrame({"fraud_score": scores}, schema={"fraud_score": pl.Float64})
    probs = build_policy(spec, context, where="policies[0]").probabilities(batch)
    assert chosen(probs) == ["block" if s >= block else "challenge" if s >= challenge else "allow" for s in scores]
