"""The exploration planner's outputs: plan.parquet, plan.md, plan.png, summary.json, and the CLI's table.

`write_plan` writes the folder whole (`simulator.report.folders`); `plan_table` is the rich table the CLI
prints (80 columns); `plan_figure` draws the predicted half-width against days for a few exploration
shares, with each guardrail's distance to its limit as the line to get under.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from rich import box
from rich.console import Group
from rich.table import Table

from simulator.report.files import write_bytes, write_json, write_parquet, write_text
from simulator.report.folders import staged_folder
from simulator.report.numbers import compact, format_interval, format_value, glance
from simulator.report.plots import figure_png

if TYPE_CHECKING:  # matplotlib loads when the figure is drawn
    from matplotlib.figure import Figure

    from simulator.workflows.plan import PlanResult

PLOTTED_SHARES = 4  # curves per panel


@dataclass(frozen=True, slots=True)
class PlanFiles:
    """Where `write_plan` put each file."""

    parquet: Path
    markdown: Path
    figure: Path
    summary: Path


def write_plan(result: PlanResult, out_dir: Path, *, config_source: str = "config", overwrite: bool = False) -> PlanFiles:
    """plan.parquet (every guardrail × design), plan.md, plan.png and summary.json, in `out_dir` written whole."""
    names = PlanFiles(parquet=Path("plan.parquet"), markdown=Path("plan.md"), figure=Path("plan.png"),
                      summary=Path("summary.json"))
    with staged_folder(out_dir, overwrite=overwrite) as folder:
        write_parquet(result.grid, folder / names.parquet)
        write_bytes(figure_png(plan_figure(result)), folder / names.figure)
        write_text(plan_markdown(result, config_source), folder / names.markdown)
        write_json(result.summary, folder / names.summary)
    return PlanFiles(*(out_dir / name for name in (names.parquet, names.markdown, names.figure, names.summary)))


def design_text(days: float | None, share: float | None) -> str:
    """`30 d @ 5 %`, or `none in grid` when no design of the grid is conclusive."""
    if days is None or share is None:
        return "none in grid"
    return f"{days:g} d @ {100 * share:.3g} %"


def _days(value: float | None) -> str:
    """Days needed, compact: `41 d`, `12.4k d`, `—`."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{compact(math.ceil(value))} d"


def _width(metric: str, value: float | None) -> str:
    """A distance in the metric's delta units, unsigned (`4.06k`, `0.131pp`)."""
    return glance(metric, value, delta=True).lstrip("+")


def _overview(result: PlanResult) -> str:
    """One sentence on the log the plan scales and what its exploration costs."""
    log, cost = result.log, result.cost
    text = (f"log: {log.rows:,} rows over {log.days:.0f} days ({compact(log.rows_per_month)} a month), "
            f"exploration {100 * log.exploration:.3g} %")
    if cost["monthly"] is None:
        return text + "; its cost is unknown (needs production as the baseline)"
    return (text + f", which costs {compact(cost['monthly'])} net value a month "
            f"[{compact(cost['monthly_low'])}, {compact(cost['monthly_high'])}]")


def plan_table(result: PlanResult) -> Group:
    """Per policy: each guardrail's delta now, the half-width facing its limit, the smallest conclusive design
    and its monthly cost. Fits 80 columns (no outer edge; cells fold rather than cut)."""
    rows = result.current.join(result.smallest.select("policy", "guardrail", "name", "days", "exploration",
                                                      "monthly_cost"),
                               on=["policy", "guardrail", "name"], how="left")
    tables: list[Any] = []
    for policy in rows["policy"].unique(maintain_order=True).to_list():
        table = Table(title=f"{policy} against {result.run.plan.baseline}: smallest conclusive design",
                      title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                      collapse_padding=True)
        for name, justify in (("guardrail", "left"), ("delta", "right"), ("±now", "right"),
                              ("need <", "right"), ("design", "right"), ("cost/mo", "right")):
            table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for r in rows.filter(pl.col("policy") == policy).iter_rows(named=True):
            metric = r["metric"]
            table.add_row(r["name"], glance(metric, r["delta"], delta=True), _width(metric, r["half_width"]),
                          _width(metric, r["distance"]),
                          design_text(r["days"], r["exploration"]) + ("" if r["reliable"] else "*"),
                          compact(r["monthly_cost"]))
        tables.append(table)
    notes = [f"* {r['name']}: {r['note']}" for r in rows.filter(~pl.col("reliable")).iter_rows(named=True)]
    tables += [_overview(result), "±now: the interval's side facing the limit; need <: the distance to it",
               *notes]
    return Group(*tables)


def plan_markdown(result: PlanResult, config_source: str = "config") -> str:
    """plan.md: the smallest design per guardrail with its cost, the model in brief, and the plot."""
    rows = result.current.join(result.smallest.select("policy", "guardrail", "name", "days", "exploration",
                                                      "half_width", "monthly_cost", "test_cost", "expected"),
                               on=["policy", "guardrail", "name"], how="left", suffix="_design")
    shares = sorted(set(result.grid["exploration"].to_list()))
    today = min(shares, key=lambda share: abs(share - result.log.exploration)) if shares else None
    needed = result.grid.filter(pl.col("exploration") == today).group_by(
        "policy", "guardrail", "name").agg(pl.col("days_needed").first())
    rows = rows.join(needed, on=["policy", "guardrail", "name"], how="left")
    lines = [f"# Exploration plan: {config_source}", "", _overview(result) + ".", "",
             "| policy | guardrail | delta now | limit | from explored rows | smallest conclusive design | "
             "half-width there | would | cost / month | test cost | days at today's share | note |",
             "| --- | --- | --- | --- | ---: | --- | ---: | --- | ---: | ---: | ---: | --- |"]
    for r in rows.iter_rows(named=True):
        metric = r["metric"]
        lines.append(
            f"| {r['policy']} | {r['name']} | {format_value(metric, r['delta'], delta=True)} "
            f"{format_interval(metric, r['ci_low'], r['ci_high'], delta=True)} | "
            f"{format_value(metric, r['limit'], delta=True)} | {_share(r['explored_share'])} | "
            f"{design_text(r['days'], r['exploration'])} | {format_value(metric, r['half_width_design'], delta=True).lstrip('+')} | "
            f"{r['expected'] or '—'} | {format_value('net_value', r['monthly_cost'])} | "
            f"{format_value('net_value', r['test_cost'])} | {_days(r['days_needed'])} | {r['note'] or ''} |")
    lines += ["", "Smallest design: the fewest days, then the lowest exploration share, of the grid "
              f"(days {', '.join(f'{d:g}' for d in result.summary['plan']['grid']['days'])}; shares "
              f"{', '.join(f'{s:g}' for s in result.summary['plan']['grid']['exploration'])}) whose predicted "
              "interval no longer reaches the limit. *From explored rows*: the share of today's variance that "
              "more exploration shrinks; the rest shrinks with days only. Sum metrics are totals over the log, "
              "so their delta grows with its days. Model and assumptions: docs/review.md, "
              "\"Before you explore: sizing a test\".", "", "![half-width against days](plan.png)", ""]
    return "\n".join(lines)


def _share(value: float | None) -> str:
    """A share in %, `—` when missing."""
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.0f} %"


def plotted_shares(shares: list[float], current: float) -> list[float]:
    """At most `PLOTTED_SHARES` shares: the smallest, the one nearest today's, the largest, and one between."""
    if len(shares) <= PLOTTED_SHARES:
        return shares
    nearest = min(shares, key=lambda s: abs(s - current))
    chosen = {shares[0], nearest, shares[-1], shares[len(shares) // 2]}
    return sorted(chosen)


def plan_figure(result: PlanResult) -> Figure:
    """One panel per guardrail: predicted half-width against days (log scale) for a few exploration shares,
    and the distance between the predicted delta and the limit (dashed): below it, the design is conclusive."""
    from matplotlib.figure import Figure

    grid = result.grid.filter(pl.col("half_width").is_not_null())
    names = result.current.select("policy", "name", "reliable").rows()
    columns = min(len(names), 3) or 1
    panels = math.ceil(len(names) / columns) or 1
    height = 3.6 * panels + 0.5
    figure = Figure(figsize=(4.6 * columns, height))
    # fixed margins in inches (room for the suptitle and the axis labels), not a layout engine
    figure.subplots_adjust(left=0.9 / (4.6 * columns), right=0.98, top=1 - 0.75 / height, bottom=0.6 / height,
                           wspace=0.35, hspace=0.55)
    shares = plotted_shares(sorted(set(grid["exploration"].to_list())), result.log.exploration)
    for index, (policy, name, reliable) in enumerate(names):
        axes = figure.add_subplot(panels, columns, index + 1)
        rows = grid.filter((pl.col("policy") == policy) & (pl.col("name") == name)).sort("days")
        for share in shares:
            curve = rows.filter(pl.col("exploration") == share)
            axes.plot(curve["days"].to_numpy(), curve["half_width"].to_numpy(), marker="o", markersize=3,
                      label=f"exploration {100 * share:.3g} %")
        distance = rows.filter(pl.col("exploration") == shares[0]) if shares else rows
        axes.plot(distance["days"].to_numpy(), distance["distance"].to_numpy(), color="black", linestyle="--",
                  label="distance to the limit")
        axes.set_xscale("log")
        if rows.height and np.nanmin(rows["half_width"].to_numpy()) > 0:
            axes.set_yscale("log")
        axes.set_xlabel("days of traffic")
        axes.set_ylabel("half-width facing the limit")
        axes.set_title(f"{name}{'' if reliable else ' (few events: floor)'}", fontsize=9)
        axes.grid(alpha=0.3, which="both")
        axes.legend(fontsize=7)
    figure.suptitle(f"predicted interval against days ({result.run.plan.baseline} baseline)", fontsize=10)
    return figure
