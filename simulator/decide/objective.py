"""Objective and recommendation: which grid point of a sweep to launch, and why.

An `Objective` (`simulator.config_tables`: the `[sweep] objective` table and the
`--objective` grammar) names one metric to maximise (or minimise) for the overall
segment `ALL`, under constraints that must hold overall or in every segment.
`choose` picks the feasible grid point with the best `ALL` estimate and says
why in plain words; `choice_frequency` tells how stable that choice is across
bootstrap replicates.

Semantics (also in docs/sweep.md):

- A constraint compares a metric's estimate with its limit (`max` and/or
  `min`); `conservative=True` compares the interval bound on the unsafe side
  instead (`ci_high` for a max, `ci_low` for a min).
- `scope="overall"` checks segment `ALL`; `"every_segment"` checks every
  segment of every segmentation, `ALL` included, except segments with fewer
  than `min_rows` rows.
- A checked segment whose value is missing (no support, unidentified) fails the
  constraint: the point cannot be shown to meet it.
- A point whose objective estimate in `ALL` is missing or flagged is never
  recommended, except for `few_events`: that interval is deliberately
  conservative (the rare-event floor), so a point it describes may still be
  chosen, and its constraints are checked on those wider bounds. Ties go to
  the lower point index.
- The binding constraint is the one closest to its limit relative to the
  limit's size (`slack / |limit|`, or the slack itself for a limit of 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from segments.labels import ALL
from simulator.config_tables import Objective
from simulator.decide.frontier import require_metrics
from simulator.estimate.results import FEW_EVENTS
from simulator.report.numbers import number, signed_number

@dataclass(frozen=True, slots=True)
class Binding:
    """How close a point comes to one limit of one constraint: its tightest segment."""

    constraint: str  # as described to users, e.g. "fraud_rate_bps ≤ 12 in every segment"
    metric: str
    bound: Literal["max", "min"]
    limit: float
    segment: str
    value: float | None  # the compared value (estimate or interval bound); None when missing
    slack: float  # distance to the limit on the safe side; negative = violated, -inf = missing


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The chosen grid point (None when no point is feasible) and the reasons in plain words."""

    metric: str
    sense: Literal["maximize", "minimize"]
    point: int | None
    challenge_above: float | None
    block_above: float | None
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    baseline: float | None
    delta: float | None
    delta_ci_low: float | None
    delta_ci_high: float | None
    feasible: int  # number of feasible grid points
    points: int  # number of grid points
    binding: tuple[Binding, ...] = ()  # per constraint limit, tightest first
    reason: list[str] = field(default_factory=list)
    # set when the numbers above come from rows that did not choose the point (simulator.decide.holdout):
    # which rows chose and which reported, whether the constraints hold there, the in-sample numbers
    holdout: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return asdict(self)


def _goal(sweep: pl.DataFrame, objective: Objective) -> pl.DataFrame:
    """Per point: thresholds, the objective metric in ALL, and whether it may be recommended at all."""
    sign = 1.0 if objective.sense == "maximize" else -1.0
    numbers = ["estimate", "ci_low", "ci_high", "baseline", "delta", "delta_ci_low", "delta_ci_high"]
    return sweep.filter((pl.col("segment") == ALL) & (pl.col("metric") == objective.metric)).select(
        "point", "challenge_above", "block_above", *numbers,
        (pl.col("estimate").is_finite().fill_null(False)
         & pl.col("flag").fill_null("").is_in(["", FEW_EVENTS])).alias("eligible"),
        (pl.col("estimate") * sign).alias("score"),
    )


def _checks(sweep: pl.DataFrame, objective: Objective) -> pl.DataFrame:
    """One row per (point, checked segment, constraint limit) with the compared value and its slack."""
    frames = [pl.DataFrame(schema=_CHECK_SCHEMA)]
    for index, constraint in enumerate(objective.constraints):
        in_scope = (pl.col("segment") == ALL) if constraint.scope == "overall" else (pl.col("rows") >= objective.min_rows)
        for bound, limit in (("max", constraint.max), ("min", constraint.min)):
            if limit is None:
                continue
            column = ("ci_high" if bound == "max" else "ci_low") if constraint.conservative else "estimate"
            value = pl.col(column).fill_nan(None)
            slack = (limit - value) if bound == "max" else (value - limit)
            slack = slack.fill_null(float("-inf"))  # a missing value cannot be shown to meet the limit
            frames.append(sweep.filter((pl.col("metric") == constraint.metric) & in_scope).select(
                "point", "segment",
                pl.lit(f"{index}:{bound}").alias("check"),
                pl.lit(constraint.describe(objective.min_rows)).alias("constraint"),
                pl.lit(constraint.metric).alias("metric"), pl.lit(bound).alias("bound"), pl.lit(limit).alias("limit"),
                value.alias("value"), slack.alias("slack"),
                (slack / abs(limit) if limit != 0 else slack).alias("relative"),
            ).cast(_CHECK_SCHEMA))
    return pl.concat(frames, how="vertical")


_CHECK_SCHEMA: dict[str, pl.DataType] = {
    "point": pl.Int32(), "segment": pl.String(), "check": pl.String(), "constraint": pl.String(),
    "metric": pl.String(), "bound": pl.String(), "limit": pl.Float64(), "value": pl.Float64(),
    "slack": pl.Float64(), "relative": pl.Float64(),
}


def _tightest(checks: pl.DataFrame) -> pl.DataFrame:
    """Per (point, constraint limit): the segment closest to (or furthest past) the limit."""
    return checks.sort(["relative", "segment"]).group_by(["point", "check"], maintain_order=True).first()


def feasibility(sweep: pl.DataFrame, objective: Objective) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Per point: the objective in ALL and whether it is `feasible`; and each constraint's tightest segment."""
    require_metrics(sweep, (objective.metric, *(c.metric for c in objective.constraints)))
    tightest = _tightest(_checks(sweep, objective))
    per_point = tightest.group_by("point").agg(
        (pl.col("slack") >= 0).all().alias("meets"), pl.col("relative").min().alias("closest")
    )
    table = _goal(sweep, objective).join(per_point, on="point", how="left").with_columns(
        (pl.col("eligible") & pl.col("meets").fill_null(True)).alias("feasible")  # no checked segment: nothing to break
    )
    return table, tightest


def choose(sweep: pl.DataFrame, objective: Objective) -> Recommendation:
    """The feasible grid point with the best ALL-segment objective estimate, with the reasons.

    `sweep` is the sweep table (see `simulator.decide.frontier`). Vectorised over
    points with polars; the only Python loop is over the constraints.

    Example::

        best = choose(swept.table, parse_objective("net_value; fraud_rate_bps<=40 every_segment"))
        best.point, best.reason
    """
    return choose_from(*feasibility(sweep, objective), objective)


def choose_from(table: pl.DataFrame, tightest: pl.DataFrame, objective: Objective) -> Recommendation:
    """`choose` from an already computed `feasibility(sweep, objective)`."""
    feasible = table.filter("feasible").sort(["score", "point"], descending=[True, False])
    if feasible.is_empty():
        return _infeasible(table, tightest, objective)
    best = feasible.row(0, named=True)
    binding = _bindings(tightest.filter(pl.col("point") == best["point"]))
    return Recommendation(
        metric=objective.metric, sense=objective.sense, point=best["point"],
        challenge_above=best["challenge_above"], block_above=best["block_above"],
        estimate=best["estimate"], ci_low=best["ci_low"], ci_high=best["ci_high"], baseline=best["baseline"],
        delta=best["delta"], delta_ci_low=best["delta_ci_low"], delta_ci_high=best["delta_ci_high"],
        feasible=feasible.height, points=table.height, binding=binding,
        reason=_reasons(best, binding, objective, feasible=feasible.height, table=table),
    )


def _bindings(rows: pl.DataFrame) -> tuple[Binding, ...]:
    """The tightest segment of each constraint limit, closest to its limit first."""
    fields = ["constraint", "metric", "bound", "limit", "segment", "value", "slack"]
    return tuple(Binding(**row) for row in rows.sort(["relative", "check"]).select(fields).iter_rows(named=True))


def _satisfied(objective: Objective) -> str:
    return " and ".join(c.describe(objective.min_rows) for c in objective.constraints)


def _where(binding: Binding, objective: Objective) -> str:
    """E.g. "card_country=BR at 11.7" (with the metric when several constraints could be meant)."""
    metric = f"{binding.metric} in " if len(objective.constraints) > 1 else ""
    return f"{metric}{binding.segment} at {number(binding.value)}"


def _reasons(best: dict[str, Any], binding: tuple[Binding, ...], objective: Objective, *,
             feasible: int, table: pl.DataFrame) -> list[str]:
    verb = "maximises" if objective.sense == "maximize" else "minimises"
    first = (f"{verb} {objective.metric} = {number(best['estimate'])} "
             f"[{number(best['ci_low'])}, {number(best['ci_high'])}] among {feasible:,} of {table.height:,} points")
    if objective.constraints:
        first += f" that keep {_satisfied(objective)}"
    if binding:
        first += f"; tightest: {_where(binding[0], objective)}"
    lines = [first, f"point {best['point']}: {_thresholds(best)}"]
    if best["baseline"] is not None:
        lines.append(f"baseline {objective.metric} = {number(best['baseline'])}; delta {signed_number(best['delta'])} "
                     f"[{signed_number(best['delta_ci_low'])}, {signed_number(best['delta_ci_high'])}]")
    left_out = table.height - int(table.get_column("eligible").sum())
    if left_out:
        noun = "point" if left_out == 1 else "points"
        lines.append(f"{left_out:,} {noun} left out for a missing or flagged {objective.metric} estimate in {ALL}")
    return lines


def _infeasible(table: pl.DataFrame, tightest: pl.DataFrame, objective: Objective) -> Recommendation:
    """No feasible point: say so, and name the point that comes closest."""
    eligible = table.filter("eligible")
    if eligible.is_empty():
        reason = [f"no point of {table.height:,} has a usable {objective.metric} estimate in {ALL} (all missing or flagged)"]
        closest: tuple[Binding, ...] = ()
    else:
        near = eligible.sort(["closest", "point"], descending=[True, False], nulls_last=True).row(0, named=True)
        closest = _bindings(tightest.filter(pl.col("point") == near["point"]))
        reason = [f"no point of {table.height:,} keeps {_satisfied(objective)}"]
        if closest:
            worst = closest[0]
            reason.append(f"closest: point {near['point']} ({_thresholds(near)}) has {worst.metric} = "
                          f"{number(worst.value)} in {worst.segment} against a {worst.bound} of {number(worst.limit)}")
    return Recommendation(
        metric=objective.metric, sense=objective.sense, point=None, challenge_above=None, block_above=None,
        estimate=None, ci_low=None, ci_high=None, baseline=None, delta=None, delta_ci_low=None, delta_ci_high=None,
        feasible=0, points=table.height, binding=closest, reason=reason,
    )


def _thresholds(row: dict[str, Any]) -> str:
    parts = [f"{name} = {row[name]:.4g}" for name in ("challenge_above", "block_above") if row[name] is not None]
    return ", ".join(parts) or "no thresholds"


def choice_frequency(objective_reps: np.ndarray, feasible_reps: np.ndarray, *, maximize: bool = True) -> np.ndarray:
    """Share of bootstrap replicates in which each grid point would be the one chosen, shape (P,).

    `objective_reps` (P, B): the objective metric of every point in each
    replicate (segment ALL); `feasible_reps` (P, B) bool: the point meets every
    constraint in that replicate. Per replicate the best feasible point wins
    (ties to the lower index, as in `choose`); a replicate with no feasible
    point counts toward none, so the shares sum to at most 1.
    """
    values = np.asarray(objective_reps, dtype=np.float64)
    feasible = np.asarray(feasible_reps, dtype=bool)
    if values.ndim != 2 or values.shape != feasible.shape:
        raise ValueError(f"objective_reps and feasible_reps must both be (P, B), got {values.shape} and {feasible.shape}")
    points, replicates = values.shape
    if replicates == 0:
        return np.zeros(points)
    usable = feasible & np.isfinite(values)
    masked = np.where(usable, values if maximize else -values, -np.inf)
    chosen = np.argmax(masked, axis=0)
    counts = np.bincount(chosen[usable.any(axis=0)], minlength=points)
    return counts / replicates
