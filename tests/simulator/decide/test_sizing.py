"""The exploration planner's model on hand-computed cases (simulator.decide.sizing)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from simulator.decide.sizing import (DAYS_PER_MONTH, LogShape, explored_mix, plan_grid,
                                     production_share, scaled_variance, smallest_designs)

LOG = LogShape(days=100.0, exploration=0.05, actions=3, rows=10_000)


def test_scaled_variance_divides_each_part_by_its_rows() -> None:
    # per row of the log: 4/g + 1/h + 2 = 4/2 + 1/0.5 + 2 = 6; a ratio shrinks with rows (6 / r = 3),
    # a total over the log grows (6 · r = 12)
    out = scaled_variance(np.array([4.0, 4.0]), np.array([1.0, 1.0]), np.array([2.0, 2.0]), rows_ratio=np.array([2.0, 2.0]),
                          explored_ratio=np.array([2.0, 2.0]), usual_ratio=np.array([0.5, 0.5]),
                          ratio_metric=np.array([True, False]))
    assert out.tolist() == pytest.approx([3.0, 12.0], rel=1e-12)


def test_production_share_and_the_mix_of_explored_rows() -> None:
    # q(e) = 1 − e·(K − 1)/K: 1 − 0.2·2/3
    assert float(production_share(0.2, 3)) == pytest.approx(1 - 0.4 / 3, rel=1e-12)
    # 3/4 of the Hájek variance from explored rows: 0.75·g + 0.25·h
    mix = explored_mix(np.array([3.0]), np.array([1.0]), np.array([2.0]), np.array([0.9]))
    assert mix.tolist() == pytest.approx([0.75 * 2.0 + 0.25 * 0.9], rel=1e-12)


def current(**overrides: object) -> pl.DataFrame:
    """One guardrail's current state: auth_rate min_delta -0.002, delta -0.001 [-0.003, +0.001], se 0.001,
    3/4 of its variance from explored rows, 1/4 from the rest."""
    row = {"policy": "cand", "guardrail": 0, "name": "auth_rate min_delta -0.002", "metric": "auth_rate",
           "ratio": True, "upper": False, "relative": False, "limit_value": -0.002, "delta": -0.001,
           "baseline": 0.9, "delta_se": 0.001, "ci_low": -0.003, "ci_high": 0.001, "rows": 10_000, "min_rows": 0,
           "delta_ess": 100.0, "min_ess": 30.0, "var_explored": 0.75e-6, "var_usual": 0.0, "var_rest": 0.25e-6,
           "reliable": True, "note": ""} | overrides
    return pl.DataFrame([row])


def test_a_ratio_guardrail_at_hand_computed_designs() -> None:
    grid = plan_grid(current(), LOG, [100, 400], [0.05, 0.2], cost_per_share_month=20_000.0)
    at = {(r["days"], r["exploration"]): r for r in grid.iter_rows(named=True)}
    # today's design: the reported interval's side facing the limit (delta − ci_low = 0.002), distance 0.001
    assert at[100, 0.05]["half_width"] == pytest.approx(0.002, rel=1e-9)
    assert at[100, 0.05]["distance"] == pytest.approx(0.001, rel=1e-9) and not at[100, 0.05]["conclusive"]
    # 4× the days, same share: variance / 4, half-width / 2 = 0.001: equal to the distance, not yet conclusive
    assert at[400, 0.05]["half_width"] == pytest.approx(0.001, rel=1e-9) and not at[400, 0.05]["conclusive"]
    assert at[400, 0.05]["days_needed"] == pytest.approx(400.0, rel=1e-9)
    # 4× the share, same days: 0.75e-6 / 4 + 0.25e-6 = 0.4375e-6, se 0.000661, half-width 2 × 0.661 × 0.001
    hw = 0.002 * math.sqrt(0.4375e-6) / 0.001
    assert at[100, 0.2]["half_width"] == pytest.approx(hw, rel=1e-9)
    assert at[100, 0.2]["days_needed"] == pytest.approx(100 * (hw / 0.001) ** 2, rel=1e-9)  # 175 days
    # both: conclusive, and the interval would lie above the limit: pass
    assert at[400, 0.2]["conclusive"] and at[400, 0.2]["expected"] == "pass"
    # cost: 20,000 per unit of share and month → 4,000 a month at 20 %, over 400 days
    assert at[400, 0.2]["monthly_cost"] == pytest.approx(4_000.0, rel=1e-12)
    assert at[400, 0.2]["test_cost"] == pytest.approx(4_000.0 * 400 / DAYS_PER_MONTH, rel=1e-12)
    # the smallest conclusive design: at 175 days the half-width equals the distance, so the first whole day
    # past it, 176 at 20 %, beats the grid's 400 days
    smallest = smallest_designs(grid, current(), LOG, 20_000.0).row(0, named=True)
    assert (smallest["days"], smallest["exploration"]) == (176.0, 0.2) and smallest["conclusive"]


def test_a_total_grows_with_the_log_and_min_ess_holds_a_design_back() -> None:
    # net_value min_delta 0: delta -500 [-900, -100], se 200, all of it from strata sizes (the rest)
    row = current(name="net_value min_delta 0", metric="net_value", ratio=False, limit_value=0.0, delta=-500.0,
                  baseline=1e6, delta_se=200.0, ci_low=-900.0, ci_high=-100.0, var_explored=0.0, var_rest=4e4)
    grid = plan_grid(row, LOG, [10, 100, 400], [0.05], cost_per_share_month=None)
    at = {r["days"]: r for r in grid.iter_rows(named=True)}
    # 4× the days: delta -2000; variance 4 × 4e4, se 400, half-width (ci_high − delta = 400) × 2 = 800: fails
    assert at[400]["delta"] == pytest.approx(-2000.0) and at[400]["half_width"] == pytest.approx(800.0)
    assert at[400]["conclusive"] and at[400]["expected"] == "fail" and at[400]["monthly_cost"] is None
    # half-width / distance goes as 1/√days: 400/500 today → 100 · 0.8² = 64 days
    assert at[100]["days_needed"] == pytest.approx(64.0, rel=1e-9)
    # at 10 days delta_ess = 100 · 0.1 = 10 < min_ess 30: a review would flag low_ess, so not conclusive,
    # however short the interval; days_needed is at least 30 days for that reason
    assert at[10]["delta_ess"] == pytest.approx(10.0) and not at[10]["conclusive"]
    strict = plan_grid(current(delta_ess=2.0), LOG, [100], [0.05], cost_per_share_month=None)
    assert strict["days_needed"][0] >= 100 * 30 / 2.0
