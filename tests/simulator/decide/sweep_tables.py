"""Synthetic sweep tables for the frontier and objective tests: no engine, no Ray."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from simulator.estimate.results import RESULT_SCHEMA

Values = Sequence[float | None]


def segmentation_of(segment: str) -> str:
    """"ALL" -> "ALL"; "card_country=FR|card_brand=visa" -> "card_country|card_brand"."""
    return segment if segment == "ALL" else "|".join(part.split("=")[0] for part in segment.split("|"))


def make_sweep(
    estimates: Mapping[str, Mapping[str, Values]],
    *,
    rows: Mapping[str, int] | None = None,
    flags: Mapping[tuple[str, str, int], str] | None = None,
    baseline: Mapping[str, float] | None = None,
    half_width: float = 0.1,
    challenge_above: Values | None = None,
    block_above: Values | None = None,
) -> pl.DataFrame:
    """A sweep table: `estimates[segment][metric]` holds one estimate per grid point (None = hidden).

    Intervals are estimate ± half_width·|estimate|; `rows` per segment default
    to 10,000; `flags[(segment, metric, point)]` sets a flag; `baseline[metric]`
    is the baseline's estimate (default: point 0's value in that segment).
    Thresholds default to challenge_above = 0.1·point and block_above = 0.5 + 0.05·point.
    """
    records = []
    for segment, metrics in estimates.items():
        for metric, values in metrics.items():
            base = (baseline or {}).get(metric, values[0])
            for point, value in enumerate(values):
                width = None if value is None else half_width * abs(value)
                records.append({
                    "policy": f"threshold[point={point}]", "segmentation": segmentation_of(segment),
                    "segment": segment, "metric": metric, "estimate": value, "se": width,
                    "ci_low": None if value is None else value - width,
                    "ci_high": None if value is None else value + width,
                    "baseline": base, "baseline_policy": "production",
                    "delta": None if value is None or base is None else value - base,
                    "delta_se": width, "delta_ci_low": None, "delta_ci_high": None,
                    "rows": (rows or {}).get(segment, 10_000), "ess": 1000.0, "max_weight": 10.0,
                    "unsupported_mass": 0.0, "flag": (flags or {}).get((segment, metric, point), ""),
                    "estimator": "snipw", "interval": "clt",
                    "point": point,
                    "challenge_above": 0.1 * point if challenge_above is None else challenge_above[point],
                    "block_above": 0.5 + 0.05 * point if block_above is None else block_above[point],
                })
    schema = RESULT_SCHEMA | {"point": pl.Int32, "challenge_above": pl.Float64, "block_above": pl.Float64}
    return pl.DataFrame(records, schema=schema).with_columns(
        delta_ci_low=pl.col("delta") - pl.col("delta_se"), delta_ci_high=pl.col("delta") + pl.col("delta_se")
    )
