"""Objectives: the CLI grammar, validation, choosing a grid point and how often bootstrap replicates agree."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from simulator.errors import InvalidConfig, UnknownName
from simulator.config_tables import Constraint, Objective, objective_from_table, parse_objective
from simulator.decide.objective import choice_frequency, choose
from simulator.report.numbers import number
from tests.simulator.decide.sweep_tables import make_sweep

# Seven grid points. fraud_rate_bps in ALL and in two segments, net_value in ALL:
#            p0     p1    p2     p3    p4    p5     p6
# ALL        10     8     12     5     8     15     10      net_value 1.0M 0.9M 1.1M 0.6M 0.8M 1.3M 1.0M
# BR (5000)  11.7   9     13     6     9     16     11.7
# XX (10)    50 at every point: exempt once min_rows > 10
FRAUD_ALL = [10.0, 8.0, 12.0, 5.0, 8.0, 15.0, 10.0]
FRAUD_BR = [11.7, 9.0, 13.0, 6.0, 9.0, 16.0, 11.7]
NET = [1.0e6, 0.9e6, 1.1e6, 0.6e6, 0.8e6, 1.3e6, 1.0e6]


def sweep(**overrides: object) -> pl.DataFrame:
    estimates = {
        "ALL": {"fraud_rate_bps": FRAUD_ALL, "net_value": NET},
        "card_country=BR": {"fraud_rate_bps": FRAUD_BR, "net_value": [1.0] * 7},
        "card_country=XX": {"fraud_rate_bps": [50.0] * 7, "net_value": [1.0] * 7},
    }
    rows = {"ALL": 100_000, "card_country=BR": 5_000, "card_country=XX": 10}
    return make_sweep(estimates, rows=rows, **overrides)  # type: ignore[arg-type]


# --- the grammar -------------------------------------------------------------------------------


def test_parse_the_documented_example() -> None:
    objective = parse_objective("net_value; fraud_rate_bps<=12 every_segment; min_rows=1000")
    assert objective == Objective(
        maximize="net_value",
        constraints=(Constraint(metric="fraud_rate_bps", max=12.0, scope="every_segment"),),
        min_rows=1000,
    )


def test_parse_minimize_min_bounds_conservative_and_blanks() -> None:
    objective = parse_objective(" minimize fraud_rate_bps ;auth_rate >= 0.9 conservative; ; net_value>=1e6 overall ")
    assert objective.sense == "minimize" and objective.metric == "fraud_rate_bps"
    assert objective.constraints == (
        Constraint(metric="auth_rate", min=0.9, conservative=True),
        Constraint(metric="net_value", min=1e6, scope="overall"),
    )
    assert objective.min_rows == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fraud_rate_bps<12; net_value", "clause 1 'fraud_rate_bps<12': use <= for a maximum or >= for a minimum"),
        ("net_value; fraud_rate_bps<=twelve", "clause 2 'fraud_rate_bps<=twelve': the limit must be a number"),
        ("net_value; fraud_rate_bps<=12 everywhere", "at most one of overall/every_segment"),
        ("net_value; fraud_rate_bps<=12 overall every_segment", "at most one of overall/every_segment"),
        ("net_value; min_rows=many", "min_rows must be a whole number, got 'many'"),
        ("net_value; auth_rate", "needs exactly one metric to maximize or minimize, got maximize net_value, maximize auth_rate"),
        ("fraud_rate_bps<=12", "needs exactly one metric to maximize or minimize, got none"),
        ("net_value; fraud_rate_bps <= 12 !", "clause 2 'fraud_rate_bps <= 12 !': expected METRIC"),
        ("nett_value", "maximize: unknown metric 'nett_value'; known: attempts, auth_rate"),
        ("net_value; frad_rate_bps<=3", "constraints[0].metric: unknown metric 'frad_rate_bps'"),
    ],
)
def test_parse_errors_are_invalid_config(text: str, message: str) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(message)) as caught:
        parse_objective(text)
    assert caught.value.exit_code == 2


def test_unknown_metric_suggests_the_closest() -> None:
    with pytest.raises(InvalidConfig, match=re.escape("(did you mean 'fraud_rate_bps'?)")):
        objective_from_table({"maximize": "net_value", "constraints": [{"metric": "frad_rate_bps", "max": 3}]})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"maximize": "net_value", "minimize": "cost"}, "(top level): set exactly one of maximize and minimize"),
        ({}, "(top level): set exactly one of maximize and minimize"),
        ({"maximize": "net_value", "constraints": [{"metric": "cost"}]}, "constraints[0]: constraint on cost needs max or min"),
        ({"maximize": "net_value", "min_rows": -1}, "min_rows: "),
        ({"maximize": "net_value", "constraints": [{"metric": "cost", "max": 1, "scope": "some"}]}, "constraints[0].scope"),
    ],
)
def test_table_errors_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(f"sweep.objective: {message}")):
        objective_from_table(table, "sweep.objective")


# --- choosing a point -------------------------------------------------------------------------------


def test_every_segment_constraint_with_min_rows_exemption() -> None:
    # XX (10 rows) is exempt; BR rules out p2 (13) and p5 (16). Feasible: p0, p1, p3, p4, p6.
    # Best net_value among them: p0 and p6 tie at 1.0M; the tie goes to the lower index.
    recommendation = choose(sweep(), parse_objective("net_value; fraud_rate_bps<=12 every_segment estimate; min_rows=1000"))
    assert recommendation.point == 0
    assert (recommendation.challenge_above, recommendation.block_above) == (0.0, 0.5)
    assert recommendation.estimate == 1.0e6 and (recommendation.ci_low, recommendation.ci_high) == pytest.approx((0.9e6, 1.1e6))
    assert (recommendation.feasible, recommendation.points) == (5, 7)
    (binding,) = recommendation.binding  # BR at 11.7 is closer to 12 than ALL at 10
    assert (binding.segment, binding.value, binding.slack) == ("card_country=BR", 11.7, pytest.approx(0.3))
    assert recommendation.reason[0] == (
        "maximises net_value = 1M [900k, 1.1M] among 5 of 7 points that keep fraud_rate_bps ≤ 12 (point estimate) "
        "in every segment with ≥ 1,000 rows; tightest: card_country=BR at 11.7"
    )
    assert recommendation.reason[1] == "point 0: challenge_above = 0, block_above = 0.5"


def test_without_the_exemption_the_small_segment_rules_everything_out() -> None:
    recommendation = choose(sweep(), parse_objective("net_value; fraud_rate_bps<=12 every_segment estimate"))
    assert recommendation.point is None and recommendation.feasible == 0
    assert recommendation.reason[0] == "no point of 7 keeps fraud_rate_bps ≤ 12 (point estimate) in every segment"
    # every point has XX at 50: 38 over, the same for all, so the closest is p0 (ties to the lower index)
    assert recommendation.reason[1].startswith("closest: point 0 (challenge_above = 0, block_above = 0.5) has "
                                               "fraud_rate_bps = 50 in card_country=XX against a max of 12")


def test_overall_scope_and_an_inclusive_limit() -> None:
    # overall only: p2 (ALL 12 ≤ 12, 1.1M) is feasible and beats p0; p5 (15) is not
    recommendation = choose(sweep(), parse_objective("net_value; fraud_rate_bps<=12 estimate"))
    assert recommendation.point == 2 and recommendation.feasible == 6
    assert recommendation.binding[0].segment == "ALL" and recommendation.binding[0].slack == 0.0


def test_constraints_compare_the_interval_bound_by_default() -> None:
    # ci_high = 1.1 × estimate: p2 11 × 1.1 = 13.2 > 12 is out; p0 10 × 1.1 = 11 stays
    for text in ("net_value; fraud_rate_bps<=12", "net_value; fraud_rate_bps<=12 conservative"):
        recommendation = choose(sweep(), parse_objective(text))
        assert recommendation.point == 0
        assert recommendation.binding[0].value == pytest.approx(11.0)
    with pytest.raises(InvalidConfig, match="optionally estimate"):
        parse_objective("net_value; fraud_rate_bps<=12 conservative estimate")


def test_minimize_with_a_min_constraint() -> None:
    # net_value ≥ 0.9M keeps p0, p1, p2, p5, p6; the least fraud among them is p1 (8)
    recommendation = choose(sweep(), parse_objective("minimize fraud_rate_bps; net_value>=0.9e6 estimate"))
    assert recommendation.point == 1
    assert recommendation.reason[0].startswith("minimises fraud_rate_bps = 8 [7.2, 8.8] among 5 of 7 points")
    assert recommendation.binding[0].slack == pytest.approx(0.0)


def test_flagged_objective_is_never_recommended_and_is_reported() -> None:
    flagged = sweep(flags={("ALL", "net_value", 0): "low_ess"})
    recommendation = choose(flagged, parse_objective("net_value; fraud_rate_bps<=12 every_segment estimate; min_rows=1000"))
    assert recommendation.point == 6  # p0's tie partner
    assert recommendation.feasible == 4
    assert recommendation.reason[-1] == "1 point left out for a missing or flagged net_value estimate in ALL"


def test_a_missing_value_in_a_checked_segment_fails_the_constraint() -> None:
    missing = sweep(flags={("card_country=BR", "fraud_rate_bps", 0): "no_support"}).with_columns(
        estimate=pl.when(pl.col("flag") == "no_support").then(None).otherwise("estimate"))
    recommendation = choose(missing, parse_objective("net_value; fraud_rate_bps<=12 every_segment estimate; min_rows=1000"))
    assert recommendation.point == 6


def test_the_binding_constraint_is_the_closest_relative_to_its_limit() -> None:
    # p0: fraud slack 0.3 / 12 = 2.5% of its limit in BR; net_value slack 0.5M / 0.5M = 100%
    objective = parse_objective("net_value; fraud_rate_bps<=12 every_segment estimate; net_value>=0.5e6 estimate; min_rows=1000")
    recommendation = choose(sweep(), objective)
    assert [b.metric for b in recommendation.binding] == ["fraud_rate_bps", "net_value"]
    assert recommendation.reason[0].endswith("tightest: fraud_rate_bps in card_country=BR at 11.7")
    json.dumps(recommendation.as_dict())  # plain values, ready for write_json


def test_a_metric_missing_from_the_sweep_is_named() -> None:
    with pytest.raises(UnknownName, match=re.escape("unknown metric 'auth_rate'")):
        choose(sweep(), parse_objective("auth_rate"))


def test_number_is_compact() -> None:
    assert [number(v) for v in (1_234_567.0, 45_600.0, 11.7, 0.91234, -130_000.0, None)] == [
        "1.23M", "45.6k", "11.7", "0.912", "-130k", "n/a"]


# --- stability across bootstrap replicates ------------------------------------------------------------


def test_choice_frequency_on_a_constructed_case() -> None:
    objective_reps = np.array([[1.0, 5.0, 2.0, 9.0, 4.0],
                               [3.0, 4.0, 2.0, 1.0, 4.0],
                               [2.0, 6.0, 7.0, 0.0, 1.0]])
    feasible_reps = np.array([[True, True, False, False, True],
                              [True, False, True, False, True],
                              [False, True, True, False, False]])
    # replicate 0: p0 (1) or p1 (3) -> p1;  1: p0 (5) or p2 (6) -> p2;  2: p1 (2) or p2 (7) -> p2;
    # 3: nothing feasible -> none;  4: p0 (4) ties p1 (4) -> p0, the lower index
    shares = choice_frequency(objective_reps, feasible_reps)
    assert shares.tolist() == pytest.approx([0.2, 0.2, 0.4])
    # minimising: 0 -> p0 (1); 1 -> p0 (5); 2 -> p1 (2); 3 -> none; 4 -> p0 (tie, lower index)
    assert choice_frequency(objective_reps, feasible_reps, maximize=False).tolist() == pytest.approx([0.6, 0.2, 0.0])


def test_choice_frequency_ignores_missing_values_and_checks_shapes() -> None:
    shares = choice_frequency(np.array([[np.nan, 1.0], [0.5, np.nan]]), np.ones((2, 2), dtype=bool))
    assert shares.tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match=re.escape("must both be (P, B), got (2, 2) and (2, 3)")):
        choice_frequency(np.zeros((2, 2)), np.ones((2, 3), dtype=bool))
