"""The decision-change table the CLI prints after a run: segment ALL, one row per policy and transition.

Kept narrow on purpose (it fits 80 columns): the transition, the logged rows and
volume that change decision, and the net value they carry with its interval.
Every other metric and segment is in `changes.parquet` (docs/cli.md).
"""

from __future__ import annotations

import polars as pl
from rich import box
from rich.table import Table

from segments.labels import ALL
from simulator.report.numbers import compact

ARROW = "→"


def changes_table(changes: pl.DataFrame, baseline: str, metric: str = "net_value") -> Table:
    """Per policy and transition (segment ALL): rows, volume, and `metric`'s delta with its interval and flag.

    A transition whose delta is not split by the estimator shows "—"; `interval` in the file says why.
    """
    rows = changes.filter((pl.col("segment") == ALL) & (pl.col("metric") == metric))
    table = Table(title=f"decision changes against '{baseline}' (ALL)", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True, caption_justify="left")
    for column, justify, wrap in (("policy", "left", True), ("change", "left", False), ("rows", "right", False),
                                  ("volume", "right", False), (f"Δ {metric}", "right", False),
                                  ("interval", "right", False), ("flag", "left", True)):
        table.add_column(column, justify=justify, overflow="fold", no_wrap=not wrap)  # type: ignore[arg-type]
    reasons = False
    for r in rows.iter_rows(named=True):
        estimated = not r["interval"].startswith("not estimated")
        reasons = reasons or not estimated
        interval = f"[{compact(r['delta_ci_low'], True)}, {compact(r['delta_ci_high'], True)}]" if estimated else ""
        significant = estimated and r["delta_ci_low"] is not None and (r["delta_ci_low"] > 0 or r["delta_ci_high"] < 0)
        table.add_row(r["policy"], f"{r['from_action']}{ARROW}{r['to_action']}", _count(r["rows"]),
                      compact(r["volume"]), compact(r["delta"], True) if estimated else "—", interval,
                      r["flag"] or "", style="bold" if significant else "")
    notes = ["—: delta not split by transition (why: `interval` in changes.parquet)"] if reasons else []
    table.caption = "\n".join(["rows, volume: logged payments that change decision", *notes])
    return table


def _count(rows: float) -> str:
    """Rows as a whole number when they are one (deterministic policies), else compact (expected counts)."""
    return f"{rows:,.0f}" if float(rows).is_integer() else compact(rows)
