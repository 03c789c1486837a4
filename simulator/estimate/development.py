"""The dispute-delay curve's uncertainty in the intervals of developed fraud metrics.

Under `immature_labels = "develop"` every fraud value is weighted by 1 / Ĝ(age)
(`simulator.model.maturity`), and Ĝ is itself estimated. By the delta method, a
developed total T̂ moves with the curve as Var_Ĝ(T̂) = κ² · P̂², where P̂ is the
part of T̂ that the weights scale (the fraud part) and κ² is the curve's relative
variance under the age profile of the log's developed disputes
(`Development.relative_variance`). Sampling and curve errors are added in
quadrature: se² + κ² P̂², each side of the interval widened by z · κ · |P̂|.

Which part of a metric the weights scale:

- fraud_count, fraud_volume, fraud_loss, blocked_fraud_count: all of it;
- net_value: its fraud loss; blocked_legit_count (= authorized − fraud): its
  blocked fraud;
- fraud_rate_bps and block_precision: all of it (their denominators carry no
  fraud); block_recall: none (numerator and denominator scale alike, so the
  curve cancels).

Paired deltas get the same term for the difference of the parts (both policies
are developed with the same curve, so it scales their difference).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simulator.estimate.intervals import normal_quantile
from simulator.plan.compiled import Plan

# metric -> the metric whose estimate is the part the development weights scale
DEVELOPED_PART: dict[str, str] = {
    "fraud_count": "fraud_count",
    "fraud_volume": "fraud_volume",
    "fraud_loss": "fraud_loss",
    "blocked_fraud_count": "blocked_fraud_count",
    "fraud_rate_bps": "fraud_rate_bps",
    "block_precision": "block_precision",
    "net_value": "fraud_loss",
    "blocked_legit_count": "blocked_fraud_count",
}
PROPORTIONS = frozenset({"block_precision"})
SUFFIX = " + development"
_KEYS = ("point", "policy", "segmentation", "segment")


def with_development_uncertainty(frame: pl.DataFrame, plan: Plan, confidence: float) -> pl.DataFrame:
    """Results (or grid results) with the curve's variance added to developed fraud metrics' se and intervals.

    Unchanged when labels are not developed or the curve's variance is 0.
    """
    development = plan.development
    if development is None or development.relative_variance <= 0 or frame.is_empty():
        return frame
    kappa = float(np.sqrt(development.relative_variance))
    z = normal_quantile(confidence)
    keys = [k for k in _KEYS if k in frame.columns]
    parts = frame.filter(pl.col("metric").is_in(list(set(DEVELOPED_PART.values())))).select(
        *keys, pl.col("metric").alias("_part_metric"),
        (kappa * pl.col("estimate")).abs().alias("_sd"), (kappa * pl.col("delta")).abs().alias("_dsd"))
    part_of = pl.col("metric").replace_strict(DEVELOPED_PART, default=None, return_dtype=pl.String)
    joined = frame.with_row_index("_row").with_columns(part_of.alias("_part_metric")).join(
        parts, on=[*keys, "_part_metric"], how="left", nulls_equal=False).sort("_row")
    sd, dsd = pl.col("_sd").fill_null(0.0), pl.col("_dsd").fill_null(0.0)
    widened = joined.with_columns(
        *_widen("se", "ci_low", "ci_high", "estimate", sd, z),
        *_widen("delta_se", "delta_ci_low", "delta_ci_high", "delta", dsd, z, bounded=False),
        interval=pl.when((sd > 0) | (dsd > 0)).then(pl.col("interval") + SUFFIX).otherwise(pl.col("interval")),
    )
    return widened.select(frame.columns)


def _widen(se: str, low: str, high: str, center: str, sd: pl.Expr, z: float, bounded: bool = True) -> list[pl.Expr]:
    """se and each side of the interval, with `sd` added in quadrature (z · sd on each side)."""
    below = (pl.col(center) - pl.col(low)).clip(0)
    above = (pl.col(high) - pl.col(center)).clip(0)
    new_low = pl.col(center) - (below**2 + (z * sd) ** 2).sqrt()
    new_high = pl.col(center) + (above**2 + (z * sd) ** 2).sqrt()
    if bounded:  # a bound the interval method kept (≥ 0, ≤ 1 for proportions) stays kept
        new_low = pl.when(pl.col(low) >= 0).then(new_low.clip(0)).otherwise(new_low)
        new_high = pl.when(pl.col("metric").is_in(list(PROPORTIONS)) & (pl.col(high) <= 1)).then(
            new_high.clip(upper_bound=1)).otherwise(new_high)
    return [
        (pl.col(se) ** 2 + sd**2).sqrt().alias(se),
        pl.when(sd > 0).then(new_low).otherwise(pl.col(low)).alias(low),
        pl.when(sd > 0).then(new_high).otherwise(pl.col(high)).alias(high),
    ]
