"""Score (Wilson) limits for 0/1 shares and their MOVER combination (`simulator.estimate.score`).

Known answers: Wilson's limits for a few shares (Newcombe 1998, table I, and
hand-computed), the binomial coverage that motivates them, and the combined
interval of an estimate built by hand from one share and one symmetric rest.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from scipy import stats

from simulator import parse_config, run_frame
from simulator.estimate.estimators import variance
from simulator.estimate.linearised import Estimate
from simulator.estimate.rare import PartDiagnostics
from simulator.estimate.results import metric_estimates, segment_evaluation
from simulator.estimate.strata import HajekPart
from simulator.model.value import ValueModel, ValueSet, Weighting
from simulator.plan.moments import Term
from simulator.estimate.score import EventPart, _event_reach, nested, score_bounds, two_values, wilson
from simulator.synthetic.fresh import as_of, fresh_population
from tests.factories import EXTRACTED_AT, START, make_transactions

Q = 1.959963984540054


@pytest.mark.parametrize(("successes", "n", "low", "high"), [
    (81, 263, 0.2553, 0.3662),  # Newcombe (1998) table I, 81/263
    (15, 148, 0.0624, 0.1605),  # 15/148
    (0, 20, 0.0, 0.1611),  # 0/20
    (29, 29, 0.8830, 1.0),  # 29/29
    (50, 100, 0.4038, 0.5962),
])
def test_wilson_limits_match_published_values(successes: int, n: int, low: float, high: float) -> None:
    got = wilson(np.array([successes / n]), np.array([float(n)]), np.array([Q]))
    assert got[0][0] == pytest.approx(low, abs=1e-4)
    assert got[1][0] == pytest.approx(high, abs=1e-4)


@pytest.mark.parametrize(("p", "n"), [(0.9, 100), (0.95, 300), (0.02, 400)])
def test_wilson_holds_both_tails_where_the_symmetric_interval_misses_one(p: float, n: int) -> None:
    k = np.arange(n + 1)
    mass, share = stats.binom.pmf(k, n, p), k / n
    low, high = wilson(share, np.full(share.shape, float(n)), np.full(share.shape, Q))
    half = Q * np.sqrt(share * (1 - share) / n)
    wald_below, wald_above = mass[p < share - half].sum(), mass[p > share + half].sum()
    worst_wald = max(wald_below, wald_above)
    assert worst_wald > 0.04  # the symmetric interval misses one side (why this exists)
    worst = max(mass[p < low].sum(), mass[p > high].sum())  # a binomial's discreteness moves it around 0.025
    assert worst < 0.045 and worst < worst_wald - 0.01


def test_one_to_three_events_take_the_exact_poisson_lower_limit() -> None:
    """Brown, Cai & DasGupta's modification: Wilson's own lower limit for 1/29 (0.0061) is too high for small rates."""
    low, high = wilson(np.array([1 / 29, 28 / 29]), np.array([29.0, 29.0]), np.array([Q, Q]))
    assert low[0] == pytest.approx(-np.log(0.975) / 29)  # Garwood, one event
    assert high[0] == pytest.approx(0.1718, abs=1e-4)  # Wilson's upper limit stands
    assert high[1] == pytest.approx(1 + np.log(0.975) / 29)  # and symmetrically at the top


def test_a_share_seen_only_as_zero_still_has_an_upper_limit() -> None:
    low, high = wilson(np.array([0.0]), np.array([50.0]), np.array([Q]))
    assert low[0] == 0.0
    assert high[0] == pytest.approx(Q**2 / (50 + Q**2))


def test_the_two_valued_columns_of_the_default_value_model() -> None:
    actions = ("allow", "challenge", "block")
    model = ValueSet(ValueModel())
    assert two_values(model, actions, 0, "authorized") == (0.0, 1.0)
    assert two_values(model, actions, 1, "authorized") == (0.0, 1.0)
    assert two_values(model, actions, 0, "fraud") == (0.0, 1.0)
    assert two_values(model, actions, 0, "authorized_volume") is None  # moves with the amount
    assert two_values(model, actions, 0, "net_value") is None


@pytest.fixture(scope="module")
def results() -> pl.DataFrame:
    log, _ = fresh_population(20_000, 77)
    config = parse_config({
        "data": {"as_of": as_of(), "immature_labels": "exclude"},
        "policies": [{"name": "cand", "kind": "threshold", "score": "fraud_score",
                      "challenge_above": 0.02, "block_above": 0.2}],
        "estimation": {"min_ess": 0},
    })
    return run_frame(config, log).overall().filter(pl.col("policy") == "cand")


def _row(results: pl.DataFrame, metric: str) -> dict[str, float]:
    return results.filter(pl.col("metric") == metric).row(0, named=True)


def test_counts_near_certainty_get_a_longer_lower_side(results: pl.DataFrame) -> None:
    """~90 % approvals: the share's variance grows as it moves away from 1, so the interval reaches further down."""
    row = _row(results, "authorized_count")
    assert row["estimate"] - row["ci_low"] > row["ci_high"] - row["estimate"]
    assert "score limits" in row["interval"]


def test_rare_counts_get_a_longer_upper_side(results: pl.DataFrame) -> None:
    """Payments blocked: a small share of the rows, whose variance grows as the share does."""
    row = _row(results, "blocked_count")
    assert row["ci_high"] - row["estimate"] > row["estimate"] - row["ci_low"]


def test_money_keeps_the_symmetric_t_interval(results: pl.DataFrame) -> None:
    row = _row(results, "net_value")
    assert row["ci_high"] - row["estimate"] == pytest.approx(row["estimate"] - row["ci_low"], rel=1e-9)


def _event_part(contribution: float, variance: float, scored: bool = True) -> EventPart:
    return EventPart(rows=Term("", Weighting.TARGET, "fraud_volume"), contribution=np.array([contribution]),
                     variance=np.array([variance]), scored=np.array([scored]), own=frozenset({"part"}))


def test_a_rare_total_takes_the_score_limits_of_a_variance_proportional_to_it() -> None:
    """θ̂ = 100 with V = 400: the limits solve (θ̂ − θ)² = q²·V·θ/θ̂ (the quasi-Poisson score equation),
    100 + s ∓ √(q²V + s²) with s = q²V/200 = 7.68: 67.74 and 147.63 against the symmetric 100 ∓ 39.20."""
    down, up = _event_reach([_event_part(100.0, 400.0)], np.array(Q), np.array([Q**2 * 400.0]))
    low, high = 100.0 - np.sqrt(down[0]), 100.0 + np.sqrt(up[0])
    for limit in (low, high):
        assert (100.0 - limit) ** 2 == pytest.approx(Q**2 * 400.0 * limit / 100.0, rel=1e-12)
    assert (low, high) == pytest.approx((67.74, 147.63), abs=0.01)


def test_a_subtracted_rare_part_reaches_further_below_and_the_rest_adds_in_quadrature() -> None:
    rest = Q**2 * (400.0 + 900.0)  # the part's variance and 900 of symmetric rest (other values, parts not scored)
    down, up = _event_reach([_event_part(-100.0, 400.0)], np.array(Q), np.array([rest]))
    s = Q**2 * 400.0 / 200.0
    reach = np.sqrt(Q**2 * 400.0 + s**2)
    assert np.sqrt(down[0]) == pytest.approx(np.sqrt(Q**2 * 900.0 + (reach + s) ** 2), rel=1e-12)
    assert np.sqrt(up[0]) == pytest.approx(np.sqrt(Q**2 * 900.0 + (reach - s) ** 2), rel=1e-12)


def test_a_rare_part_on_few_events_keeps_the_symmetric_interval_exactly() -> None:
    rest = np.array([Q**2 * 400.0])
    down, up = _event_reach([_event_part(100.0, 400.0, scored=False)], np.array(Q), rest)
    assert down[0] == rest[0] and up[0] == rest[0]


def test_a_rare_money_total_reaches_further_above(results: pl.DataFrame) -> None:
    """A candidate that only blocks more than production: its fraud loss rests on production's allowed rows
    alone (~20 explored frauds at 20k rows), whose low draws come with a small spread."""
    log, _ = fresh_population(20_000, 77)
    config = parse_config({
        "data": {"as_of": as_of(), "immature_labels": "exclude"},
        "policies": [{"name": "stricter", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.05,
                      "block_above": 0.3}],
        "estimation": {"min_ess": 0},
    })
    row = run_frame(config, log).overall().filter(pl.col("policy") == "stricter", pl.col("metric") == "fraud_loss").row(
        0, named=True)
    assert row["ci_high"] - row["estimate"] > 2 * (row["estimate"] - row["ci_low"]) > 0
    assert "rare-event totals" in row["interval"]


def test_fraud_is_nested_in_mature_authorizations_under_allow() -> None:
    actions = ("allow", "challenge", "block")
    model = ValueSet(ValueModel())
    assert nested(model, actions, 0, "fraud", "mature_authorized")  # a dispute only follows an authorization
    assert nested(model, actions, 0, "fraud", "authorized")
    assert not nested(model, actions, 0, "mature_authorized", "fraud")
    assert not nested(model, actions, 0, "fraud", "fraud")
    assert not nested(model, actions, 0, "fraud_volume", "mature_authorized")  # not a 0/1 share


def _precision_log() -> pl.DataFrame:
    """Three strata of payments, all old enough for their labels, explored with `allow` at propensity 0.1:

    stratum  rows  score  production  explored (logged allow)  of them fraud
    S1       20    0.50   block       3 (all authorized)       3
    S2       40    0.30   challenge   10 (all authorized)      1
    S0       40    0.05   allow       40                       0

    A candidate blocking from 0.25 adds S2 to production's blocks: its block precision is
    (20·1 + 40·0.1) / 60 = 0.4 against production's 1.0, a delta of ω·(q2 − q1) = (2/3)·(0.1 − 1) = −0.6.
    """
    spec = [(20, 0.5, "block", 3, 3), (40, 0.3, "challenge", 10, 1), (40, 0.05, "allow", 40, 0)]
    rows = [(score, prod, "allow" if i < explored else prod, i < fraud)
            for n, score, prod, explored, fraud in spec for i in range(n)]
    allow = [0.9 if prod == "allow" else 0.1 for _, prod, _, _ in rows]
    challenge = [0.85 if prod == "challenge" else 0.05 for _, prod, _, _ in rows]
    probs = {"allow": allow, "challenge": challenge, "block": [1 - a - c for a, c in zip(allow, challenge)]}
    action = [logged for _, _, logged, _ in rows]
    authorized = [None if a == "block" else True for a in action]
    fraud = [None if a == "block" else f for a, (_, _, _, f) in zip(action, rows)]
    n = len(rows)
    return make_transactions(
        n=n, fraud_score=[score for score, _, _, _ in rows], action=action,
        propensity=[probs[a][i] for i, a in enumerate(action)], **{f"logging_prob_{a}": p for a, p in probs.items()},
        created_at=pl.Series([START] * n, dtype=pl.Datetime("us", "UTC")),
        authorized=pl.Series(authorized, dtype=pl.Boolean), fraud_dispute=pl.Series(fraud, dtype=pl.Boolean),
        dispute_lost=pl.Series([True if f else None for f in fraud], dtype=pl.Boolean),
        disputed_at=pl.Series([START + timedelta(days=20) if f else None for f in fraud], dtype=pl.Datetime("us", "UTC")),
    )


def test_a_precision_delta_scores_each_strata_fraud_share_among_authorizations() -> None:
    """Newcombe's difference of two proportions, weighted: production's precision rests on 3 explored
    authorizations, all fraud (no sample variance), yet its Wilson limits reach down to 0.44, so the delta's
    interval reaches up by ω·(1 − 0.44); the candidate's added stratum (1 fraud in 10) reaches down by ω·(0.1 − l).
    Everything else (here: how many payments each stratum holds, on future traffic) keeps its t part."""
    config = parse_config({
        "data": {"as_of": EXTRACTED_AT, "immature_labels": "exclude"},
        "policies": [{"name": "cand", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.2,
                      "block_above": 0.25}],
        "estimation": {"min_ess": 0, "population": "finite"},
    })
    result = run_frame(config, _precision_log())
    evaluation = segment_evaluation(result.stats, result.plan, config.estimation)
    assert evaluation is not None

    def precision(policy: str) -> Estimate:
        return {m.name: m for m in metric_estimates(policy, evaluation.totals, "snipw")}["block_precision"].estimate

    delta = precision("cand").minus(precision(result.plan.baseline))
    assert delta.value[0] == pytest.approx(-0.6)
    total_variance = variance(delta, evaluation.paired)

    def without_floor(part: HajekPart) -> PartDiagnostics:
        d = evaluation.parts(part)
        return replace(d, floor=np.zeros_like(d.floor))

    bounds = score_bounds(delta, total_variance, Q, Q, evaluation.totals.total, without_floor, evaluation.plan)
    s2 = next(p for f, p in delta.parts.values() if p.value == "fraud" and np.all(f > 0))  # only S2 adds fraud
    rest = total_variance - (1 / 60) ** 2 * evaluation.parts(s2).within  # ∂Δ/∂(S2's fraud total) = 1/60
    (l1, l2), (u1, u2) = wilson(np.array([1.0, 0.1]), np.array([3.0, 10.0]), Q)
    omega = 2 / 3
    assert bounds.low[0] == pytest.approx(-0.6 - np.sqrt(Q**2 * rest[0] + (omega * (0.1 - l2)) ** 2), rel=1e-9)
    assert bounds.high[0] == pytest.approx(-0.6 + np.sqrt(Q**2 * rest[0] + omega**2 * ((u2 - 0.1) ** 2 + (1 - l1) ** 2)),
                                           rel=1e-9)
    assert bounds.decides[0] and bounds.thin[0]  # three explored authorizations: honest, wide, and flagged
    row = run_frame(config, _precision_log()).overall().filter(pl.col("policy") == "cand",
                                                                pl.col("metric") == "block_precision").row(0, named=True)
    assert "few_events" in row["flag"]
