"""A sweep's recommendation, and how often the bootstrap would recommend each point.

`simulator.decide.objective.choose_from` picks the grid point from the estimates. Its
stability comes from the bootstrap: in every replicate the same rule (best
objective among the points meeting every constraint) picks a point, and the
share of replicates that pick the recommended one says how sure the choice is.
`ReplicateChoices` gathers what that needs while the sweep's replicates are
evaluated block by block (`simulator.estimate.grid_results.grid_bounds`), without
keeping the replicates of every segment and point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulator.estimate.grid_totals import GridTotals
from simulator.estimate.results import replicate_values
from simulator.estimate.totals import SegmentTotals
from simulator.plan.moments import Term
from simulator.config_tables import Objective
from simulator.decide.objective import Recommendation, choice_frequency, choose_from, feasibility
from simulator.plan.compiled import Plan
from simulator.schema import LOGGED
from simulator.stats.shard import Stats
from simulator.model.value import ValueSet, Weighting


def metric_population(metric: str, values: ValueSet) -> str:
    """The rows a metric is computed over: "one" (every row) or "mature" (mature fraud labels)."""
    for m in values.sums:
        if m.name == metric:
            return m.population
    return next(r.numerator.population for r in values.ratios if r.name == metric)


class ReplicateChoices:
    """Per grid point and replicate: the objective in ALL, and whether every constraint holds."""

    def __init__(self, objective: Objective, points: int, replicates: int) -> None:
        self.objective = objective
        self.values = np.full((points, replicates), np.nan)
        self.feasible = np.ones((points, replicates), dtype=bool)

    def __call__(self, segments: slice, points: np.ndarray, reps: dict[str, np.ndarray], totals: GridTotals) -> None:
        """Take one block's replicates, `(segments, points, B)` per metric."""
        self.add(segments, points, reps, totals.base)

    def add(self, segments: slice, points: np.ndarray, reps: dict[str, np.ndarray], totals: SegmentTotals) -> None:
        """Take replicates of `points` on a slice of `totals`' segments, `(segments, points, B)` per metric."""
        if segments.start == 0:  # ALL is the first segment
            self.values[points] = reps[self.objective.metric][0]
        for constraint in self.objective.constraints:
            checked = self._checked(constraint.scope, constraint.metric, totals)[segments]
            if not checked.any():
                continue
            value = reps[constraint.metric][checked]  # (checked segments, points, B)
            ok = np.isfinite(value)
            if constraint.max is not None:
                ok &= value <= constraint.max
            if constraint.min is not None:
                ok &= value >= constraint.min
            self.feasible[points] &= ok.all(axis=0)

    def _checked(self, scope: str, metric: str, totals: SegmentTotals) -> np.ndarray:
        """Segments a constraint applies to: ALL, or every segment with at least `min_rows` rows."""
        if scope == "overall":
            return np.arange(len(totals.labels)) == 0
        if metric_population(metric, totals.plan.values) == "mature":
            rows = totals.total(Term(LOGGED, Weighting.TARGET, "mature"))
        else:
            rows = totals.rows
        return rows >= self.objective.min_rows

    def frequency(self, eligible: np.ndarray) -> np.ndarray:
        """Share of replicates choosing each point; points never recommendable (`eligible` False) excluded."""
        return choice_frequency(self.values, self.feasible & eligible[:, None],
                                maximize=self.objective.sense == "maximize")


@dataclass(frozen=True)
class Choice:
    """The recommendation, the feasible points and, with a bootstrap, each point's share of replicates choosing it."""

    objective: Objective
    recommendation: Recommendation
    feasible: frozenset[int]
    frequency: pl.DataFrame | None  # point, share (descending); None without bootstrap

    def share(self) -> float | None:
        """How often the bootstrap picks the recommended point."""
        point = self.recommendation.point
        if self.frequency is None or point is None:
            return None
        row = self.frequency.filter(pl.col("point") == point)
        return float(row["share"][0]) if row.height else 0.0


def recommend(table: pl.DataFrame, objective: Objective, choices: ReplicateChoices | None) -> Choice:
    """The recommended point of a sweep table and how stable the choice is."""
    points, tightest = feasibility(table, objective)
    recommendation = choose_from(points, tightest, objective)
    feasible = frozenset(points.filter("feasible")["point"].to_list())
    if choices is None:
        return Choice(objective, recommendation, feasible, None)
    share = choices.frequency(points.sort("point")["eligible"].to_numpy())
    frequency = pl.DataFrame({"point": np.arange(len(share), dtype=np.int32), "share": share})
    return Choice(objective, recommendation, feasible,
                  frequency.filter(pl.col("share") > 0).sort("share", descending=True))


def policy_choices(stats: Stats, plan: Plan, names: list[str], objective: Objective, estimator: str) -> ReplicateChoices:
    """The replicate choices of a grid evaluated one policy per point (`names[p]` is point p), from a run's stats."""
    replicates = stats.replicates
    assert replicates is not None
    totals = SegmentTotals(plan=plan, cells=stats.cells)
    choices = ReplicateChoices(objective, len(names), plan.bootstrap)
    everything = slice(0, len(totals.labels))
    for point, name in enumerate(names):
        reps = replicate_values(replicates, totals, name, estimator)
        choices.add(everything, np.array([point]), {k: v[:, None, :] for k, v in reps.items()}, totals)
    return choices


def choice_spread(choice: Choice, points: pl.DataFrame, coverage: float = 0.9) -> str:
    """Where the bootstrap's choices fall: the parameter ranges of the most chosen points covering `coverage`.

    A low share for the recommended point often only means that its neighbours are as
    good; this says how far apart the plausible choices are.
    """
    if choice.frequency is None or choice.frequency.is_empty():
        return ""
    shares = choice.frequency.with_columns(pl.col("share").cum_sum().shift(1, fill_value=0.0).alias("before"))
    top = shares.filter(pl.col("before") < coverage * shares["share"].sum()).join(points, on="point")
    parameters = [c for c in points.columns if c not in ("point", "label") and top[c].null_count() < top.height]
    spans = []
    for name in parameters:
        values = top[name].drop_nulls()
        if values.dtype.is_numeric():
            low, high = values.min(), values.max()
            spans.append(f"{name} {low:.3g}" if low == high else f"{name} {low:.3g}–{high:.3g}")
        else:
            spans.append(f"{name} in {sorted(set(values.to_list()))}")
    covered = float(top["share"].sum())
    return f"; the {top.height} points chosen in {covered:.0%} of replicates span " + ", ".join(spans) if spans else ""
