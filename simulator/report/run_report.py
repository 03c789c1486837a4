"""The run report (`report.html`, `report.md`): what a rule backtest shows, with intervals, per candidate.

Built from a `RunResult` into the review's page model (`simulator.report.review_page`)
and rendered the same two ways: a self-contained HTML page and Markdown with its
figures as files beside it (forest plots as SVG, time windows as PNG). Sections, in
the order an analyst reads them:

- a summary banner: each candidate's headline deltas against the baseline;
- overall deltas per candidate, with intervals and flags;
- decision changes in ALL: which payments change action, how many and how much
  volume, what each transition carries in net value, and the largest example
  payments of each transition;
- per-segment forest plots, one figure per metric with a panel per candidate
  (`simulator.report.forest_svg`: written as SVG, ~1 ms a panel where matplotlib
  took ~0.2 s), that leave out segments below `min_rows` (their intervals would
  set the scale) and keep each panel's axis on what the large segments and ALL
  show (for the candidates; the logging policy's exploration is in the summary
  and the tables, not plotted per segment);
- stability over time, when `[segments] time` adds windows: each candidate's
  delta per window with its interval, and a call-out when its sign flips
  (an effect that holds only in one week is not a launch win);
- diagnostics (ESS of each delta, support) with a legend for every flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from segments.labels import ALL
from segments.windows import window_unit
from simulator.estimate.results import FLAG_NAMES
from simulator.report.files import write_bytes, write_text
from simulator.report.numbers import format_interval, format_relative, format_value, number
from simulator.report.forest_svg import forest_figure
from simulator.report.plots import DOWN, NEUTRAL, UP, figure_png
from simulator.report.review_page import Image, Report, Section, Table, render_html, render_markdown
from simulator.report.tables import FLAG_MEANINGS, compared_policies
from simulator.schema import LOGGED

if TYPE_CHECKING:  # the run workflow writes this report: it imports this module, not the other way round
    from simulator.workflows.run import RunResult

OVERALL_METRICS = ("net_value", "revenue", "cost", "fraud_loss", "auth_rate", "authorized_count", "block_rate",
                   "fraud_rate_bps", "fraud_count", "block_precision", "block_recall")
HEADLINE_METRICS = ("net_value", "auth_rate", "fraud_rate_bps")
FOREST_METRICS = ("net_value", "fraud_rate_bps", "auth_rate")
TIME_METRICS = ("net_value", "fraud_rate_bps", "auth_rate")
EXAMPLES_SHOWN = 5  # per transition in the report (examples.parquet holds more)
MIN_ROWS_SHARE = 0.01  # default min_rows: segments under 1 % of the payments (at least 1,000) are not drawn


def candidates(result: RunResult) -> list[str]:
    """The policies compared with the baseline, the logging policy (its exploration) last."""
    return compared_policies(result.results, result.plan.baseline)


def build_run_report(result: RunResult, *, min_rows: int | None = None) -> Report:
    """The report's sections (see the module docstring); `min_rows` defaults to 1 % of the payments (≥ 1,000)."""
    total = _all_rows(result)
    floor = min_rows if min_rows is not None else max(1_000, int(MIN_ROWS_SHARE * total))
    names = candidates(result)
    chosen = [n for n in names if n != LOGGED]  # per-segment and per-window plots: the candidates, not exploration
    overall = _overall_rows(result)
    sections = [_overall(result, names, overall), _changes(result), _forest(result, chosen, floor, overall)]
    time = time_section(result.results, chosen)
    if time is not None:
        sections.append(time)
    sections += [_diagnostics(result, names, overall)]
    baseline = result.plan.baseline
    return Report(
        title=f"policysim run: {len(names)} polic{'y' if len(names) == 1 else 'ies'} against {baseline}",
        verdict="summary", verdict_text=f"{total:,} payments, deltas against {baseline}",
        verdict_details=tuple(_headline(overall, n) for n in names), sections=tuple(sections))


def write_run_report(result: RunResult, folder: Path, *, min_rows: int | None = None) -> list[Path]:
    """`report.html`, `report.md` and the Markdown's figures, written atomically into `folder`."""
    report = build_run_report(result, min_rows=min_rows)
    written = [write_text(render_html(report), folder / "report.html"),
               write_text(render_markdown(report), folder / "report.md")]
    for section in report.sections:
        written += [write_bytes(f.png, folder / f.name) for f in section.figures]
    return written


def _all_rows(result: RunResult) -> int:
    rows = result.results.filter(pl.col("segment") == ALL).get_column("rows")
    return int(rows.max() or 0) if rows.len() else 0


Overall = dict[tuple[str, str], dict[str, object]]  # (policy, metric) → that policy's ALL row of the metric


def _overall_rows(result: RunResult) -> Overall:
    """Every ALL row by (policy, metric), read once: the sections look up hundreds of them."""
    return {(row["policy"], row["metric"]): row for row in result.overall().iter_rows(named=True)}


def _headline(overall: Overall, policy: str) -> str:
    """`stricter: net_value −16.9k [−23.7k, −10k]; auth_rate …` — the deltas a reader looks at first."""
    parts = []
    for metric in HEADLINE_METRICS:
        row = overall.get((policy, metric))
        if row is not None:
            parts.append(f"{metric} {format_value(metric, row['delta'], delta=True)} "  # type: ignore[arg-type]
                         f"{format_interval(metric, row['delta_ci_low'], row['delta_ci_high'], delta=True)}"  # type: ignore[arg-type]
                         + (f" ({row['flag']})" if row["flag"] else ""))
    label = f"{policy} (the logging policy: what exploration costs)" if policy == LOGGED else policy
    return f"{label}: " + "; ".join(parts)


def _overall(result: RunResult, names: list[str], overall: Overall) -> Section:
    tables = []
    for policy in names:
        rows, classes = [], []
        for metric in OVERALL_METRICS + result.plan.values.own_metrics:
            r = overall.get((policy, metric))
            if r is None:
                continue
            rows.append((metric, format_value(metric, r["baseline"]), format_value(metric, r["estimate"]),  # type: ignore[arg-type]
                         format_value(metric, r["delta"], delta=True),  # type: ignore[arg-type]
                         format_interval(metric, r["delta_ci_low"], r["delta_ci_high"], delta=True),  # type: ignore[arg-type]
                         format_relative(r["delta"], r["baseline"]), r["flag"] or ""))  # type: ignore[arg-type]
            classes.append("moved" if _excludes_zero(r) else "")
        tables.append(Table(("metric", "baseline", "estimate", "delta", "delta interval", "relative", "flag"),
                            tuple(rows), tuple(classes), caption=f"{policy} against {result.plan.baseline}",
                            numeric=(False, True, True, True, True, True, False)))
    paragraph = (f"Each candidate's value on these payments and its paired delta against {result.plan.baseline}, "
                 "money in the data's currency, rates in % and their deltas in percentage points. Shaded rows: the "
                 "delta's interval excludes 0.")
    return Section("overall", "Overall deltas", paragraphs=(paragraph,), tables=tuple(tables))


def _excludes_zero(row: dict[str, object]) -> bool:
    low, high = row["delta_ci_low"], row["delta_ci_high"]
    return low is not None and high is not None and (low > 0 or high < 0)  # type: ignore[operator]


def _changes(result: RunResult) -> Section:
    changes = result.changes.filter(pl.col("segment") == ALL)
    net = changes.filter(pl.col("metric") == "net_value")
    rows = tuple((r["policy"], f"{r['from_action']} → {r['to_action']}", f"{r['rows']:,.0f}", number(r["volume"]),
                  format_value("net_value", r["delta"], delta=True) if r["delta"] is not None else "—",
                  format_interval("net_value", r["delta_ci_low"], r["delta_ci_high"], delta=True)
                  if r["delta"] is not None else "—", r["flag"] or "")
                 for r in net.iter_rows(named=True))
    table = Table(("policy", "change", "rows", "volume", "Δ net_value", "interval", "flag"), rows,
                  caption="Payments that change decision (ALL)", numeric=(False, False, True, True, True, True, False))
    tables = [table] + _example_tables(result)
    paragraph = ("What a rule backtest shows: the logged payments whose action changes from the baseline's to the "
                 "candidate's, how many and how much volume (exact counts of the log), and the net value each "
                 "transition carries (estimated, with its interval; — where the delta is not split by transition, "
                 "see changes.parquet's interval column). changes.parquet has every segment and metric; "
                 "examples.parquet the largest payments of each transition.")
    return Section("changes", "Decision changes", paragraphs=(paragraph,), tables=tuple(tables))


def _example_tables(result: RunResult) -> list[Table]:
    examples = result.examples
    if examples.is_empty() or "segment" not in examples.columns:
        return []
    shown = examples.filter(pl.col("segment") == ALL).sort(["policy", "from_action", "to_action", "rank"])
    shown = shown.filter(pl.col("rank") <= EXAMPLES_SHOWN)
    scores = [c for c in ("fraud_score", "auth_score") if c in shown.columns]
    tables = []
    for (policy, source, target), part in shown.group_by(["policy", "from_action", "to_action"], maintain_order=True):
        rows = tuple((str(r["transaction_id"]), str(r["created_at"])[:19], number(r["amount"]),
                      *(f"{r[c]:.3f}" if r[c] is not None else "" for c in scores))
                     for r in part.iter_rows(named=True))
        tables.append(Table(("transaction_id", "created_at", "amount", *scores), rows,
                            caption=f"{policy}: largest payments moved {source} → {target}",
                            numeric=(False, False, True, *(True for _ in scores))))
    return tables


def _forest(result: RunResult, names: list[str], min_rows: int, overall: Overall) -> Section:
    """One SVG per metric with a panel per candidate (`simulator.report.forest_svg`)."""
    images = []
    for metric in FOREST_METRICS:
        drawn = [policy for policy in names if (policy, metric) in overall]
        svg = forest_figure(result.results, metric, drawn, top=20, min_rows=min_rows)
        if svg is not None:
            images.append(Image(f"forest_{metric}.svg",
                                f"forest plots of {metric} deltas by segment, one panel per candidate", svg))
    paragraph = (f"Paired delta and its interval in ALL and the 20 segments with at least {min_rows:,} payments that "
                 "move most, one panel per candidate. Green: the interval is above 0; red: below; grey: contains 0; "
                 "hollow: flagged. Smaller segments are left out (their wide intervals would set the scale); each "
                 "panel's axis shows ALL and the middle of the segments' intervals, and an interval that runs off it "
                 "is cut at the edge. Panels do not share an axis: compare candidates by the numbers under each.")
    return Section("forest", "Per-segment deltas", paragraphs=(paragraph,), figures=tuple(images))


def _file_part(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def time_section(results: pl.DataFrame, names: list[str], prefix: str = "") -> Section | None:
    """Each policy's deltas per time window with intervals and sign flips called out; None without windows.

    Shared with the review report (`prefix` keeps image names apart when several candidates share a page).
    """
    windows = [s for s in results.get_column("segmentation").unique(maintain_order=True).to_list()
               if s is not None and window_unit(s) is not None]
    if not windows:
        return None
    segmentation = windows[0]
    frame = results.filter(pl.col("segmentation") == segmentation).sort("segment")
    images, notes = [], []
    for policy in names:
        figure, flips = _time_figure(frame.filter(pl.col("policy") == policy), policy, segmentation)
        images.append(Image(f"{prefix}time_{_file_part(policy)}.png", f"{policy}'s deltas per {segmentation}",
                            figure_png(figure)))
        notes += [f"{policy}: {text}" for text in flips]
    paragraph = (f"Each candidate's delta per window of {segmentation} (UTC) with its interval; windows with no "
                 "delta (no support) are left out. A delta that holds in only some windows, or changes sign, is "
                 "not a stable effect.")
    return Section("time", "Stability over time", paragraphs=(paragraph,), figures=tuple(images),
                   notes=tuple(notes) or ("No sign flips: where a window's interval excludes 0, it does so on the "
                                          "same side in every window.",))


def _time_figure(frame: pl.DataFrame, policy: str, segmentation: str):  # noqa: ANN202 - a matplotlib Figure
    """One panel per metric: delta per window, interval bars, 0 line; and the sign flips found."""
    from matplotlib.figure import Figure

    metrics = [m for m in TIME_METRICS if frame.filter(pl.col("metric") == m).height]
    figure = Figure(figsize=(9, 2.3 * max(len(metrics), 1) + 0.6), layout="constrained")
    axes = figure.subplots(max(len(metrics), 1), 1, squeeze=False)[:, 0]
    flips = []
    for ax, metric in zip(axes, metrics, strict=False):
        rows = frame.filter((pl.col("metric") == metric) & pl.col("delta").is_not_null())
        labels = [s.split("=", 1)[-1] for s in rows.get_column("segment").to_list()]
        delta, low, high = (rows.get_column(c).cast(pl.Float64).fill_null(np.nan).to_numpy()
                            for c in ("delta", "delta_ci_low", "delta_ci_high"))
        x = np.arange(len(labels))
        colors = np.where(low > 0, UP, np.where(high < 0, DOWN, NEUTRAL))
        ax.vlines(x, low, high, colors=colors, linewidth=2)
        ax.scatter(x, delta, c=colors, s=18, zorder=3)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(x, labels, rotation=45 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center",
                      fontsize=8)
        ax.set_ylabel(f"Δ {metric}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        flip = _sign_flip(labels, low, high, delta)
        if flip:
            flips.append(f"{metric} {flip}")
    figure.suptitle(f"{policy}: deltas per {segmentation}", fontsize=10)
    return figure, flips


def _sign_flip(labels: list[str], low: np.ndarray, high: np.ndarray, delta: np.ndarray) -> str:
    """A sentence when the delta's sign flips between windows: certainly (intervals on both sides of 0) or not."""
    up, down = [w for w, lo in zip(labels, low, strict=True) if lo > 0], [w for w, hi in zip(labels, high, strict=True) if hi < 0]
    if up and down:
        return (f"flips sign: its interval is above 0 in {', '.join(up[:4])} and below 0 in {', '.join(down[:4])}")
    finite = delta[np.isfinite(delta)]
    if finite.size and (finite > 0).any() and (finite < 0).any():
        return (f"changes sign between windows ({int((finite > 0).sum())} up, {int((finite < 0).sum())} down), "
                "within the intervals")
    return ""


def _diagnostics(result: RunResult, names: list[str], overall: Overall) -> Section:
    rows = []
    for policy in names:
        for metric in HEADLINE_METRICS:
            r = overall.get((policy, metric))
            if r is None:
                continue
            rows.append((policy, metric, _number(r.get("delta_ess")), _number(r.get("delta_explored")),
                         _number(r.get("ess")), f"{100 * (r.get('unsupported_mass') or 0):.2f} %", r["flag"] or ""))  # type: ignore[operator]
    table = Table(("policy", "metric", "ESS of the delta", "explored rows behind it", "ESS", "unsupported mass",
                   "flag"), tuple(rows), caption="What the ALL deltas rest on",
                  numeric=(False, False, True, True, True, True, False))
    flagged = result.results.filter((pl.col("flag").fill_null("") != "") & pl.col("policy").is_in(names))
    counts = {name: flagged.filter(pl.col("flag").str.contains(name)).select("policy", "segment").unique().height
              for name in FLAG_NAMES}
    legend = tuple(f"{name}: {FLAG_MEANINGS[name]} — {counts[name]:,} (policy, segment) pairs carry it"
                   for name in FLAG_NAMES if name in FLAG_MEANINGS)
    paragraph = ("ESS of the delta: the effective number of explored payments behind it, where the policies act "
                 "differently; the fewer, the less the interval can be trusted. Unsupported mass: the share of the "
                 "candidate's weight on actions the logging policy never explored.")
    return Section("diagnostics", "Diagnostics and flags", paragraphs=(paragraph,), tables=(table,), notes=legend)


def _number(value: object) -> str:
    return "—" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:,.0f}"
