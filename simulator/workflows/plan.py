"""`plan`: how many days of traffic and what exploration share would make each guardrail conclusive.

One `run` of the review's candidate on the current log (the normal engine, one pass), then, on the driver:
each guardrail's delta variance split by the rows it rests on (`simulator.estimate.sizing`), the current
exploration share and span of the log, and the planner's model (`simulator.decide.sizing`) over a grid of
(days, exploration share). Without a `[review]` table every policy of the config is sized for the sign of
net_value, auth_rate and fraud_rate_bps (conclusive: the interval excludes 0). What exploring costs is the
logging policy's net value against production (`simulator.report.tables.exploration_cost`), per unit of
share and per month of the data's volume. docs/review.md ("Before you explore: sizing a test").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from segments.labels import ALL
from simulator.config import RunConfig, derive
from simulator.data.load import scan_dataset
from simulator.decide.sizing import DEFAULT_DAYS, DEFAULT_SHARES, LogShape, plan_grid, smallest_designs
from simulator.engine.execution import Execution
from simulator.errors import InvalidConfig, InvalidData
from simulator.estimate.results import FEW_EVENTS, LOW_ESS
from simulator.estimate.sizing import delta_variance_sources
from simulator.schema import LOGGED, PRODUCTION
from simulator.workflows.run import RunResult, resolve_data, run, run_summary

DEFAULT_METRICS: tuple[str, ...] = ("net_value", "auth_rate", "fraud_rate_bps")

CHECK_SCHEMA: dict[str, type[pl.DataType]] = {
    "policy": pl.String, "guardrail": pl.Int32, "name": pl.String, "metric": pl.String, "scope": pl.String,
    "upper": pl.Boolean, "relative": pl.Boolean, "limit_value": pl.Float64, "min_rows": pl.Int64,
}


@dataclass(frozen=True)
class PlanResult:
    """What `plan` produced: the grid of designs, the smallest conclusive one per guardrail, and what backs them."""

    grid: pl.DataFrame  # simulator.decide.sizing.PLAN_SCHEMA
    smallest: pl.DataFrame  # per guardrail: the conclusive design with the fewest days, then the lowest share
    current: pl.DataFrame  # per guardrail: the current delta, interval and variance split
    log: LogShape
    cost: dict[str, float | None]  # net value exploration gives up per month at the current share, and its interval
    run: RunResult
    summary: dict[str, Any]


def checks(config: RunConfig) -> pl.DataFrame:
    """The guardrails to size (CHECK_SCHEMA): the `[review]` table's, or the sign of the default metrics of every policy."""
    review = config.review
    if review is not None:
        rows = [{"policy": review.candidate, "guardrail": i, "name": g.name, "metric": g.metric, "scope": g.scope,
                 "upper": g.upper, "relative": g.relative, "limit_value": g.limit_value, "min_rows": g.min_rows}
                for i, g in enumerate(review.guardrails)]
    else:
        rows = [{"policy": p.name, "guardrail": -1, "name": f"{m} (sign)", "metric": m, "scope": "overall",
                 "upper": None, "relative": False, "limit_value": 0.0, "min_rows": 0}
                for p in config.policies if p.name != config.baseline.policy for m in DEFAULT_METRICS]
    if not rows:
        raise InvalidConfig("nothing to plan: add a [review] table with guardrails, or [[policies]] to compare "
                            "with the baseline")
    return pl.DataFrame(rows, schema=CHECK_SCHEMA)


def plan(config: RunConfig, data: str | Path | None = None, *, execution: Execution = Execution(),
         days: Sequence[float] | None = None, shares: Sequence[float] | None = None,
         config_source: str = "config") -> PlanResult:
    """Size a test: for each guardrail, the interval a log of each (days, exploration share) would give.

    `days` and `shares` are the grid (defaults: `DEFAULT_DAYS`, `DEFAULT_SHARES`, plus the current log's);
    shares must lie in (0, 1]. Bad data or a log without exploration raises `InvalidData`.

    Example::

        result = plan(load_config(Path("configs/block_risky.toml")), "data/transactions",
                      execution=Execution(engine="local"))
        result.smallest   # per guardrail: days, exploration, half_width, monthly_cost
    """
    wanted = checks(config)
    path = resolve_data(config, data)
    keep = set(wanted["policy"].to_list()) | {config.baseline.policy}
    evaluated = derive(config, {"policies": [p.model_dump() for p in config.policies if p.name in keep]},
                       config_source)
    result = run(evaluated, path, execution=execution, changes=False)
    log = log_shape(result, evaluated)
    current = current_state(wanted, result, evaluated)
    cost = exploration_cost(result, log)
    grid_days = sorted({float(d) for d in (days or DEFAULT_DAYS)} | {round(log.days, 1)})
    grid_shares = sorted({float(s) for s in (shares or DEFAULT_SHARES)} | {round(log.exploration, 4)})
    per_share = None if cost["monthly"] is None else cost["monthly"] / log.exploration
    grid = plan_grid(current, log, grid_days, grid_shares, per_share)
    summary = run_summary(result, evaluated, path, config_source) | {
        "plan": {"days": log.days, "exploration": log.exploration, "actions": log.actions, "rows": log.rows,
                 "rows_per_month": log.rows_per_month, "exploration_cost_per_month": cost,
                 "grid": {"days": grid_days, "exploration": grid_shares}}}
    return PlanResult(grid=grid, smallest=smallest_designs(grid, current, log, per_share), current=current, log=log, cost=cost, run=result,
                      summary=summary)


def log_shape(result: RunResult, config: RunConfig) -> LogShape:
    """The current log's span (created_at), exploration share, actions and rows.

    The share is the mean over rows of K/(K − 1) · (1 − max_a logging_prob_a): exactly e for a logging
    policy that explores a share e uniformly over K actions (SPEC §2), 0 on rows it does not explore.
    """
    summary, actions = result.data, config.data.actions
    if summary is None or summary.created_at_min is None or summary.created_at_max is None:
        raise InvalidData("the planner needs created_at to know how many days the log spans")
    columns = [f"logging_prob_{a}" for a in actions]
    scan = scan_dataset(result.source or config.data.path or "", config.data.schema())
    missing = [c for c in columns if c not in scan.collect_schema().names()]
    if missing:
        raise InvalidData(f"the planner needs the logging policy's distribution: {', '.join(missing)} missing; "
                          "log them, or declare [data.logging_policy] with its exploration (docs/data.md)")
    k = len(actions)
    share = scan.select((k / (k - 1) * (1 - pl.max_horizontal(columns))).mean()).collect().item()
    if share is None or share <= 0:
        raise InvalidData("the log has no exploration (every logging_prob is 0 or 1): nothing to size a test from")
    days = (summary.created_at_max - summary.created_at_min).total_seconds() / 86_400
    return LogShape(days=max(days, 1 / 24), exploration=float(share), actions=k, rows=summary.rows)


def current_state(wanted: pl.DataFrame, result: RunResult, config: RunConfig) -> pl.DataFrame:
    """Per guardrail: the current delta, its interval, rows, the variance split and whether it can be sized."""
    overall = result.results.filter(pl.col("segment") == ALL).select(
        "policy", "metric", "delta", "baseline", "delta_se", pl.col("delta_ci_low").alias("ci_low"),
        pl.col("delta_ci_high").alias("ci_high"), "rows", "delta_ess", pl.col("flag").fill_null(""))
    sources = pl.concat([
        delta_variance_sources(result.stats, result.plan, config.estimation, policy,
                               sorted(set(wanted.filter(pl.col("policy") == policy)["metric"].to_list())))
        .filter(pl.col("segment") == ALL).drop("segment").with_columns(pl.lit(policy).alias("policy"))
        for policy in wanted["policy"].unique(maintain_order=True).to_list()])
    joined = wanted.join(overall, on=["policy", "metric"], how="left").join(sources, on=["policy", "metric"],
                                                                            how="left")
    total = pl.col("delta_se") ** 2
    split = pl.col("hajek_parts") > 0
    limit = pl.when(pl.col("relative")).then(pl.col("limit_value") * pl.col("baseline").abs()) \
        .otherwise(pl.col("limit_value"))
    facing = pl.when(pl.col("delta") < pl.col("limit")).then(pl.col("ci_high") - pl.col("delta")) \
        .otherwise(pl.col("delta") - pl.col("ci_low"))
    return joined.with_columns(limit.alias("limit"), pl.lit(config.estimation.min_ess).alias("min_ess")).with_columns(
        facing.alias("half_width"), (pl.col("delta") - pl.col("limit")).abs().alias("distance"),
        pl.col("metric").is_in([r.name for r in config.values().ratios]).alias("ratio"),
        pl.when(split).then(pl.col("var_explored")).otherwise(total).alias("var_explored"),
        pl.when(split).then(pl.col("var_usual")).otherwise(0.0).alias("var_usual"),
        pl.when(split).then((total - pl.col("var_explored") - pl.col("var_usual")).clip(0.0))
        .otherwise(0.0).alias("var_rest"),
        (~pl.col("flag").str.contains(f"{FEW_EVENTS}|{LOW_ESS}") & pl.col("delta_se").is_not_null()).alias("reliable"),
        _note(split, result.plan.baseline).alias("note"),
    ).with_columns((pl.col("var_explored") / total).fill_nan(None).alias("explored_share"))


def _note(split: pl.Expr, baseline: str) -> pl.Expr:
    """Why a guardrail's sizing is approximate or impossible, for the reader ("" when it is not)."""
    notes = [
        pl.when(pl.col("delta_se").is_null()).then(pl.format("no delta ({}): cannot size", pl.col("flag"))),
        pl.when(pl.col("flag").str.contains(FEW_EVENTS)).then(pl.lit(
            "few_events: the current data cannot size it reliably; sized with the rare-event floor's variance")),
        pl.when(pl.col("flag").str.contains(LOW_ESS)).then(pl.lit("low_ess: sized from few explored rows")),
        pl.when(~split & (pl.col("delta_se") > 0)).then(pl.lit(
            "no stratified split: the whole variance scaled as explored rows")),
        pl.when(pl.col("scope") == "every_segment").then(pl.lit("sized overall (ALL); each segment needs more")),
    ]
    if baseline != PRODUCTION:
        notes.append(pl.lit(f"baseline {baseline}, not production: every Hájek part scaled as explored"))
    return pl.concat_str(notes, separator="; ", ignore_nulls=True).fill_null("")


def exploration_cost(result: RunResult, log: LogShape) -> dict[str, float | None]:
    """Net value the current exploration gives up per month (positive: a cost), with its interval.

    The logging policy's paired net_value delta against production over the period, per row of net_value's
    population, times the log's rows per month. None without production as the baseline. Exploring a
    share e instead costs e/e0 times this: the logging policy is (1 − e)·production + e·uniform, so its
    value moves linearly in e.
    """
    row = result.results.filter((pl.col("segment") == ALL) & (pl.col("policy") == LOGGED)
                                & (pl.col("metric") == "net_value"))
    if result.plan.baseline != PRODUCTION or row.is_empty() or row["delta"][0] is None or not row["rows"][0]:
        return {"monthly": None, "monthly_low": None, "monthly_high": None}
    r = row.row(0, named=True)
    per_month = log.rows_per_month / r["rows"]
    return {"monthly": -r["delta"] * per_month, "monthly_low": -r["delta_ci_high"] * per_month,
            "monthly_high": -r["delta_ci_low"] * per_month}
