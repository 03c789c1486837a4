"""The exploration planner's model: a guardrail's interval for a log of other days and exploration share.

From one run on the current log (D days, exploration share e0, K actions), each guardrail's delta has a
variance split by where it comes from (`simulator.estimate.sizing`): V_explored (Hájek means over rows
logged with an action production does not take), V_usual (over rows logged with production's own action)
and V_rest (strata sizes as draws of future traffic, the dispute-delay curve). A log of D' days at share e'
has r = D'/D times the rows, g = e'/e0 times the explored rows per row and h = q(e')/q(e0) times the rows
logged with production's action per row, q(e) = 1 − e·(K − 1)/K (exploration spread uniformly over the
actions, SPEC §2). Each part's variance goes as one over its rows, so for a ratio metric

    Var' = (V_explored / g + V_usual / h + V_rest) / r

and for a sum metric (a total over the log, SPEC §3, whose delta grows as r) Var' = r · (...), delta' = r · delta.
The interval's side facing the limit scales by √(Var'/Var): at the current design it is the reported
interval. A design is conclusive for a guardrail when that side is shorter than the distance from the
predicted delta to the limit (a review of that log would pass or fail it) and the log has at least the
guardrail's `min_rows`.

Assumptions: the same traffic mix and the same delta per payment; exploration spread over the same
payments as today's; the candidate's delta rests on the same strata. A delta flagged `few_events` rests on
the rare-event floor (half an event per stratum), so its sizing is that floor's variance scaled, not data:
the planner marks it unreliable. docs/review.md ("Before you explore: sizing a test") states it for users.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

DAYS_PER_MONTH = 365.25 / 12
DEFAULT_DAYS: tuple[float, ...] = (7, 14, 30, 60, 90, 180, 365)
DEFAULT_SHARES: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2)


@dataclass(frozen=True, slots=True)
class LogShape:
    """The current log as the planner scales it: its span, exploration share, actions and volume."""

    days: float  # created_at span
    exploration: float  # e0: the logging policy's exploration share, spread uniformly over the actions
    actions: int  # K
    rows: int

    @property
    def rows_per_month(self) -> float:
        return self.rows / self.days * DAYS_PER_MONTH


def production_share(exploration: np.ndarray | float, actions: int) -> np.ndarray:
    """q(e): the probability the logging policy takes production's own action, 1 − e·(K − 1)/K."""
    return 1.0 - np.asarray(exploration, dtype=np.float64) * (actions - 1) / actions


def scaled_variance(var_explored: np.ndarray, var_usual: np.ndarray, var_rest: np.ndarray, *, rows_ratio: np.ndarray,
                    explored_ratio: np.ndarray, usual_ratio: np.ndarray, ratio_metric: np.ndarray) -> np.ndarray:
    """The delta's variance on a log with `rows_ratio` × the rows, `explored_ratio` × the explored rows per row
    and `usual_ratio` × the rows logged with production's action per row (see the module docstring).

    Sum metrics are totals over the log, so their variance grows with the log (× r); ratios shrink (÷ r).
    """
    per_rows = var_explored / explored_ratio + var_usual / usual_ratio + var_rest
    return np.where(ratio_metric, per_rows / rows_ratio, per_rows * rows_ratio)


PLAN_SCHEMA: dict[str, type[pl.DataType]] = {
    "policy": pl.String,
    "guardrail": pl.Int32,  # index in [[review.guardrails]]; -1 for a default metric (no [review])
    "name": pl.String,
    "metric": pl.String,
    "days": pl.Float64,
    "exploration": pl.Float64,
    "rows": pl.Float64,  # predicted rows of the metric's population in the log
    "delta": pl.Float64,  # predicted delta (sum metrics grow with the log)
    "limit": pl.Float64,  # the bound on the delta in that log
    "delta_ess": pl.Float64,  # predicted effective explored rows behind the delta (low_ess below [estimation] min_ess)
    "delta_se": pl.Float64,
    "half_width": pl.Float64,  # the interval's side facing the limit
    "distance": pl.Float64,  # |delta − limit|
    "conclusive": pl.Boolean,
    "days_needed": pl.Float64,  # at this share, the days that make it conclusive (null when the limit is a fixed total)
    "expected": pl.String,  # what a conclusive review would say: pass | fail (increase | decrease without a limit)
    "monthly_cost": pl.Float64,  # net value the exploration gives up per month at production volumes
    "test_cost": pl.Float64,  # ... over the test's days
    "reliable": pl.Boolean,  # False when the current delta is flagged (few_events: the floor, not data)
    "note": pl.String,
}


def plan_grid(current: pl.DataFrame, log: LogShape, days: Sequence[float], shares: Sequence[float],
              cost_per_share_month: float | None) -> pl.DataFrame:
    """Every guardrail × (days, exploration share) design: predicted half-width, conclusiveness and cost (PLAN_SCHEMA).

    `current` has one row per guardrail: policy, guardrail, name, metric, ratio (bool), upper (bool, None for a
    sign check), relative (bool), limit_value, delta, baseline, delta_se, ci_low, ci_high, rows, min_rows,
    delta_ess, min_ess, var_explored, var_usual, var_rest, reliable, note. `cost_per_share_month`: net value given up per month
    per unit of exploration share (None when unknown).
    """
    designs = pl.DataFrame({"days": [float(d) for d in days]}).join(
        pl.DataFrame({"exploration": [float(s) for s in shares]}), how="cross")
    return evaluate_designs(current.join(designs, how="cross"), log, cost_per_share_month)


def evaluate_designs(grid: pl.DataFrame, log: LogShape, cost_per_share_month: float | None) -> pl.DataFrame:
    """The model at each row's design (`days`, `exploration` columns beside a guardrail's `current` columns)."""
    r = grid["days"].to_numpy() / log.days
    g = grid["exploration"].to_numpy() / log.exploration
    h = production_share(grid["exploration"].to_numpy(), log.actions) / production_share(log.exploration, log.actions)
    ratio = grid["ratio"].to_numpy()
    numbers = {c: grid[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
               for c in ("var_explored", "var_usual", "var_rest", "delta_se", "delta", "baseline", "ci_low", "ci_high",
                         "limit_value", "rows", "delta_ess")}
    var = scaled_variance(numbers["var_explored"], numbers["var_usual"], numbers["var_rest"], rows_ratio=r,
                          explored_ratio=g, usual_ratio=h, ratio_metric=ratio)
    scale = np.where(ratio, 1.0, r)  # a sum's delta and baseline are totals over the log
    delta, baseline = numbers["delta"] * scale, numbers["baseline"] * scale
    relative = grid["relative"].to_numpy()
    limit = np.where(relative, numbers["limit_value"] * np.abs(baseline), numbers["limit_value"])
    with np.errstate(divide="ignore", invalid="ignore"):
        stretch = np.where(numbers["delta_se"] > 0, np.sqrt(var) / numbers["delta_se"], 0.0)
    below = delta < limit  # the limit is above the delta: the interval's upper side faces it
    side = np.where(below, numbers["ci_high"] - numbers["delta"], numbers["delta"] - numbers["ci_low"])
    half_width, distance = side * stretch, np.abs(delta - limit)
    rows = numbers["rows"] * r
    mix = explored_mix(numbers["var_explored"], numbers["var_usual"], g, h)
    delta_ess = numbers["delta_ess"] * r * mix
    enough = (rows >= grid["min_rows"].to_numpy()) & ~(delta_ess < grid["min_ess"].to_numpy())  # NaN: no ess known
    conclusive = (half_width < distance) & enough & np.isfinite(half_width)
    proportional = ratio | relative | (numbers["limit_value"] == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.fmax(grid["min_rows"].to_numpy() / numbers["rows"],
                        np.nan_to_num(grid["min_ess"].to_numpy() / (numbers["delta_ess"] * mix))) * log.days
    needed = _days_needed(grid, half_width, distance, proportional, floor)
    unknown = np.full(grid.height, np.nan)
    monthly = unknown if cost_per_share_month is None else cost_per_share_month * grid["exploration"].to_numpy()
    return grid.select("policy", "guardrail", "name", "metric", "days", "exploration", "reliable", "note").with_columns(
        pl.Series("rows", rows), pl.Series("delta", delta), pl.Series("limit", limit),
        pl.Series("delta_ess", delta_ess).fill_nan(None), pl.Series("delta_se", np.sqrt(var)), pl.Series("half_width", half_width), pl.Series("distance", distance),
        pl.Series("conclusive", conclusive), pl.Series("days_needed", needed).fill_nan(None),
        pl.Series("expected", _expected(grid["upper"], below)),
        pl.Series("monthly_cost", monthly).fill_nan(None),
        pl.Series("test_cost", monthly * grid["days"].to_numpy() / DAYS_PER_MONTH).fill_nan(None),
    ).select(list(PLAN_SCHEMA)).cast(PLAN_SCHEMA)  # type: ignore[arg-type]


def _days_needed(grid: pl.DataFrame, half_width: np.ndarray, distance: np.ndarray, proportional: np.ndarray,
                 floor: np.ndarray) -> np.ndarray:
    """At each row's share, the days from which the interval is shorter than the distance to the limit.

    Where the limit moves with the log (a ratio, a relative limit, or 0), half-width / distance goes as
    1/√days, so days·(half_width/distance)² is where they meet; at least `floor` days (min_rows, min_ess).
    A fixed non-zero limit on a total has no such form: NaN (the grid still answers).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        meet = grid["days"].to_numpy() * (half_width / distance) ** 2
    return np.where(proportional & (distance > 0), np.maximum(meet, floor), np.nan)


def explored_mix(var_explored: np.ndarray, var_usual: np.ndarray, explored_ratio: np.ndarray,
                 usual_ratio: np.ndarray) -> np.ndarray:
    """How the delta's explored rows per row change: g for rows of explored actions, h for production's own,
    mixed by their shares of the Hájek variance (the rows behind `delta_ess` are not split; an approximation)."""
    hajek = var_explored + var_usual
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(hajek > 0, var_explored / hajek, 1.0)
    return weight * explored_ratio + (1 - weight) * usual_ratio


def _expected(upper: pl.Series, below: np.ndarray) -> np.ndarray:
    """What a conclusive interval would say: pass/fail against a limit, or the sign of a delta without one (null)."""
    sign = upper.is_null().to_numpy()
    bound = upper.fill_null(False).to_numpy()
    return np.where(sign, np.where(below, "decrease", "increase"), np.where(below == bound, "pass", "fail"))


KEYS = ["policy", "guardrail", "name"]


def smallest_designs(grid: pl.DataFrame, current: pl.DataFrame, log: LogShape,
                     cost_per_share_month: float | None) -> pl.DataFrame:
    """Per guardrail, the conclusive design with the fewest days, then the lowest share (nulls when none is).

    Candidates: every conclusive design of the grid and, at each share of the grid, the whole number of days
    from which it becomes conclusive (`days_needed`, where the model gives it), evaluated like the grid.
    """
    needed = (grid.filter(pl.col("days_needed").is_not_null())
              .group_by([*KEYS, "exploration"], maintain_order=True)
              .agg((pl.col("days_needed").first().floor() + 1).alias("days")))  # the first whole day past the meeting point
    exact = evaluate_designs(current.join(needed, on=KEYS, how="inner"), log, cost_per_share_month)
    found = (pl.concat([grid, exact]).filter(pl.col("conclusive")).sort([*KEYS, "days", "exploration"])
             .group_by(KEYS, maintain_order=True).first())
    every = current.select(*KEYS, "metric", "reliable", "note")
    return every.join(found.drop("metric", "reliable", "note"), on=KEYS, how="left", nulls_equal=True)
