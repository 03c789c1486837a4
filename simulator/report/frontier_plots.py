"""Pictures of a sweep's frontiers: a static PNG (matplotlib) and a self-contained interactive page (plotly).

Both show, per segment and for each frontier of `FRONTIERS` (one panel each):
every grid point as a faint dot, the Pareto frontier as a line with its
intervals (light, behind the line, so they never hide the curve), the baseline
policy and, given a sweep's `Choice`, the recommended point with its reason and
the objective's constraints as dashed lines on the axes they limit. The page
also lists the frontier points of the segment it opens on in a table.

Figures are built with `matplotlib.figure.Figure`, never pyplot, so nothing
depends on global state or a display (Agg-safe in workers and tests). The HTML
page inlines plotly.js, so it opens offline and from an e-mail attachment.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:  # matplotlib and plotly load when a picture is drawn, not when the package is imported
    import plotly.graph_objects as go
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from simulator.decide.recommend import Choice

from simulator.errors import UnknownName
from simulator.decide.frontier import FRONTIERS, THRESHOLDS, frontier_name, metric_pairs
from simulator.report.files import write_atomic
from simulator.report.numbers import number
from segments.labels import ALL

HTML_SEGMENTS = 20  # the largest segments (by rows) offered in the page's menu, besides ALL

_FRONTIER_COLOR = "#1f77b4"
_BASELINE_COLOR = "#222222"
_RECOMMENDED_COLOR = "#d62728"
_CONSTRAINT_COLOR = "#e6550d"
_LEGEND_ORDER = ["Pareto frontier", "interval of y", "grid points", "grid points flagged, not on the frontier",
                 "baseline", "recommended", "constraint"]
_INTERVAL_ALPHA = 0.3  # error bars: visible, but the curve stays on top
_LIGHT_FRONTIER = "rgba(31,119,180,0.3)"


def _require_segment(sweep: pl.DataFrame, segment: str) -> None:
    """A misspelt segment must fail, not draw empty panels."""
    known = sweep.get_column("segment").unique()
    if not known.is_in([segment]).any():
        raise UnknownName("segment", segment, known.to_list())


def _segment_pairs(sweep: pl.DataFrame, x: str, y: str, segment: str) -> pl.DataFrame:
    """Every grid point of one segment with x and y side by side, sorted by point."""
    return metric_pairs(sweep, x, y).filter(pl.col("segment") == segment).sort("point")


def _segment_frontier(frontier: pl.DataFrame, x: str, y: str, segment: str) -> pl.DataFrame:
    return frontier.filter((pl.col("segment") == segment) & (pl.col("frontier") == frontier_name(x, y))).sort("x_estimate")


def _arrays(frame: pl.DataFrame, *columns: str) -> list[np.ndarray]:
    """Columns as float arrays, nulls as NaN (matplotlib leaves NaN out)."""
    return [frame.get_column(c).cast(pl.Float64).fill_null(float("nan")).to_numpy() for c in columns]


def _errors(estimate: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(2, n) error bar lengths; a percentile interval need not contain its estimate, so clip at 0."""
    return np.nan_to_num(np.clip(np.vstack([estimate - low, high - estimate]), 0.0, None))


def _baseline_label(sweep: pl.DataFrame) -> str:
    """`baseline (production)`: the legend names the policy the deltas compare with."""
    if "baseline_policy" not in sweep.columns or sweep.is_empty() or sweep["baseline_policy"][0] is None:
        return "baseline"
    return f"baseline ({sweep['baseline_policy'][0]})"


def _baseline(pairs: pl.DataFrame) -> tuple[float, float] | None:
    """The baseline policy's (x, y): the `baseline` column, the same for every point."""
    known = pairs.drop_nulls(["x_baseline", "y_baseline"])
    return None if known.is_empty() else (known.item(0, "x_baseline"), known.item(0, "y_baseline"))


def frontier_figure(sweep: pl.DataFrame, frontier: pl.DataFrame, *, segment: str = ALL,
                    recommended: int | None = None, choice: Choice | None = None) -> Figure:
    """Two panels (net_value and auth_rate against fraud_rate_bps) for one segment.

    `frontier` is the output of `frontiers(sweep)`; `recommended` is a grid
    point to mark; `choice` (a sweep's `swept.choice`) marks its recommended
    point, writes its reason under the title and draws the objective's
    constraints. A notebook displays the figure it returns (after `%matplotlib inline`).

    Example::

        swept = sweep(config, data, objective=parse_objective("net_value; fraud_rate_bps<=55"), engine="local")
        frontier_figure(swept.table, frontiers(swept.table), segment="card_funding=prepaid", choice=swept.choice)
    """
    _require_segment(sweep, segment)
    from matplotlib.figure import Figure

    recommended = _recommended(recommended, choice)
    figure = Figure(figsize=(12, 5.5), layout="constrained")
    axes = figure.subplots(1, len(FRONTIERS), squeeze=False)[0]
    for ax, (x, y) in zip(axes, FRONTIERS, strict=True):
        _panel(ax, _segment_pairs(sweep, x, y, segment), _segment_frontier(frontier, x, y, segment), recommended,
               _baseline_label(sweep))
        for line in constraint_lines(choice, x, y):
            draw = ax.axvline if line.axis == "x" else ax.axhline
            draw(line.limit, color=_CONSTRAINT_COLOR, linestyle="--", linewidth=1.2, label=f"constraint: {line.text}")
        ax.set_xlabel(f"{x} (lower is better)")
        ax.set_ylabel(y)
        ax.set_title(f"{y} against {x}")
    legend: dict[str, object] = {}  # one entry per label over both panels (a constraint may limit one panel only)
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    order = sorted(range(len(labels)), key=lambda i: _LEGEND_ORDER.index(labels[i].split(":")[0].split(" (")[0]))
    # one legend for both panels, below them, so that it never hides points
    figure.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside lower center",
                  ncols=3, fontsize=9, frameon=False)
    reason = textwrap.fill(recommendation_reason(choice), 160)
    figure.suptitle(f"Threshold sweep, segment {segment}" + (f"\n{reason}" if reason else ""), fontsize=10)
    return figure


@dataclass(frozen=True, slots=True)
class ConstraintLine:
    """A constraint drawn on a panel: on its x axis (fraud rate) or y axis, at `limit`."""

    axis: str
    limit: float
    text: str


def constraint_lines(choice: Choice | None, x: str, y: str) -> list[ConstraintLine]:
    """The objective's limits on this panel's metrics (an every-segment limit applies to the segment shown too)."""
    if choice is None:
        return []
    lines = []
    for constraint in choice.objective.constraints:
        axis = "x" if constraint.metric == x else "y" if constraint.metric == y else None
        for limit in (constraint.max, constraint.min):
            if axis is not None and limit is not None:
                lines.append(ConstraintLine(axis, float(limit), constraint.describe(choice.objective.min_rows)))
    return lines


def recommendation_reason(choice: Choice | None) -> str:
    """One line for a caption: what the held-out rows report (on the plot's scale, the whole log) when the
    point was chosen on one part of the log, else the first reason (why this point, or why none)."""
    if choice is None or not choice.recommendation.reason:
        return ""
    reported = [r for r in choice.recommendation.reason if r.startswith("reported on")]
    return f"recommended point {choice.recommendation.point}, {reported[0]}" if reported else choice.recommendation.reason[0]


def _recommended(recommended: int | None, choice: Choice | None) -> int | None:
    return recommended if recommended is not None or choice is None else choice.recommendation.point


def _split_flagged(pairs: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(clean, flagged) points: a flag (e.g. `few_events`) keeps a point off the frontier, so it is drawn apart
    and a frontier below flagged points does not look wrong."""
    flagged = (pl.col("x_flag").fill_null("") != "") | (pl.col("y_flag").fill_null("") != "")
    return pairs.filter(~flagged), pairs.filter(flagged)


def _panel(ax: Axes, pairs: pl.DataFrame, line: pl.DataFrame, recommended: int | None, baseline: str) -> None:
    clean, marked = _split_flagged(pairs)
    x, y = _arrays(clean, "x_estimate", "y_estimate")
    ax.scatter(x, y, s=10, color="0.45", alpha=0.4, linewidths=0, label=f"grid points ({clean.height:,})")
    if marked.height:
        fx_, fy_ = _arrays(marked, "x_estimate", "y_estimate")
        ax.scatter(fx_, fy_, s=10, facecolors="none", edgecolors="0.7", linewidths=0.5, alpha=0.5,
                   label=f"grid points flagged, not on the frontier ({marked.height:,})")
    if line.height:
        fx, fx_low, fx_high, fy, fy_low, fy_high = _arrays(
            line, "x_estimate", "x_ci_low", "x_ci_high", "y_estimate", "y_ci_low", "y_ci_high")
        ax.fill_between(fx, fy_low, fy_high, color=_FRONTIER_COLOR, alpha=0.12, linewidth=0, label="interval of y")
        ax.errorbar(fx, fy, xerr=_errors(fx, fx_low, fx_high), fmt="none", ecolor=_FRONTIER_COLOR,
                    elinewidth=0.6, alpha=_INTERVAL_ALPHA, capsize=0, zorder=2)
        ax.plot(fx, fy, "-o", color=_FRONTIER_COLOR, markersize=3.5, zorder=3,
                label="Pareto frontier (light bars: interval of x)")
    else:
        ax.text(0.5, 0.5, "no supported points", transform=ax.transAxes, ha="center", color="0.4")
    base = _baseline(pairs)
    if base is not None:
        ax.scatter(*base, marker="*", s=220, color=_BASELINE_COLOR, zorder=5, label=baseline)
    chosen = pairs.filter(pl.col("point") == recommended) if recommended is not None else pairs.clear()
    if chosen.height and chosen.item(0, "x_estimate") is not None and chosen.item(0, "y_estimate") is not None:
        row = chosen.row(0, named=True)
        ax.scatter(row["x_estimate"], row["y_estimate"], s=260, facecolors="none", edgecolors=_RECOMMENDED_COLOR,
                   linewidths=2, zorder=6, label=f"recommended (point {recommended}: {_threshold_text(row)})")
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: number(value)))
    ax.grid(alpha=0.25)


def _threshold_text(row: dict[str, object]) -> str:
    parts = [f"{name} = {row[name]:.3g}" for name in ("challenge_above", "block_above")
             if row[name] is not None]
    return ", ".join(parts) or "no thresholds"


def write_frontier_png(figure: Figure, path: Path) -> Path:
    """Save a figure as PNG atomically (a reader never sees half an image)."""
    return write_atomic(path, lambda tmp: figure.savefig(tmp, format="png", dpi=120))


def html_segments(sweep: pl.DataFrame, segment: str = ALL) -> list[str]:
    """The segments the page offers: ALL, the requested one, then the largest by rows (at most `HTML_SEGMENTS`)."""
    sizes = sweep.group_by("segment").agg(pl.col("rows").max()).sort(["rows", "segment"], descending=[True, False])
    largest = [s for s in sizes.get_column("segment").to_list() if s != ALL][:HTML_SEGMENTS]
    return list(dict.fromkeys([ALL, segment, *largest]))


# d3 formats for hover numbers; anything else gets 4 significant digits
_HOVER_FORMATS = {"net_value": ",.4~s", "auth_rate": ".2%", "fraud_rate_bps": ".3~f"}
_HOVER_COLUMNS = ["point", "challenge_above", "block_above", "x_ci_low", "x_ci_high", "y_ci_low", "y_ci_high"]


def _hover_template(x: str, y: str, thresholds: list[str], title: str) -> str:
    """Hover: what the point is, its thresholds, then each metric's estimate [interval] (from `customdata`)."""
    fx, fy = _HOVER_FORMATS.get(x, ",.4~g"), _HOVER_FORMATS.get(y, ",.4~g")
    index = {c: i for i, c in enumerate(_HOVER_COLUMNS)}
    parts = [f"{name} = %{{customdata[{index[name]}]:.3~g}}" for name in thresholds]
    return (f"{title} %{{customdata[0]}}: {', '.join(parts) or 'no thresholds'}<br>"
            f"{y} = %{{y:{fy}}}  [%{{customdata[5]:{fy}}}, %{{customdata[6]:{fy}}}]<br>"
            f"{x} = %{{x:{fx}}}  [%{{customdata[3]:{fx}}}, %{{customdata[4]:{fx}}}]<extra></extra>")


def _points_trace(frame: pl.DataFrame, template: str, **style: object) -> go.Scatter:
    """A scatter of (x_estimate, y_estimate) with hover data; numpy arrays keep the page small and fast to build."""
    x, y = _arrays(frame, "x_estimate", "y_estimate")
    # float32 is plenty for 3-4 digits of hover text and halves the page
    custom = np.column_stack(_arrays(frame, *_HOVER_COLUMNS)).astype(np.float32) if frame.height else None
    import plotly.graph_objects as go

    return go.Scatter(x=x, y=y, customdata=custom, hovertemplate=template, **style)  # type: ignore[arg-type]


def _plotly_traces(pairs: pl.DataFrame, line: pl.DataFrame, x: str, y: str, recommended: int | None, *,
                   thresholds: list[str], legend: bool, baseline: str) -> list[go.Scatter]:
    """The traces of one panel of one segment: grid points, frontier, baseline, recommended point."""
    import plotly.graph_objects as go

    clean, marked = _split_flagged(pairs)
    traces = [_points_trace(
        clean, _hover_template(x, y, thresholds, "point"), mode="markers",
        marker={"size": 5, "color": "rgba(100,100,100,0.4)"}, name="grid points", legendgroup="grid", showlegend=legend),
        _points_trace(
        marked, _hover_template(x, y, thresholds, "flagged point"), mode="markers",
        marker={"size": 5, "color": "rgba(0,0,0,0)", "line": {"color": "rgba(150,150,150,0.5)", "width": 1}},
        name="grid points flagged (not on the frontier)", legendgroup="flagged", showlegend=legend)]
    if line.height:
        fx, fx_low, fx_high, fy, fy_low, fy_high = _arrays(
            line, "x_estimate", "x_ci_low", "x_ci_high", "y_estimate", "y_ci_low", "y_ci_high")
        x_err, y_err = _errors(fx, fx_low, fx_high), _errors(fy, fy_low, fy_high)
        traces.append(_points_trace(
            line, _hover_template(x, y, thresholds, "frontier point"), mode="lines+markers",
            line={"color": _FRONTIER_COLOR}, marker={"size": 7},
            error_x={"type": "data", "symmetric": False, "array": x_err[1], "arrayminus": x_err[0], "thickness": 0.8,
                     "width": 0, "color": _LIGHT_FRONTIER},
            error_y={"type": "data", "symmetric": False, "array": y_err[1], "arrayminus": y_err[0], "thickness": 0.8,
                     "width": 0, "color": _LIGHT_FRONTIER},
            name="Pareto frontier", legendgroup="frontier", showlegend=legend))
    base = _baseline(pairs)
    if base is not None:
        traces.append(go.Scatter(
            x=[base[0]], y=[base[1]], mode="markers", marker={"symbol": "star", "size": 16, "color": _BASELINE_COLOR},
            name=baseline, legendgroup="baseline", showlegend=legend,
            hovertemplate=f"{baseline}<br>{y} = {number(base[1])}<br>{x} = {number(base[0])}<extra></extra>"))
    chosen = pairs.filter(pl.col("point") == recommended) if recommended is not None else pairs.clear()
    if chosen.height:
        traces.append(_points_trace(
            chosen, _hover_template(x, y, thresholds, "recommended point"), mode="markers",
            marker={"size": 18, "color": "rgba(0,0,0,0)", "line": {"color": _RECOMMENDED_COLOR, "width": 3}},
            name="recommended", legendgroup="recommended", showlegend=legend))
    return traces


def _by_segment(frame: pl.DataFrame, segments: list[str]) -> dict[str, pl.DataFrame]:
    """One frame per segment (empty for a segment without rows), partitioned in one pass."""
    parts = {key[0]: part for key, part in frame.filter(pl.col("segment").is_in(segments))
             .partition_by("segment", as_dict=True, maintain_order=True).items()}
    return {s: parts.get(s, frame.clear()) for s in segments}


def frontier_html(sweep: pl.DataFrame, frontier: pl.DataFrame, *, segment: str = ALL,
                  recommended: int | None = None, choice: Choice | None = None) -> str:
    """A self-contained interactive page (plotly.js inlined, no network) of both frontiers.

    A menu switches between ALL and the largest segments (see `html_segments`);
    `segment` is shown first. Hovering a point shows its thresholds, estimates
    and intervals. With a sweep's `choice`: the recommended point, its reasons
    and the objective's constraints as dashed lines. Below the chart, a table of
    the frontier points of `segment`. The caller writes the string atomically as
    frontier.html. The page carries plotly.js (a few MB): write it to a file
    rather than into a notebook.

    Example::

        Path("frontier.html").write_text(frontier_html(swept.table, frontiers(swept.table)))
    """
    _require_segment(sweep, segment)
    recommended = _recommended(recommended, choice)
    segments = html_segments(sweep, segment)
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=len(FRONTIERS), horizontal_spacing=0.08,
                           subplot_titles=[f"{y} against {x}" for x, y in FRONTIERS])
    owners: list[str] = []  # the segment of every trace, in order: what each menu entry shows
    thresholds = [c for c in THRESHOLDS if sweep.get_column(c).is_not_null().any()]  # null = not in the grid
    for column, (x, y) in enumerate(FRONTIERS, start=1):
        pairs = _by_segment(metric_pairs(sweep, x, y).sort("point"), segments)
        lines = _by_segment(frontier.filter(pl.col("frontier") == frontier_name(x, y)).sort("x_estimate"), segments)
        for shown in segments:
            for trace in _plotly_traces(pairs[shown], lines[shown], x, y, recommended, thresholds=thresholds,
                                        legend=column == 1, baseline=_baseline_label(sweep)):
                trace.visible = shown == segment
                figure.add_trace(trace, row=1, col=column)
                owners.append(shown)
        figure.update_xaxes(title_text=f"{x} (lower is better)", row=1, col=column)
        figure.update_yaxes(title_text=y, row=1, col=column)
        for line in constraint_lines(choice, x, y):
            draw = figure.add_vline if line.axis == "x" else figure.add_hline
            draw(line.limit, line={"color": _CONSTRAINT_COLOR, "dash": "dash", "width": 1.5}, row=1, col=column,
                 annotation_text=f"constraint: {line.text}", annotation_font_color=_CONSTRAINT_COLOR)
    buttons = [{"label": s, "method": "update",
                "args": [{"visible": [o == s for o in owners]}, {"title.text": _html_title(s)}]} for s in segments]
    figure.update_layout(
        title={"text": _html_title(segment)}, template="plotly_white", height=600, hovermode="closest",
        updatemenus=[{"buttons": buttons, "active": segments.index(segment), "x": 1.0, "xanchor": "right",
                      "y": 1.12, "yanchor": "bottom", "direction": "down"}],
    )
    # plotly.js 4 shows a "share" button that uploads the chart to Plotly's cloud by default: never for our data
    config = {"displaylogo": False, "showSendToCloud": False}
    chart = figure.to_html(include_plotlyjs=True, full_html=False, include_mathjax=False, config=config)
    return _page(_html_title(segment), chart, _reasons_html(choice), frontier_table_html(frontier, segment, recommended))


def _page(title: str, chart: str, reasons: str, table: str) -> str:
    """The whole page: the chart, why the recommendation, then the frontier points."""
    style = ("body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
             "table{border-collapse:collapse;font-size:13px;margin:0.5em 0 2em}"
             "th,td{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}"
             "th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}"
             "tr.recommended{background:#fde0dc;font-weight:600}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{style}</style></head><body>{chart}{reasons}{table}</body></html>")


def _reasons_html(choice: Choice | None) -> str:
    if choice is None:
        return ""
    items = "".join(f"<li>{escape(r)}</li>" for r in choice.recommendation.reason)
    constraints = [c.describe(choice.objective.min_rows) for c in choice.objective.constraints]
    goal = f"{choice.objective.sense} {choice.objective.metric}" + (
        f" subject to {escape(' and '.join(constraints))}" if constraints else "")
    return f"<h2>Recommendation</h2><p>Objective: {escape(goal)}.</p><ul>{items}</ul>"


def frontier_table_html(frontier: pl.DataFrame, segment: str, recommended: int | None) -> str:
    """Per frontier, its points in `segment` with thresholds and both metrics with their intervals."""
    parts = [f"<h2>Frontier points, segment {escape(segment)}</h2>"]
    for x, y in FRONTIERS:
        line = _segment_frontier(frontier, x, y, segment)
        parts.append(f"<h3>{escape(y)} against {escape(x)} ({line.height} points)</h3>")
        if line.height == 0:
            parts.append("<p>No supported points.</p>")
            continue
        head = "".join(f"<th>{escape(h)}</th>" for h in ("point", *THRESHOLDS, x, f"{x} interval", y, f"{y} interval", "flag"))
        rows = []
        for row in line.iter_rows(named=True):
            cls = " class='recommended'" if row["point"] == recommended else ""
            cells = [str(row["point"]), *(_cell(row.get(t), "{:.4g}") for t in THRESHOLDS),
                     number(row["x_estimate"]), _interval_text(row["x_ci_low"], row["x_ci_high"]),
                     number(row["y_estimate"]), _interval_text(row["y_ci_low"], row["y_ci_high"]), row["flag"] or ""]
            rows.append(f"<tr{cls}>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
        parts.append(f"<table><tr>{head}</tr>{''.join(rows)}</table>")
    return "".join(parts)


def _cell(value: object, pattern: str) -> str:
    return "—" if value is None else pattern.format(value)


def _interval_text(low: float | None, high: float | None) -> str:
    return "—" if low is None or high is None else f"[{number(low)}, {number(high)}]"


def _html_title(segment: str) -> str:
    return f"Threshold sweep frontier, segment {segment}"
