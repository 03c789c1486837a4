"""Which sums a plan needs and how each policy's weight enters them (simulator/plan/moments.py).

A row's weight is `coefficient(cell) · basis_i`. On a four-row log, compiled with one threshold
policy (and, where said, a per-row python policy or an epsilon mixture), these tests check the
basis of every kind of term, the per-cell coefficients, and the linear, quadratic and design sums
`needed_sums` asks a shard for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl
import pytest

from simulator.config import parse_config
from simulator.model.value import SUM_METRICS, Weighting
from simulator.plan.compiled import Plan, compile_plan
from simulator.plan.moments import (
    ANY_POLICY,
    DIRECT,
    INV_P,
    LOGGED_BLOCK,
    ONE,
    Cells,
    Term,
    coefficients,
    design_column,
    linear_column,
    metric_terms,
    needed_sums,
    product,
    quadratic_column,
    row_basis,
    row_block_basis,
    sum_terms,
    term_basis,
)

TARGET, BLOCKED, ALLOWED = Weighting.TARGET, Weighting.BLOCKED, Weighting.ALLOWED

# Four payments, every label mature (as_of far after created_at). The logging policy's full
# distribution is in logging_prob_*, and propensity is its probability of the logged action.
#   id  action     propensity  lp(allow, challenge, block)  fraud_score  auth_score
#   t1  allow      0.8         0.8  0.1  0.1                0.1          0.9
#   t2  challenge  0.8         0.1  0.8  0.1                0.5          0.6
#   t3  block      0.8         0.1  0.1  0.8                0.9          0.2
#   t4  allow      0.1         0.1  0.1  0.8                0.85         0.3
# `strict` (challenge >= 0.4, block >= 0.7) chooses allow, challenge, block, block.
ROWS = pl.DataFrame(
    {
        "transaction_id": ["t1", "t2", "t3", "t4"],
        "created_at": [datetime(2026, 1, 1, tzinfo=UTC)] * 4,
        "amount": [100.0, 50.0, 200.0, 80.0],
        "action": ["allow", "challenge", "block", "allow"],
        "propensity": [0.8, 0.8, 0.8, 0.1],
        "authorized": [True, True, None, True],
        "fraud_dispute": [False, False, None, True],
        "dispute_lost": [None, None, None, True],
        "fraud_score": [0.1, 0.5, 0.9, 0.85],
        "auth_score": [0.9, 0.6, 0.2, 0.3],
        "logging_prob_allow": [0.8, 0.1, 0.1, 0.1],
        "logging_prob_challenge": [0.1, 0.8, 0.1, 0.1],
        "logging_prob_block": [0.1, 0.1, 0.8, 0.8],
    }
)
LOGGING_PROBS = ["logging_prob_allow", "logging_prob_challenge", "logging_prob_block"]
STRICT = {"name": "strict", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.4, "block_above": 0.7}
SHARE = {"name": "share", "kind": "python", "object": "tests.policies.example_user_policy:BlockShareByAuthScore",
         "params": {}}
MIXED = {"name": "mixed", "kind": "epsilon", "epsilon": 0.3,
         "base": {"kind": "threshold", "score": "fraud_score", "challenge_above": 0.4, "block_above": 0.7}}


def plan_of(frame: pl.DataFrame = ROWS, policies: tuple[dict[str, Any], ...] = (STRICT,), baseline: str | None = None,
            **estimation: Any) -> Plan:
    config = parse_config({
        "data": {"as_of": datetime(2026, 12, 1, tzinfo=UTC)},
        "policies": list(policies),
        "estimation": {"min_ess": 0.0} | estimation,
        "baseline": {"policy": baseline},
    })
    return compile_plan(config, frame.lazy())


# -- bases -----------------------------------------------------------------------------------------


def test_the_logging_policys_target_basis_is_one_and_a_coded_policys_is_inv_p() -> None:
    plan = plan_of(policies=(STRICT,))
    # logging policy: π(a_logged|x) / propensity = propensity / propensity = 1
    assert term_basis(Term("logged", TARGET, "authorized"), plan) == ONE
    # a coded policy: coefficient π(a_logged | cell) times 1/propensity
    assert term_basis(Term("strict", TARGET, "authorized"), plan) == INV_P
    assert term_basis(Term("strict", BLOCKED, "fraud"), plan) == INV_P
    # the allowed weighting does not depend on the policy: [a = allow] / propensity
    assert term_basis(Term(ANY_POLICY, ALLOWED, "fraud"), plan) == INV_P
    # a DR direct-method value has no row weight at all
    assert term_basis(Term("strict", TARGET, "dm:authorized"), plan) == DIRECT


def test_a_policy_that_is_not_coded_has_per_row_bases() -> None:
    plan = plan_of(policies=(STRICT, SHARE))
    assert not plan.policy("share").coded and plan.policy("strict").coded
    assert term_basis(Term("share", TARGET, "authorized"), plan) == row_basis("share") == "t:share"
    assert term_basis(Term("share", BLOCKED, "fraud"), plan) == row_block_basis("share") == "b:share"


def test_the_logging_policys_blocked_weighting_needs_logging_prob_columns() -> None:
    # blocked weight of the logging policy: [a = allow] · lp_block / propensity, which needs lp_block
    with_probs = plan_of(ROWS)
    without = plan_of(ROWS.drop(LOGGING_PROBS))
    assert with_probs.logging_probs and not without.logging_probs
    assert term_basis(Term("logged", BLOCKED, "fraud"), with_probs) == LOGGED_BLOCK
    assert term_basis(Term("logged", BLOCKED, "fraud"), without) is None  # the data cannot support it
    # blocked_fraud_count (fraud, BLOCKED) and blocked_legit_count (legit_authorized, BLOCKED) of the logging policy
    assert {(LOGGED_BLOCK, "fraud"), (LOGGED_BLOCK, "legit_authorized")} <= set(needed_sums(with_probs).linear)
    assert not [basis for basis, _ in needed_sums(without).linear if basis == LOGGED_BLOCK]


# -- coefficients ------------------------------------------------------------------------------------


def test_coefficients_of_a_threshold_policy() -> None:
    plan = plan_of(policies=(STRICT, SHARE))
    # actions index allow 0, challenge 1, block 2; a threshold policy's code is its chosen action's index.
    #   cell  logged    strict chooses   TARGET π(logged)   BLOCKED [logged allow]·π(block)   ALLOWED [logged allow]
    #   0     allow     allow            1                  0                                1
    #   1     challenge challenge        1                  0                                0
    #   2     block     block            1                  0                                0
    #   3     allow     block            0                  1                                1
    #   4     allow     challenge        0                  0                                1
    #   5     block     allow            0                  0                                0
    cells = Cells(action=np.array([0, 1, 2, 0, 0, 2]), codes={"strict": np.array([0, 1, 2, 2, 1, 0])})
    np.testing.assert_array_equal(coefficients(Term("strict", TARGET, "one"), plan, cells), [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(coefficients(Term("strict", BLOCKED, "fraud"), plan, cells), [0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(coefficients(Term(ANY_POLICY, ALLOWED, "fraud"), plan, cells), [1, 0, 0, 1, 1, 0])
    # the logging policy and per-row policies carry their whole weight in the basis: coefficient 1
    np.testing.assert_array_equal(coefficients(Term("logged", TARGET, "one"), plan, cells), np.ones(6))
    np.testing.assert_array_equal(coefficients(Term("share", TARGET, "one"), plan, cells), np.ones(6))


def test_coefficients_of_an_epsilon_mixture() -> None:
    plan = plan_of(policies=(MIXED,))
    assert plan.policy("mixed").coded  # coded because its base is
    # ε = 0.3 over 3 actions: the chosen action gets 0.7 + 0.1 = 0.8, every other 0.1.
    cells = Cells(action=np.array([0, 1, 0, 0]), codes={"mixed": np.array([0, 0, 2, 1])})
    # TARGET: π(logged action | code) = [0.8 (allow|allow), 0.1 (challenge|allow), 0.1 (allow|block), 0.1 (allow|chal.)]
    np.testing.assert_allclose(coefficients(Term("mixed", TARGET, "one"), plan, cells), [0.8, 0.1, 0.1, 0.1],
                               rtol=1e-12)
    # BLOCKED: [logged allow] · π(block | code) = [0.1, 0, 0.8, 0.1]
    np.testing.assert_allclose(coefficients(Term("mixed", BLOCKED, "fraud"), plan, cells), [0.1, 0.0, 0.8, 0.1],
                               rtol=1e-12)


# -- terms ---------------------------------------------------------------------------------------------


def test_sum_terms_normalise_by_the_policy_and_count_the_logged_population() -> None:
    by_name = {m.name: m for m in SUM_METRICS}
    auth = sum_terms(by_name["authorized_count"], "strict")
    assert auth.main == Term("strict", TARGET, "authorized")
    assert auth.norm == Term("strict", TARGET, "one")  # SNIPW divides by the policy's own weight total
    assert auth.count == Term("logged", TARGET, "one")  # … and scales to the logged row count
    blocked = sum_terms(by_name["blocked_fraud_count"], "strict")
    assert blocked.main == Term("strict", BLOCKED, "fraud")
    assert blocked.norm == Term(ANY_POLICY, ALLOWED, "mature")  # blocked payments are seen through allowed rows
    assert blocked.count == Term("logged", TARGET, "mature")


# -- needed sums ----------------------------------------------------------------------------------------


def test_needed_sums_of_one_threshold_policy_finite_population() -> None:
    needs = needed_sums(plan_of(ROWS.drop(LOGGING_PROBS), population="finite", estimator="ipw"))
    linear = set(needs.linear)
    # every row's count and amount, whatever the policies
    assert {(ONE, "one"), (ONE, "amount")} <= linear
    # the candidate's totals (1/p basis) and the observed logged totals (basis 1)
    assert {(INV_P, "authorized"), (INV_P, "one"), (INV_P, "net_value"), (INV_P, "mature")} <= linear
    assert {(ONE, "authorized"), (ONE, "net_value"), (ONE, "mature")} <= linear
    # blocked_fraud_count: Σ [allow]·π(block)/p · fraud, and block recall's allowed weighting, both on 1/p
    assert (INV_P, "fraud") in linear and (INV_P, "legit_authorized") in linear
    assert {basis for basis, _ in linear} == {ONE, INV_P}  # no per-row or logged-block basis here
    # Finite population with the logging policy as baseline: its totals are observed, so the variance is the
    # design variance Σ z_a z_b (1 − p) of the candidate's terms (never basis 1), and the plain quadratic
    # sums only serve the effective sample size (sum_w² / sum_w2 of rows and of mature rows).
    assert set(needs.quadratic) == {(INV_P, INV_P, "one*one"), (INV_P, INV_P, "mature*mature"),
                                    (ONE, ONE, "one*one"), (ONE, ONE, "mature*mature")}
    design = set(needs.design)
    assert {(INV_P, INV_P, "authorized*authorized"), (INV_P, INV_P, "authorized*one")} <= design  # auth_rate
    assert all(ONE not in (a, b) for a, b, _ in design)
    assert needs.direct == ()


def test_needed_sums_of_the_stratified_estimator() -> None:
    needs = needed_sums(plan_of(ROWS.drop(LOGGING_PROBS), population="finite", estimator="snipw"))
    quadratic, linear = set(needs.quadratic), set(needs.linear)
    # each stratum's Hájek mean: Σ y/p and Σ s/p over explored rows, their squares and cross (its variance and ESS)
    assert {(INV_P, INV_P, "fraud*fraud"), (INV_P, INV_P, "fraud*mature"), (INV_P, INV_P, "mature*mature")} <= quadratic
    # the stratum's size crossed with its Hájek sums (superpopulation: sizes vary too)
    assert {(INV_P, ONE, "fraud*mature"), (ONE, ONE, "mature*mature")} <= quadratic
    # the rare-event floor: explored events (unweighted) and the amount's moments over every row of a stratum
    assert (ONE, "fraud") in linear and (ONE, ONE, "amount*amount") in quadratic
    # design sums of the Hájek terms for the finite-population variance
    assert (INV_P, INV_P, "fraud*mature") in set(needs.design)


def test_needed_sums_superpopulation_have_the_paired_cross_terms() -> None:
    needs = needed_sums(plan_of(ROWS.drop(LOGGING_PROBS), population="superpopulation"))
    quadratic = set(needs.quadratic)
    # paired delta of authorized_count: Var needs Σ (w·y)², Σ y², and the cross Σ w·y·y of candidate and logged
    assert {(INV_P, INV_P, "authorized*authorized"), (ONE, ONE, "authorized*authorized"),
            (INV_P, ONE, "authorized*authorized")} <= quadratic
    assert needs.design == ()  # no design-based variance


def test_needed_sums_of_a_per_row_policy_use_its_own_bases() -> None:
    needs = needed_sums(plan_of(policies=(SHARE,), population="superpopulation", baseline="logged"))
    linear = set(needs.linear)
    assert {("t:share", "authorized"), ("b:share", "fraud")} <= linear
    # its own variance Σ (w_i y_i)², and the paired delta's cross with the logged baseline Σ 1 · w_i · y_i²
    assert {("t:share", "t:share", "authorized*authorized"), (ONE, "t:share", "authorized*authorized")} \
        <= set(needs.quadratic)
    for basis_a, basis_b, _ in needs.quadratic:
        assert basis_a <= basis_b  # canonical order: one column per unordered pair


def test_needed_sums_for_dr_list_the_predicted_values() -> None:
    needs = needed_sums(plan_of(population="finite", estimator="dr", dr_bins=2))
    # the direct method's totals are not row-weighted sums: no 'dm' basis in any sum
    assert DIRECT not in {basis for basis, _ in needs.linear}
    # the outcome model's prediction at the logged action enters like a value (basis 1/p for the candidate)
    assert (INV_P, "hat:authorized") in set(needs.linear)
    assert {"authorized", "one", "fraud", "net_value"} <= set(needs.direct)


def test_needed_sums_are_sorted_and_unique() -> None:
    needs = needed_sums(plan_of(policies=(STRICT, SHARE, MIXED), population="superpopulation"))
    for sums in (needs.linear, needs.quadratic, needs.design, needs.direct):
        assert list(sums) == sorted(set(sums))


@pytest.mark.parametrize("population", ["finite", "superpopulation"])
@pytest.mark.parametrize("logging_probs", [True, False])
def test_every_supported_term_of_every_metric_has_its_linear_sum(population: str, logging_probs: bool) -> None:
    frame = ROWS if logging_probs else ROWS.drop(LOGGING_PROBS)
    plan = plan_of(frame, policies=(STRICT, SHARE, MIXED), population=population)
    needs = needed_sums(plan)
    linear, quadratic = set(needs.linear), set(needs.quadratic)
    for policy in plan.policies:
        for _, terms in metric_terms(policy.name, plan):
            supported = [t for t in terms if term_basis(t, plan) not in (None, DIRECT)]
            for term in supported:
                assert (term_basis(term, plan), term.value) in linear, term
            if population == "superpopulation" and policy.name != "logged":
                for a in supported:  # every pair a variance (or a paired delta) asks for
                    for b in supported:
                        ba, bb = sorted((term_basis(a, plan), term_basis(b, plan)))
                        assert (ba, bb, product(a.value, b.value)) in quadratic, (a, b)


# -- column names ----------------------------------------------------------------------------------------------


def test_column_names_are_canonical() -> None:
    assert product("one", "authorized") == product("authorized", "one") == "authorized*one"
    assert quadratic_column(ONE, INV_P, "a*b") == quadratic_column(INV_P, ONE, "a*b") == "Q|inv_p|one|a*b"
    assert design_column("t:x", INV_P, "a*a") == "D|inv_p|t:x|a*a"
    assert linear_column(INV_P, "authorized") == "L|inv_p|authorized"
