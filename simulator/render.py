"""Rich renderables of results, for the CLI and notebooks (building them prints nothing)."""

from __future__ import annotations

import math

import polars as pl
from rich.table import Table

KEY_METRICS: tuple[str, ...] = (
    "auth_rate",
    "block_rate",
    "authorized_volume",
    "revenue",
    "cost",
    "fraud_loss",
    "net_value",
    "fraud_rate_bps",
    "block_precision",
    "block_recall",
)


def number(value: float | None) -> str:
    """A compact human number: rates to 4 significant digits, money with thousands separators."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def _interval(low: float | None, high: float | None) -> str:
    return f"[{number(low)}, {number(high)}]"


def overall_table(results: pl.DataFrame, baseline: str, metrics: tuple[str, ...] = KEY_METRICS) -> Table:
    """Overall (segment ALL) estimate and paired delta against the baseline, per policy and key metric."""
    table = Table(title=f"overall, against baseline '{baseline}'", title_justify="left")
    for column, justify in (("policy", "left"), ("metric", "left"), ("estimate", "right"), ("baseline", "right"),
                            ("delta", "right"), ("delta interval", "right"), ("flag", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    overall = results.filter((pl.col("segment") == "ALL") & (pl.col("policy") != baseline))
    order = {m: i for i, m in enumerate(metrics)}
    rows = overall.filter(pl.col("metric").is_in(list(metrics))).with_columns(
        pl.col("metric").replace_strict(order, return_dtype=pl.Int32).alias("_order")
    ).sort(["policy", "_order"], maintain_order=True)
    for r in rows.iter_rows(named=True):
        significant = r["delta_ci_low"] is not None and (r["delta_ci_low"] > 0 or r["delta_ci_high"] < 0)
        style = "bold" if significant else ""
        table.add_row(r["policy"], r["metric"], number(r["estimate"]), number(r["baseline"]),
                      number(r["delta"]), _interval(r["delta_ci_low"], r["delta_ci_high"]), r["flag"] or "",
                      style=style)
    return table


def guardrail_table(checks: pl.DataFrame) -> Table:
    """Per guardrail of a review: how many segment checks ended in each outcome (simulator.review)."""
    table = Table(title="guardrails", title_justify="left")
    outcomes = ("fail", "inconclusive", "insufficient_data", "pass")
    for column in ("guardrail", "scope", *outcomes):
        table.add_column(column.replace("_", " "), justify="left" if column in ("guardrail", "scope") else "right")
    counts = checks.group_by("guardrail", "name", "scope", maintain_order=True).agg(
        [(pl.col("outcome") == o).sum().alias(o) for o in outcomes]).sort("guardrail")
    for r in counts.iter_rows(named=True):
        style = "bold red" if r["fail"] else ("yellow" if r["inconclusive"] else "")
        table.add_row(r["name"], r["scope"], *(str(r[o]) for o in outcomes), style=style)
    return table
