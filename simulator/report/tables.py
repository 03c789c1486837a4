"""Rich renderables of results, for the CLI and notebooks (building them prints nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
from rich import box
from rich.console import Group
from rich.table import Table

from segments.labels import ALL, PART_SEPARATOR, VALUE_SEPARATOR, segment_sort_key
from segments.plan import SegmentPlan
from simulator.errors import UnknownName
from simulator.estimate.results import FEW_EVENTS, LOW_ESS, NO_SUPPORT, UNIDENTIFIED
from simulator.report.numbers import compact, glance, glance_interval, table_number
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


SEGMENT_METRICS: tuple[str, ...] = ("net_value", "fraud_rate_bps", "auth_rate", "block_rate")

# One line per flag, for the legend under the CLI's tables (docs/concepts.md, "How to read a flag").
# Each fits one 80-column line with its name.
FLAG_MEANINGS: dict[str, str] = {
    NO_SUPPORT: "actions the logging policy never explored here: no number shown",
    UNIDENTIFIED: "the data cannot identify it (e.g. 0/0): no number shown",
    LOW_ESS: "fewer effective rows than min_ess behind it: indicative only",
    FEW_EVENTS: "few explored fraud events: the interval is wide on purpose",
}
NOTE = "bold: the delta's interval excludes 0; rates in %, their deltas in pp"


def _table(title: str, columns: tuple[tuple[str, str], ...]) -> Table:
    """A compact results table: no outer edge, so that the overall table fits 80 columns.

    Cells fold rather than end in "…": a number is never shown cut. Numbers
    and metric names do not wrap; only the flag column does (flags are joined
    by spaces, so a long combination takes two lines).
    """
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  collapse_padding=True)
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold", no_wrap=name != "flag")  # type: ignore[arg-type]
    return table


def _cells(metric: str, row: dict[str, Any]) -> tuple[str, str, str, str]:
    """Estimate, delta, the delta's interval and the flag of one result row, as the tables show them."""
    return (glance(metric, row["estimate"]), glance(metric, row["delta"], delta=True),
            glance_interval(metric, row["delta_ci_low"], row["delta_ci_high"]), " ".join(flags(row["flag"])))


def _style(row: dict[str, Any]) -> str:
    """Bold when the delta's interval excludes 0 (the data says which way the policy moves the metric)."""
    low, high = row["delta_ci_low"], row["delta_ci_high"]
    return "bold" if low is not None and high is not None and (low > 0 or high < 0) else ""


def flags(text: str | None) -> list[str]:
    """The flags of a `flag` cell (`low_ess;few_events` → both)."""
    return [flag for flag in (text or "").split(";") if flag]


def compared_policies(results: pl.DataFrame, baseline: str) -> list[str]:
    """Every policy compared with the baseline, in the results' order; the logging policy (context) last."""
    names = results.filter(pl.col("policy") != baseline)["policy"].unique(maintain_order=True).to_list()
    return sorted(names, key=lambda name: name == LOGGED)


def overall_table(results: pl.DataFrame, baseline: str, metrics: tuple[str, ...] = KEY_METRICS) -> Group:
    """Per policy, the overall (segment ALL) estimate, paired delta against the baseline and its interval, and flag.

    One table per policy, titled with the policy and its rows, so that a long
    policy name costs no column: at 80 columns no header or number is cut.
    """
    overall = results.filter((pl.col("segment") == ALL) & pl.col("metric").is_in(list(metrics)))
    order = {m: i for i, m in enumerate(metrics)}
    overall = overall.sort(pl.col("metric").replace_strict(order, return_dtype=pl.Int32), maintain_order=True)
    tables = []
    for policy in compared_policies(overall, baseline):
        rows = overall.filter(pl.col("policy") == policy)
        attempts = results.filter((pl.col("segment") == ALL) & (pl.col("policy") == policy))["rows"].max()
        table = _table(f"{policy} against {baseline}, overall ({compact(attempts)} rows)",
                       (("metric", "left"), ("estimate", "right"), ("delta", "right"), ("delta interval", "right"),
                        ("flag", "left")))
        for r in rows.iter_rows(named=True):
            table.add_row(r["metric"], *_cells(r["metric"], r), style=_style(r))
        tables.append(table)
    return Group(*tables)


def segmentations(results: pl.DataFrame) -> list[str]:
    """The segmentations of a results table besides ALL (`card_country`, `card_country|card_brand`), in order."""
    names = results["segmentation"].unique(maintain_order=True).to_list()
    return [name for name in names if name != ALL]


def segment_table(results: pl.DataFrame, baseline: str, segmentation: str, plan: SegmentPlan,
                  metrics: tuple[str, ...] = SEGMENT_METRICS) -> Group:
    """Per policy and metric, every segment of one segmentation: rows, ess, estimate, delta, interval, flag.

    `ess` is the smaller of the estimate's and the delta's (`_behind`).

    The segment column shows the values only (`FR|visa`; the title names the
    segmentation), so that a table fits 80 columns. Segments are listed
    in `plan`'s order (`segment_sort_key`: bands in edge order, windows in
    time order). Raises `UnknownName` for a segmentation the results lack.
    """
    known = segmentations(results)
    if segmentation not in known:
        raise UnknownName("segmentation", segmentation, known)
    chosen = results.filter(pl.col("segmentation") == segmentation)
    order = sorted(chosen["segment"].unique().to_list(), key=lambda label: segment_sort_key(label, plan))
    chosen = chosen.sort(pl.col("segment").replace_strict(order, range(len(order)), return_dtype=pl.Int32),
                         maintain_order=True)
    tables = []
    for policy in compared_policies(chosen, baseline):
        for metric in metrics:
            rows = chosen.filter((pl.col("policy") == policy) & (pl.col("metric") == metric))
            if rows.is_empty():
                continue
            table = _table(f"{policy} against {baseline}: {metric} by {segmentation}",
                           (("segment", "left"), ("rows", "right"), ("ess", "right"), ("estimate", "right"),
                            ("delta", "right"), ("delta interval", "right"), ("flag", "left")))
            for r in rows.with_columns(_behind().alias("ess")).iter_rows(named=True):
                table.add_row(segment_values(r["segment"]), compact(r["rows"]), compact(r["ess"]), *_cells(metric, r),
                              style=_style(r))
            tables.append(table)
    return Group(*tables)


def _behind() -> pl.Expr:
    """The effective rows a row's numbers rest on: the smaller of its `ess` and its delta's `delta_ess`.

    What `low_ess` compares with `min_ess`, so a flagged row shows why (a
    segment can have a large `ess` and few explored rows where the policies differ).
    """
    return pl.min_horizontal(pl.col("ess").fill_nan(None), pl.col("delta_ess").fill_nan(None))


def segment_values(label: str) -> str:
    """A segment label without its column names: `card_country=FR|card_brand=visa` → `FR|visa`."""
    return PART_SEPARATOR.join(part.partition(VALUE_SEPARATOR)[2] for part in label.split(PART_SEPARATOR))


def shown_rows(results: pl.DataFrame, baseline: str, chosen: Sequence[str] = ()) -> pl.DataFrame:
    """The result rows `overall_table` and `segment_table` of each segmentation in `chosen` show."""
    overall = (pl.col("segment") == ALL) & pl.col("metric").is_in(list(KEY_METRICS))
    segments = pl.col("segmentation").is_in(list(chosen)) & pl.col("metric").is_in(list(SEGMENT_METRICS))
    return results.filter((pl.col("policy") != baseline) & (overall | segments))


def segmentation_name(text: str) -> str:
    """A segmentation as results name it, from the CLI's spelling: `card_country,card_brand` → `card_country|card_brand`."""
    return PART_SEPARATOR.join(part.strip() for part in text.replace(",", PART_SEPARATOR).split(PART_SEPARATOR))


def flag_legend(shown: pl.DataFrame) -> list[str]:
    """One line per flag that appears in `shown` (result rows), in the order of `FLAG_MEANINGS`."""
    present = {flag for text in shown["flag"].unique().to_list() for flag in flags(text)}
    return [f"{flag}: {meaning}" for flag, meaning in FLAG_MEANINGS.items() if flag in present]


def exploration_cost(results: pl.DataFrame, baseline: str) -> str | None:
    """One line: what the logging policy's exploration costs in net value (logged against production), if known."""
    if baseline != PRODUCTION:
        return None
    row = results.filter((pl.col("segment") == ALL) & (pl.col("policy") == LOGGED) & (pl.col("metric") == "net_value"))
    if row.is_empty() or row["delta"][0] is None:
        return None
    r = row.row(0, named=True)
    return (f"exploration cost: the logging policy's exploration changed net_value by {table_number(r['delta'])} "
            f"[{table_number(r['delta_ci_low'])}, {table_number(r['delta_ci_high'])}] over the period, "
            "against production")


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


def candidates_table(ranking: pl.DataFrame, policies: dict[str, str]) -> Table:
    """Several reviewed candidates, ranked (simulator.decide.ranking.RANKING_SCHEMA): verdict, policy, rank bound.

    Names, verdicts and bounds never wrap or truncate; the policy line wraps, so the table fits 80 columns.
    """
    metric = ranking["rank_metric"][0] if ranking.height else "net_value"
    maximize = ranking["rank_sense"][0] == "maximize" if ranking.height else True
    table = Table(title="candidates, ranked", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("candidate", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    table.add_column("policy", ratio=1)
    table.add_column(f"{metric}\n{'lower' if maximize else 'upper'} end", justify="right", no_wrap=True)
    styles = {"fail": "bold red", "inconclusive": "yellow", "pass": "green"}
    for r in ranking.iter_rows(named=True):
        table.add_row(str(r["rank"]), r["candidate"], r["verdict"].upper(), policies.get(r["candidate"], ""),
                      compact(r["bound"], signed=True), style=styles.get(r["verdict"], ""))
    return table
