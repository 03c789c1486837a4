"""Rich renderables of results, for the CLI and notebooks (building them prints nothing)."""

from __future__ import annotations

import polars as pl
from rich.table import Table

from segments.labels import ALL
from simulator.report.numbers import compact, table_number
from simulator.schema import LOGGED, PRODUCTION

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


def _interval(low: float | None, high: float | None) -> str:
    return f"[{table_number(low)}, {table_number(high)}]"


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
        table.add_row(r["policy"], r["metric"], table_number(r["estimate"]), table_number(r["baseline"]),
                      table_number(r["delta"]), _interval(r["delta_ci_low"], r["delta_ci_high"]), r["flag"] or "",
                      style=style)
    return table


def exploration_cost(results: pl.DataFrame, baseline: str) -> str | None:
    """One line: what the logging policy's exploration costs in net value (logged against production), if known."""
    if baseline != PRODUCTION:
        return None
    row = results.filter((pl.col("segment") == ALL) & (pl.col("policy") == LOGGED) & (pl.col("metric") == "net_value"))
    if row.is_empty() or row["delta"][0] is None:
        return None
    r = row.row(0, named=True)
    return (f"exploration cost: the logging policy's exploration changed net_value by {table_number(r['delta'])} "
            f"{_interval(r['delta_ci_low'], r['delta_ci_high'])} over the period, against production")


TOP_METRICS: tuple[str, ...] = ("net_value", "fraud_rate_bps", "auth_rate", "block_rate")


def top_points_table(table: pl.DataFrame, metric: str = "net_value", *, rows: int = 10, maximize: bool = True,
                     feasible: set[int] | None = None, recommended: int | None = None,
                     metrics: tuple[str, ...] = TOP_METRICS) -> Table:
    """The best grid points of a sweep by one metric (segment ALL): parameters, estimates and paired deltas."""
    overall = table.filter(pl.col("segment") == "ALL")
    parameters = [c for c in table.columns[: table.columns.index("policy")]
                  if c != "point" and overall[c].null_count() < overall.height]
    ranking = overall.filter((pl.col("metric") == metric) & pl.col("estimate").is_not_null())
    if feasible is not None:
        ranking = ranking.filter(pl.col("point").is_in(sorted(feasible)))
    best = ranking.sort(["estimate", "point"], descending=[maximize, False]).head(rows)["point"].to_list()
    chosen = overall.filter(pl.col("point").is_in(best) & pl.col("metric").is_in(list(metrics)))
    title = f"top {len(best)} grid points by {metric}, overall{' (meeting the objective)' if feasible is not None else ''}"
    out = Table(title=title, title_justify="left", caption="estimate, then the paired delta against the baseline "
                "and its interval; the recommended point in bold", caption_justify="left")
    for name in ("point", *parameters):
        out.add_column(name, justify="right")
    for name in metrics:
        out.add_column(name, justify="right")
    for point in best:
        cells = {r["metric"]: r for r in chosen.filter(pl.col("point") == point).iter_rows(named=True)}
        first = next(iter(cells.values()))
        values = [str(point)] + [compact(first[p]) if isinstance(first[p], float | int) else str(first[p])
                                 for p in parameters]
        for name in metrics:
            r = cells.get(name)
            values.append("—" if r is None else f"{compact(r['estimate'])}\n{compact(r['delta'], True)} "
                          f"[{compact(r['delta_ci_low'], True)}, {compact(r['delta_ci_high'], True)}]")
        out.add_row(*values, style="bold" if point == recommended else "")
    return out


def guardrail_table(checks: pl.DataFrame) -> Table:
    """Per guardrail of a review: how many segment checks ended in each outcome (simulator.workflows.review)."""
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
