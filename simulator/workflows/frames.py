"""Notebook conveniences on top of `run` and `sweep`: diagnostics per (policy, segment), a sweep on a frame.

Both return what the engine returns (polars DataFrames, `SweepResult`); neither
prints nor plots. Re-exported from `simulator` (`from simulator import diagnostics`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl

from simulator.config import RunConfig
from simulator.decide.frontier import require_metrics
from simulator.config_tables import Objective
from simulator.engine.execution import Execution
from simulator.workflows.sweep import SweepResult, sweep

DIAGNOSTICS_SCHEMA: dict[str, type[pl.DataType]] = {
    "policy": pl.String,
    "segmentation": pl.String,
    "segment": pl.String,
    "rows": pl.Int64,
    "ess": pl.Float64,
    "max_weight": pl.Float64,
    "unsupported_mass": pl.Float64,
    "flag": pl.String,
}


def diagnostics(results: pl.DataFrame, metric: str | None = None) -> pl.DataFrame:
    """One row per (policy, segmentation, segment) of a results table: how far its estimates can be trusted.

    The results table repeats the diagnostics on every metric row, and they
    differ slightly between metrics (fraud metrics count only rows with mature
    labels). This keeps the most cautious value of each: the largest `rows`
    (the segment's size), the smallest `ess`, the largest `max_weight` and
    `unsupported_mass`, and every distinct flag (`low_ess;no_support`, or ""
    when none; `unidentified` on one ratio metric, such as `block_precision`
    where nothing is blocked, flags the whole segment). `metric` keeps only
    that metric's rows, for the diagnostics of one number. Works on a sweep
    table too (then one row per point label).
    Rows keep the order of `results` (ALL first, segments in report order).

    Example::

        result = run(config, Path("data/transactions"), execution=Execution(engine="local"))
        diag = diagnostics(result.results)
        diag.filter(pl.col("flag") != "")        # the segments whose numbers need care
    """
    keys = ["policy", "segmentation", "segment"]
    if metric is not None:
        require_metrics(results, (metric,))
        results = results.filter(pl.col("metric") == metric)
    every_flag = pl.col("flag").str.split(";").list.unique(maintain_order=True).list.filter(pl.element() != "")
    return results.group_by(keys, maintain_order=True).agg(
        pl.col("rows").max(),
        pl.col("ess").min(),
        pl.col("max_weight").max(),
        pl.col("unsupported_mass").max(),
        pl.col("flag").fill_null("").str.join(";"),
    ).with_columns(every_flag.list.join(";")).cast(DIAGNOSTICS_SCHEMA)  # type: ignore[arg-type]


def sweep_frame(config: RunConfig, frame: pl.DataFrame, *, objective: Objective | None = None,
                execution: Execution = Execution(engine="local")) -> SweepResult:
    """`sweep` on an in-memory frame (canonical column names), as `run_frame` is `run` on one.

    The sweep engine reads Parquet (it validates and scans the dataset, then
    plans shards over row groups), so the frame is written to a temporary
    Parquet file that is removed afterwards; validation errors are those of
    `sweep` on a path (`InvalidData`, naming column, count and an example id).
    `Execution(engine="local")` by default, unlike `sweep`: the rows are already
    in this process, and a Ray cluster would cost more to start than the sweep.

    Example::

        config = parse_config({"sweep": {"score": "fraud_score", "block_above": [0.3, 0.5, 0.7]}})
        swept = sweep_frame(config, frame, objective=parse_objective("net_value; fraud_rate_bps<=40"))
        swept.choice.recommendation.reason   # the chosen point and why, in words
    """
    with tempfile.TemporaryDirectory(prefix="policysim-sweep-") as scratch:
        path = Path(scratch) / "transactions.parquet"
        frame.write_parquet(path)
        return sweep(config, path, objective=objective, execution=execution)
