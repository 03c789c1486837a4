"""Calibration of the logged model scores: does a score of 0.2 mean 20 %?

The policies under review act on `fraud_score` and `auth_score`, and the DR
estimator's outcome model is built from them, so a review shows how well each
score matches what happened: a reliability curve per score, the mean score
against the observed outcome rate within quantile bins of the score.

- `fraud_score` against `fraud_dispute`, among rows the logging policy allowed
  or challenged, that were authorized (a fraud dispute needs an authorized
  payment) and whose fraud labels are mature (created on or before the cutoff).
- `auth_score` against `authorized`, among rows the logging policy allowed
  (on a challenge, authorization also needs the shopper to pass 3-D Secure).

Rows are counted as logged (not re-weighted): the curve describes the scores
on the traffic where the outcome was observed, which is mostly low-risk
traffic for fraud. Everything is a lazy polars aggregate over the dataset, so
the driver holds bin totals, never rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from simulator.schema import ACTION, AUTHORIZED, CREATED_AT, FRAUD_DISPUTE

CALIBRATION_SCHEMA: dict[str, type[pl.DataType]] = {
    "score": pl.String,
    "outcome": pl.String,
    "bin": pl.Int32,
    "score_low": pl.Float64,
    "score_high": pl.Float64,
    "rows": pl.Int64,
    "mean_score": pl.Float64,
    "observed_rate": pl.Float64,
    "observed_se": pl.Float64,
}


@dataclass(frozen=True, slots=True)
class CalibrationTarget:
    """One reliability curve: a score, the outcome it predicts, and the rows where that outcome is observed."""

    score: str
    outcome: str
    actions: tuple[str, ...]  # logged actions whose rows are used
    mature_only: bool  # fraud labels need time to arrive; authorization does not


TARGETS: tuple[CalibrationTarget, ...] = (
    CalibrationTarget("fraud_score", FRAUD_DISPUTE, ("allow", "challenge"), mature_only=True),
    CalibrationTarget("auth_score", AUTHORIZED, ("allow",), mature_only=False),
)


def _observed(target: CalibrationTarget, cutoff: datetime | None) -> pl.Expr:
    """Rows where the target's outcome was observed (non-null) under the target's rules."""
    keep = pl.col(ACTION).is_in(list(target.actions)) & pl.col(target.outcome).is_not_null()
    if target.mature_only and cutoff is not None:
        keep = keep & (pl.col(CREATED_AT) <= pl.lit(cutoff))
    return keep


TAIL_LEVELS: tuple[float, ...] = (0.95, 0.99, 0.999)


def score_edges(data: pl.LazyFrame, score: str, bins: int) -> list[float]:
    """Quantile edges of `score` (deduplicated, first 0 and last 1): equal-count bins of a skewed score.

    The top decile is split further at TAIL_LEVELS: policies act on the tail of
    a fraud score, where equal-count deciles would put everything in one bin.
    """
    levels = sorted({round(i / bins, 6) for i in range(1, bins)} | set(TAIL_LEVELS))
    row = data.select([pl.col(score).quantile(q, interpolation="lower").alias(f"q{i}") for i, q in
                       enumerate(levels)]).collect(engine="streaming")
    inner = sorted({float(v) for v in row.row(0) if v is not None and 0.0 < float(v) < 1.0})
    return [0.0, *inner, 1.0]


def calibration(data: pl.LazyFrame, target: CalibrationTarget, *, cutoff: datetime | None,
                bins: int = 10) -> pl.DataFrame:
    """The reliability curve of one score: one row per bin (CALIBRATION_SCHEMA).

    Bin b holds scores in (edge[b], edge[b+1]] (bin 0 also holds a score of
    exactly 0); the bin is the count of inner edges below the score, so a
    score sitting on an edge is placed by comparison, never by arithmetic.
    `observed_se` is the binomial standard error of the observed rate.
    """
    rows = data.filter(_observed(target, cutoff)).select(
        pl.col(target.score).cast(pl.Float64).alias("s"), pl.col(target.outcome).cast(pl.Float64).alias("y")
    )
    edges = score_edges(rows, "s", bins)
    inner = edges[1:-1]
    bin_index = pl.sum_horizontal([(pl.col("s") > e).cast(pl.Int32) for e in inner]) if inner else pl.lit(0)
    table = (
        rows.with_columns(bin_index.cast(pl.Int32).alias("bin"))
        .group_by("bin")
        .agg(pl.len().cast(pl.Int64).alias("rows"), pl.col("s").mean().alias("mean_score"),
             pl.col("y").mean().alias("observed_rate"))
        .collect(engine="streaming")
        .sort("bin")
    )
    return table.with_columns(
        pl.lit(target.score).alias("score"),
        pl.lit(target.outcome).alias("outcome"),
        pl.col("bin").replace_strict(dict(enumerate(edges[:-1])), return_dtype=pl.Float64).alias("score_low"),
        pl.col("bin").replace_strict(dict(enumerate(edges[1:])), return_dtype=pl.Float64).alias("score_high"),
        (pl.col("observed_rate") * (1 - pl.col("observed_rate")) / pl.col("rows")).sqrt().alias("observed_se"),
    ).select(list(CALIBRATION_SCHEMA)).cast(CALIBRATION_SCHEMA)  # type: ignore[arg-type]


def calibrations(data: pl.LazyFrame, *, cutoff: datetime | None, bins: int = 10) -> pl.DataFrame:
    """Reliability curves of every target score present in `data`, stacked (CALIBRATION_SCHEMA).

    A score column the data does not have is skipped: the report says which are shown.
    `cutoff`: fraud labels of rows created after it are immature and left out
    (`run(...).plan.cutoff`; None keeps every row).

    Example::

        curves = calibrations(pl.scan_parquet("data/transactions/*.parquet"), cutoff=result.plan.cutoff)
        calibration_plot(curves)
    """
    present = set(data.collect_schema().names())
    frames = [calibration(data, t, cutoff=cutoff, bins=bins) for t in TARGETS
              if {t.score, t.outcome, ACTION, CREATED_AT} <= present]
    return pl.concat(frames) if frames else pl.DataFrame(schema=CALIBRATION_SCHEMA)


def calibration_error(curve: pl.DataFrame) -> pl.DataFrame:
    """Per score: rows and the expected calibration error, Σ rows·|mean score − observed| / Σ rows."""
    return curve.group_by("score", "outcome", maintain_order=True).agg(
        pl.col("rows").sum(),
        ((pl.col("mean_score") - pl.col("observed_rate")).abs() * pl.col("rows")).sum().truediv(
            pl.col("rows").sum()).alias("calibration_error"),
    )
