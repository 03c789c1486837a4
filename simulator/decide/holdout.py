"""A recommendation reported on rows that did not choose it (SPEC §9: honest sweep recommendations).

The sweep chooses a point on one part of the log (`simulator.plan.holdout`);
this module replaces the chosen point's numbers by those of the other part:
estimate, interval, baseline, delta and its interval, and checks the
objective's constraints there. Sum metrics (totals over the period) are scaled
to the whole log by the ratio of the rows each metric covers (fraud metrics
cover mature rows only), so they read like the rest of the sweep; ratios need
no scaling. The in-sample numbers stay in `holdout["in_sample"]` for comparison.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from collections.abc import Iterable
from typing import Any

import polars as pl

from segments.labels import ALL
from simulator.config_tables import Objective
from simulator.decide.objective import Recommendation, choose_from, feasibility
from simulator.report.numbers import number, signed_number

SCALED = ("estimate", "se", "ci_low", "ci_high", "baseline", "delta", "delta_se", "delta_ci_low", "delta_ci_high")


def scale_to_whole(report: pl.DataFrame, whole_rows: pl.DataFrame, sums: Iterable[str]) -> pl.DataFrame:
    """Report-part results with the sum metrics `sums` scaled by (rows in the whole log) / (rows in the report part).

    `whole_rows` has `segment`, `metric` and `whole_rows`: each metric's rows in the whole log.
    """
    factor = (pl.col("whole_rows") / pl.col("rows")).fill_nan(None)
    scaled = report.join(whole_rows, on=["segment", "metric"], how="left").with_columns(
        pl.when(pl.col("metric").is_in(list(sums)) & (pl.col("rows") > 0)).then(factor).otherwise(1.0).alias("_f"))
    return scaled.with_columns([(pl.col(c) * pl.col("_f")).alias(c) for c in SCALED]).drop("whole_rows", "_f")


def held_out(chosen: Recommendation, report: pl.DataFrame, objective: Objective, split: dict[str, Any]) -> Recommendation:
    """`chosen` (picked on the selection rows) with its numbers and constraint checks from the report rows.

    `report` holds the chosen point's results on the report rows, already scaled
    (`scale_to_whole`), with the sweep table's `point`, `challenge_above` and
    `block_above` columns. `split` is `Holdout.describe(...)`.
    """
    points, tightest = feasibility(report, objective)
    holds = bool(points["feasible"][0]) if points.height else False
    row = report.filter((pl.col("segment") == ALL) & (pl.col("metric") == objective.metric))
    if row.is_empty():
        raise ValueError(f"no {objective.metric} row for segment ALL in the report part")  # the engine reports every metric
    r = row.row(0, named=True)
    in_sample = {k: getattr(chosen, k) for k in ("estimate", "ci_low", "ci_high", "baseline", "delta", "delta_ci_low",
                                                  "delta_ci_high")}
    reported = {k: r[k] for k in in_sample}
    chosen_on = split["selected_on"]
    lines = [
        f"chosen on {chosen_on['rows']:,} rows where {chosen_on['rule']} (the numbers above are totals over those rows)",
        f"reported on rows that did not choose it ({_rows(split)}): {objective.metric} = {number(r['estimate'])} "
        f"[{number(r['ci_low'])}, {number(r['ci_high'])}], delta {signed_number(r['delta'])} "
        f"[{signed_number(r['delta_ci_low'])}, {signed_number(r['delta_ci_high'])}] (scaled to the whole log)",
        "the constraints hold on those rows" if holds else
        "the constraints do NOT all hold on those rows: " + "; ".join(
            f"{b['metric']} in {b['segment']} at {number(b['value'])} against {number(b['limit'])}"
            for b in tightest.filter(pl.col("slack") < 0).head(3).iter_rows(named=True)),
        f"on the rows that chose it (optimistic, not scaled): delta {signed_number(chosen.delta)} "
        f"[{signed_number(chosen.delta_ci_low)}, {signed_number(chosen.delta_ci_high)}]",
    ]
    details = dict(split) | {"constraints_hold": holds, "in_sample": in_sample,
                             "in_sample_binding": [asdict(b) for b in chosen.binding]}
    # the binding constraints as the reporting rows see them (when they hold there; otherwise the reasons say where not)
    binding = choose_from(points, tightest, objective).binding if holds else chosen.binding
    return replace(chosen, **reported, binding=binding, holdout=details, reason=[*chosen.reason, *lines])


def _rows(split: dict[str, Any]) -> str:
    reported = split["reported_on"]
    return f"{split['method']} split, {reported['rows']:,} rows where {reported['rule']}"
