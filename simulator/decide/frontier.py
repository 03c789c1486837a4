"""Pareto frontiers of a threshold sweep: which grid points are worth considering (SPEC §9, frontier.parquet).

Input is the sweep table: the columns of `RESULT_SCHEMA` plus `point` (Int32,
0..P-1), `challenge_above` and `block_above` (Float64, null when the grid has
no such threshold), one row per (point, segment, metric).

A grid point is *efficient* for a pair of metrics (x, y) in a segment when no
other point of that segment has x ≤ and y ≥ with at least one strict (for the
default directions: lower fraud, higher value). Points with the same (x, y)
do not dominate each other, so ties are all kept. Points whose x or y estimate
is missing or flagged are left out before the comparison: a noisy or
unsupported estimate would otherwise push genuinely efficient points off the
frontier. `keep_low_ess=True` keeps low-ESS points (still flagged in `flag`).

Pictures live in `simulator.report.frontier_plots`: this
module only computes, and imports neither matplotlib nor plotly.
"""

from __future__ import annotations


import polars as pl

from simulator.errors import UnknownName
from simulator.estimate.results import LOW_ESS

FRAUD_RATE = "fraud_rate_bps"

# The frontiers issue #5 asks for, as (x, y): net value and authorization rate against the fraud rate.
FRONTIERS: tuple[tuple[str, str], ...] = ((FRAUD_RATE, "net_value"), (FRAUD_RATE, "auth_rate"))

SEGMENT_KEYS = ["segmentation", "segment"]
POINT_KEYS = ["segmentation", "segment", "point"]
THRESHOLDS = ["challenge_above", "block_above"]

FRONTIER_SCHEMA: dict[str, pl.DataType] = {
    "segmentation": pl.String(),
    "segment": pl.String(),
    "frontier": pl.String(),
    "point": pl.Int32(),
    "challenge_above": pl.Float64(),
    "block_above": pl.Float64(),
    "x_metric": pl.String(),
    "x_estimate": pl.Float64(),
    "x_ci_low": pl.Float64(),
    "x_ci_high": pl.Float64(),
    "x_baseline": pl.Float64(),
    "y_metric": pl.String(),
    "y_estimate": pl.Float64(),
    "y_ci_low": pl.Float64(),
    "y_ci_high": pl.Float64(),
    "y_baseline": pl.Float64(),
    "rows": pl.Int64(),
    "flag": pl.String(),
}


def frontier_name(x: str, y: str) -> str:
    """How a frontier is named in `frontier.parquet`: y against x, e.g. "net_value~fraud_rate_bps"."""
    return f"{y}~{x}"


def metric_points(sweep: pl.DataFrame, metric: str, prefix: str) -> pl.DataFrame:
    """One row per (segmentation, segment, point) with one metric's numbers, columns prefixed (`x_estimate`, ...)."""
    numbers = ["estimate", "ci_low", "ci_high", "baseline", "rows", "flag"]
    return sweep.filter(pl.col("metric") == metric).select(
        *POINT_KEYS, *THRESHOLDS, *[pl.col(c).alias(f"{prefix}_{c}") for c in numbers]
    )


def metric_pairs(sweep: pl.DataFrame, x: str, y: str) -> pl.DataFrame:
    """Every grid point of every segment with the x and y metrics side by side."""
    require_metrics(sweep, (x, y))
    right = metric_points(sweep, y, "y").drop(THRESHOLDS)
    # the thresholds come from one side only: null thresholds would not match in a join
    return metric_points(sweep, x, "x").join(right, on=POINT_KEYS, how="inner")


def require_metrics(sweep: pl.DataFrame, metrics: tuple[str, ...]) -> None:
    """Raise `UnknownName` for a metric the sweep table does not hold."""
    present = set(sweep.get_column("metric").unique().to_list())
    for metric in metrics:
        if metric not in present:
            raise UnknownName("metric", metric, present)


def _usable(flag: pl.Expr, *, keep_low_ess: bool) -> pl.Expr:
    """True where a flag allows the estimate on a frontier."""
    clean = flag.fill_null("") == ""
    return (clean | (flag == LOW_ESS)) if keep_low_ess else clean


def _joined_flags() -> pl.Expr:
    """The distinct non-empty parts of the x and y flags, joined by ';'."""
    parts = pl.concat_list(pl.col("x_flag").fill_null("").str.split(";"), pl.col("y_flag").fill_null("").str.split(";"))
    return parts.list.unique(maintain_order=True).list.filter(pl.element() != "").list.join(";").alias("flag")


def pareto_frontier(
    sweep: pl.DataFrame,
    x: str = FRAUD_RATE,
    y: str = "net_value",
    *,
    minimize_x: bool = True,
    maximize_y: bool = True,
    keep_low_ess: bool = False,
) -> pl.DataFrame:
    """The efficient grid points of every (segmentation, segment), best x first within each segment.

    Vectorised: within each segment, distinct (x, y) pairs are sorted by x (best
    first) then y (best first); a pair is efficient when its y beats the running
    best of every pair before it. Columns: `FRONTIER_SCHEMA`.

    Example::

        pareto_frontier(swept.table, "fraud_rate_bps", "auth_rate").filter(pl.col("segment") == "ALL")
    """
    pairs = metric_pairs(sweep, x, y)
    usable = pairs.filter(
        pl.col("x_estimate").is_finite() & pl.col("y_estimate").is_finite()
        & _usable(pl.col("x_flag"), keep_low_ess=keep_low_ess) & _usable(pl.col("y_flag"), keep_low_ess=keep_low_ess)
    ).with_columns(
        (pl.col("x_estimate") * (1.0 if minimize_x else -1.0)).alias("_cost"),
        (pl.col("y_estimate") * (1.0 if maximize_y else -1.0)).alias("_gain"),
    )
    distinct = usable.select(*SEGMENT_KEYS, "_cost", "_gain").unique().sort(
        [*SEGMENT_KEYS, "_cost", "_gain"], descending=[False, False, False, True]
    )
    best_before = pl.col("_gain").cum_max().shift(1).over(SEGMENT_KEYS)
    efficient = distinct.filter(best_before.is_null() | (pl.col("_gain") > best_before))
    frontier = usable.join(efficient, on=[*SEGMENT_KEYS, "_cost", "_gain"], how="semi")
    return frontier.sort([*SEGMENT_KEYS, "_cost", "point"]).select(
        *SEGMENT_KEYS,
        pl.lit(frontier_name(x, y)).alias("frontier"),
        "point", *THRESHOLDS,
        pl.lit(x).alias("x_metric"), "x_estimate", "x_ci_low", "x_ci_high", "x_baseline",
        pl.lit(y).alias("y_metric"), "y_estimate", "y_ci_low", "y_ci_high", "y_baseline",
        pl.min_horizontal("x_rows", "y_rows").alias("rows"),  # the smaller evidence base of the two metrics
        _joined_flags(),
    ).cast(FRONTIER_SCHEMA)


def frontiers(sweep: pl.DataFrame) -> pl.DataFrame:
    """`frontier.parquet`: net_value and auth_rate against fraud_rate_bps, overall and per segment.

    Example::

        frontier = frontiers(swept.table)     # swept = sweep(config, data) or sweep_frame(config, frame)
        frontier.filter(pl.col("segment") == "ALL", pl.col("frontier") == "net_value~fraud_rate_bps")
    """
    parts = [pareto_frontier(sweep, x, y) for x, y in FRONTIERS]
    return pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=FRONTIER_SCHEMA)
