"""`rules`: first match wins, SQL conditions, nulls, fallbacks and config errors."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import polars as pl
import pytest

from simulator.errors import InvalidConfig, PolicysimError, UnknownName
from tests.policies.conftest import Build

ACTIONS = ("allow", "challenge", "block")
BATCH = pl.DataFrame(
    {
        "amount": [10.0, 600.0, 600.0, None, 150.0],
        "card_country": ["FR", "BR", "FR", "US", "DE"],
        "fraud_score": [0.2, 0.95, 0.3, 0.5, 0.75],
    }
)


def rules(*pairs: tuple[str, str], fallback: Any = "allow") -> dict[str, Any]:
    """A rules table from (when, action) pairs."""
    rule_list = [{"when": when, "action": action} for when, action in pairs]
    return {"kind": "rules", "rules": rule_list, "fallback": fallback}


def chosen(probs: np.ndarray) -> list[str]:
    """The action each one-hot row puts 1 on."""
    return [ACTIONS[i] for i in probs.argmax(axis=1)]


def test_first_match_wins(build: Build) -> None:
    policy = build(rules(("fraud_score >= 0.9", "block"), ("amount > 500", "challenge")))
    # Row 1 matches both rules (0.95 >= 0.9 and 600 > 500): the first, block, wins.
    assert chosen(policy.probabilities(BATCH)) == ["allow", "block", "challenge", "allow", "allow"]


def test_fallback_decides_unmatched_rows(build: Build) -> None:
    threshold = {"kind": "threshold", "score": "fraud_score", "challenge_above": 0.5, "block_above": 0.7}
    policy = build(rules(("card_country = 'FR'", "allow"), fallback=threshold))
    # FR rows are allowed whatever their score; BR 0.95 blocks, US 0.5 challenges, DE 0.75 blocks.
    assert chosen(policy.probabilities(BATCH)) == ["allow", "block", "allow", "challenge", "block"]


@pytest.mark.parametrize(
    ("when", "matches"),
    [
        ("amount > 100 AND card_country = 'FR'", [False, False, True, False, False]),
        ("card_country = 'BR' OR fraud_score < 0.25", [True, True, False, False, False]),
        ("amount BETWEEN 10 AND 150", [True, False, False, False, True]),
        ("card_country IN ('US', 'DE')", [False, False, False, True, True]),
        ("card_country NOT IN ('FR') AND NOT fraud_score > 0.9", [False, False, False, True, True]),
        ("(amount > 500 OR fraud_score > 0.7) AND card_country <> 'BR'", [False, False, True, False, True]),
        ("amount IS NULL", [False, False, False, True, False]),
        ("card_country LIKE 'F%'", [True, False, True, False, False]),
        ("TRUE", [True] * 5),
    ],
)
def test_sql_conditions(build: Build, when: str, matches: list[bool]) -> None:
    probs = build(rules((when, "block"))).probabilities(BATCH)
    assert chosen(probs) == ["block" if match else "allow" for match in matches]


def test_null_condition_is_no_match(build: Build) -> None:
    # Row 3 has a null amount: `amount > 100` is null (unknown), not true, so rule 0 does not
    # match and row 3 goes on to rule 1.
    policy = build(rules(("amount > 100", "block"), ("card_country = 'US'", "challenge")))
    assert chosen(policy.probabilities(BATCH)) == ["allow", "block", "block", "challenge", "block"]


def test_fallback_sees_only_unmatched_rows(build: Build) -> None:
    # A null score would make the threshold fallback raise; the rule catches it first.
    batch = pl.DataFrame({"fraud_score": [None, 0.9, 0.1]}, schema={"fraud_score": pl.Float64})
    fallback = {"kind": "threshold", "score": "fraud_score", "block_above": 0.8}
    policy = build(rules(("fraud_score IS NULL", "challenge"), fallback=fallback))
    assert chosen(policy.probabilities(batch)) == ["challenge", "block", "allow"]


def test_coded_by_rule_then_fallback_code(build: Build) -> None:
    fallback = {"kind": "threshold", "score": "fraud_score", "block_above": 0.7}
    coded = build(rules(("amount > 500", "challenge"), fallback=fallback)).coded(BATCH)
    assert coded is not None
    # Codes 0..n_rules-1 are the rules; the threshold's codes (chosen action) follow: 1 + 0 allow, 1 + 2 block.
    np.testing.assert_array_equal(coded.codes, [1, 0, 0, 1, 3])
    np.testing.assert_array_equal(coded.table, [[0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_capabilities_follow_the_fallback(build: Build) -> None:
    stochastic = {"kind": "python", "object": "tests.policies.example_user_policy:BlockShareByAuthScore"}
    constant = build(rules(("amount > 500", "block")))
    uncoded = build(rules(("amount > 500", "block"), fallback=stochastic))
    assert constant.columns == frozenset({"amount"}) and constant.deterministic
    assert uncoded.columns == frozenset({"amount", "auth_score"}) and not uncoded.deterministic
    assert uncoded.coded(BATCH.with_columns(auth_score=pl.lit(0.9))) is None


def test_columns_of_every_condition(build: Build) -> None:
    policy = build(rules(("amount > 1 AND card_country = 'FR'", "block"), ("channel = 'moto'", "challenge")))
    assert policy.columns == frozenset({"amount", "card_country", "channel"})


def test_bad_sql(build: Build) -> None:
    message = "policies[0].rules[1].when: cannot parse SQL 'amount >': unable to parse 'amount >' as Expr"
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build(rules(("amount > 1", "block"), ("amount >", "block")))


@pytest.mark.parametrize(
    "when", ["amount > AVG(amount)", "COUNT(*) > 10", "amount > MAX(amount) OVER (PARTITION BY card_country)"]
)
def test_aggregations_are_refused(build: Build, when: str) -> None:
    message = "policies[0].rules[0].when: must be computed row by row, but it aggregates over the batch"
    with pytest.raises(InvalidConfig, match=re.escape(message) + ".*" + re.escape(f"got {when!r}")):
        build(rules((when, "block")))


def test_unknown_column_hints_at_quotes(build: Build) -> None:
    message = "policies[0].rules[0].when: unknown column 'FR'; known: "
    hint = "(in SQL, 'text' is a string and \"text\" a column name)"
    with pytest.raises(UnknownName, match=re.escape(message) + ".*" + re.escape(hint)):
        build(rules(('card_country = "FR"', "block")))


def test_unknown_action(build: Build) -> None:
    message = (
        "policies[0].rules[0].action: unknown action 'blok'; known: allow, block, challenge (did you mean 'block'?)"
    )
    with pytest.raises(UnknownName, match=re.escape(message)):
        build(rules(("amount > 1", "blok")))


def test_unknown_fallback_action(build: Build) -> None:
    with pytest.raises(UnknownName, match=re.escape("policies[0].fallback: unknown action 'review'")):
        build(rules(("amount > 1", "block"), fallback="review"))


def test_fallback_must_be_an_action_or_a_table(build: Build) -> None:
    message = "policies[0].fallback: must be an action name or a policy table {kind = ...}, got 3"
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build(rules(("amount > 1", "block"), fallback=3))


def test_nested_fallback_errors_carry_their_path(build: Build) -> None:
    with pytest.raises(InvalidConfig, match=re.escape("policies[0].fallback.block_above: must be <= 1, got 2")):
        build(rules(("amount > 1", "block"), fallback={"kind": "threshold", "score": "fraud_score", "block_above": 2}))


def test_at_least_one_rule(build: Build) -> None:
    with pytest.raises(InvalidConfig, match=re.escape("policies[0].rules: list should have at least 1 item")):
        build(rules())


def test_condition_must_be_true_or_false(build: Build) -> None:
    message = "policies[0].rules[0].when: must be a condition (true or false), got Float64"
    with pytest.raises(PolicysimError, match=re.escape(message)):
        build(rules(("amount + 1", "block"))).probabilities(BATCH)


def test_type_errors_surface_at_run_time(build: Build) -> None:
    message = "policies[0].rules[0].when: cannot evaluate 'card_country > 1': cannot compare string with numeric type"
    with pytest.raises(PolicysimError, match=re.escape(message)):
        build(rules(("card_country > 1", "block"))).probabilities(BATCH)
