"""Pictures of a sweep's frontiers: a static PNG (matplotlib) and a self-contained interactive page (plotly).

Both show, per segment and for each frontier of `FRONTIERS` (one panel each):
every grid point as a faint dot, the Pareto frontier as a line with its
intervals, the baseline policy and, when given, the recommended point.

Figures are built with `matplotlib.figure.Figure`, never pyplot, so nothing
depends on global state or a display (Agg-safe in workers and tests). The HTML
page inlines plotly.js, so it opens offline and from an e-mail attachment.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:  # matplotlib and plotly load when a picture is drawn, not when the package is imported
    import plotly.graph_objects as go
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

from simulator.errors import UnknownName
from simulator.decide.frontier import FRONTIERS, THRESHOLDS, frontier_name, metric_pairs
from simulator.report.files import write_atomic
from simulator.report.numbers import number
from segments.labels import ALL

HTML_SEGMENTS = 20  # the largest segments (by rows) offered in the page's menu, besides ALL

_FRONTIER_COLOR = "#1f77b4"
_BASELINE_COLOR = "#222222"
_RECOMMENDED_COLOR = "#d62728"
_LEGEND_ORDER = ["Pareto frontier", "interval of y", "grid points", "baseline", "recommended"]


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
                    recommended: int | None = None) -> Figure:
    """Two panels (net_value and auth_rate against fraud_rate_bps) for one segment.

    `frontier` is the output of `frontiers(sweep)`; `recommended` is a grid
    point to mark (e.g. `choose(...).point`). A notebook displays the figure
    it returns (after `%matplotlib inline`).

    Example::

        swept = sweep(config, data, objective=parse_objective("net_value"), engine="local")
        frontier_figure(swept.table, frontiers(swept.table), segment="card_funding=prepaid",
                        recommended=swept.choice.recommendation.point)
    """
    _require_segment(sweep, segment)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5), layout="constrained")
    axes = figure.subplots(1, len(FRONTIERS), squeeze=False)[0]
    for ax, (x, y) in zip(axes, FRONTIERS, strict=True):
        _panel(ax, _segment_pairs(sweep, x, y, segment), _segment_frontier(frontier, x, y, segment), recommended,
               _baseline_label(sweep))
        ax.set_xlabel(f"{x} (lower is better)")
        ax.set_ylabel(y)
        ax.set_title(f"{y} against {x}")
    handles, labels = axes[0].get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: _LEGEND_ORDER.index(labels[i].split(" (")[0]))
    # one legend for both panels, below them, so that it never hides points
    figure.legend([handles[i] for i in order], [labels[i] for i in order], loc="outside lower center",
                  ncols=3, fontsize=9, frameon=False)
    figure.suptitle(f"Threshold sweep, segment {segment}")
    return figure


def _panel(ax: Axes, pairs: pl.DataFrame, line: pl.DataFrame, recommended: int | None, baseline: str) -> None:
    x, y = _arrays(pairs, "x_estimate", "y_estimate")
    ax.scatter(x, y, s=10, color="0.55", alpha=0.35, linewidths=0, label=f"grid points ({pairs.height:,})")
    if line.height:
        fx, fx_low, fx_high, fy, fy_low, fy_high = _arrays(
            line, "x_estimate", "x_ci_low", "x_ci_high", "y_estimate", "y_ci_low", "y_ci_high")
        ax.fill_between(fx, fy_low, fy_high, color=_FRONTIER_COLOR, alpha=0.15, linewidth=0, label="interval of y")
        ax.errorbar(fx, fy, xerr=_errors(fx, fx_low, fx_high), fmt="-o", color=_FRONTIER_COLOR, markersize=4,
                    elinewidth=0.8, ecolor=_FRONTIER_COLOR, capsize=2, label="Pareto frontier (bars: interval of x)")
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

    traces = [_points_trace(
        pairs, _hover_template(x, y, thresholds, "point"), mode="markers",
        marker={"size": 5, "color": "rgba(120,120,120,0.35)"}, name="grid points", legendgroup="grid", showlegend=legend)]
    if line.height:
        fx, fx_low, fx_high, fy, fy_low, fy_high = _arrays(
            line, "x_estimate", "x_ci_low", "x_ci_high", "y_estimate", "y_ci_low", "y_ci_high")
        x_err, y_err = _errors(fx, fx_low, fx_high), _errors(fy, fy_low, fy_high)
        traces.append(_points_trace(
            line, _hover_template(x, y, thresholds, "frontier point"), mode="lines+markers",
            line={"color": _FRONTIER_COLOR}, marker={"size": 7},
            error_x={"type": "data", "symmetric": False, "array": x_err[1], "arrayminus": x_err[0], "thickness": 1},
            error_y={"type": "data", "symmetric": False, "array": y_err[1], "arrayminus": y_err[0], "thickness": 1},
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
                  recommended: int | None = None) -> str:
    """A self-contained interactive page (plotly.js inlined, no network) of both frontiers.

    A menu switches between ALL and the largest segments (see `html_segments`);
    `segment` is shown first. Hovering a point shows its thresholds, estimates
    and intervals. The caller writes the string atomically as frontier.html.
    The page carries plotly.js (a few MB): write it to a file rather than into a notebook.

    Example::

        Path("frontier.html").write_text(frontier_html(swept.table, frontiers(swept.table)))
    """
    _require_segment(sweep, segment)
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
    buttons = [{"label": s, "method": "update",
                "args": [{"visible": [o == s for o in owners]}, {"title.text": _html_title(s)}]} for s in segments]
    figure.update_layout(
        title={"text": _html_title(segment)}, template="plotly_white", height=600, hovermode="closest",
        updatemenus=[{"buttons": buttons, "active": segments.index(segment), "x": 1.0, "xanchor": "right",
                      "y": 1.12, "yanchor": "bottom", "direction": "down"}],
    )
    # plotly.js 4 shows a "share" button that uploads the chart to Plotly's cloud by default: never for our data
    config = {"displaylogo": False, "showSendToCloud": False}
    return figure.to_html(include_plotlyjs=True, full_html=True, include_mathjax=False, config=config)


def _html_title(segment: str) -> str:
    return f"Threshold sweep frontier, segment {segment}"
