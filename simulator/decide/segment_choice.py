"""Per-segment thresholds from a sweep: the best grid point for each value of one column.

With `[sweep] by = "card_country"` and an objective, each country gets the grid
point that is best *within that country* under the objective's constraints
(checked on that country's own numbers), values without a feasible point keep
the overall recommendation, and the combination is one `segment_threshold`
policy. Its overall effect is not the sum of per-segment choices read off the
sweep (self-normalised estimates do not add up across segments), so it is
evaluated as a policy of its own, in one more pass of `run` (by `simulator.workflows.sweep`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from segments.labels import ALL, NULL, OTHER
from simulator.config_tables import Objective
from simulator.decide.objective import Recommendation, choose

COMBINED = "by_segment"  # the combined policy's name in its results


@dataclass(frozen=True)
class BySegment:
    """The chosen point per value, the combined policy's table, and its results against the baseline."""

    column: str
    choices: pl.DataFrame  # per value: the chosen point and its numbers on the rows that chose it
    policy: dict[str, Any]
    results: pl.DataFrame  # the combined policy against the baseline (on the held-out rows, scaled, when `holdout`)
    holdout: dict[str, Any] | None = None  # which rows chose and which reported (`Holdout.describe`)


def _cutoffs(challenge: float | None, block: float | None) -> dict[str, float]:
    return {k: float(v) for k, v in (("challenge_above", challenge), ("block_above", block)) if v is not None}


def segment_choices(table: pl.DataFrame, column: str, objective: Objective) -> pl.DataFrame:
    """One row per value of `column`: its best feasible point under `objective`, judged on that value alone."""
    rows = []
    per_value = table.filter(pl.col("segmentation") == column)
    for segment in per_value["segment"].unique().sort().to_list():
        alone = per_value.filter(pl.col("segment") == segment).with_columns(pl.lit(ALL).alias("segment"))
        best: Recommendation = choose(alone, objective)
        rows.append({
            "segment": segment, "value": segment.split("=", 1)[1], "point": best.point,
            "challenge_above": best.challenge_above, "block_above": best.block_above,
            "metric": objective.metric, "estimate": best.estimate, "ci_low": best.ci_low, "ci_high": best.ci_high,
            "baseline": best.baseline, "delta": best.delta, "feasible_points": best.feasible,
            "reason": " ".join(best.reason),
        })
    schema = {"segment": pl.String, "value": pl.String, "point": pl.Int32, "challenge_above": pl.Float64,
              "block_above": pl.Float64, "metric": pl.String, "estimate": pl.Float64, "ci_low": pl.Float64,
              "ci_high": pl.Float64, "baseline": pl.Float64, "delta": pl.Float64, "feasible_points": pl.Int64,
              "reason": pl.String}
    return pl.DataFrame(rows, schema=schema)


def combined_policy(choices: pl.DataFrame, column: str, score: str, default: Recommendation) -> dict[str, Any]:
    """The `segment_threshold` policy table: each value's chosen cutoffs, the overall choice elsewhere."""
    chosen = choices.filter(pl.col("point").is_not_null() & ~pl.col("value").is_in([OTHER, NULL]))
    thresholds = {row["value"]: _cutoffs(row["challenge_above"], row["block_above"]) for row in chosen.iter_rows(named=True)}
    return {"name": COMBINED, "kind": "segment_threshold", "score": score, "column": column,
            "default": _cutoffs(default.challenge_above, default.block_above), "thresholds": thresholds}
