"""Forest plots written directly as SVG: one figure per metric, one panel per candidate (the run report's).

matplotlib spends ~0.2 s laying out and rasterising one forest plot, most of it on
text, and a run report of ten candidates had thirty of them (~6–9 s on the
benchmark, more than its statistics per 10 M rows). A forest plot is a few lines,
dots and labels: written as SVG markup it costs about a millisecond a panel, stays
sharp at any zoom, and its segment labels are text a reader can search.

Each panel shows what `plots.forest_plot` shows with `focus=True`: ALL on top, then
the `top` segments with the largest |delta| among those with at least `min_rows`
payments (`plots.forest_rows`), each paired delta with its interval, green when
the interval lies above 0, red below, grey across it, hollow when flagged; the axis
covers ALL, 0 and the middle 80 % of the segments' interval ends
(`plots.focus_limits`), and a longer interval is cut at the edge, with an arrowhead
saying it goes on. Panels keep their
own axis: candidates' deltas differ by orders of magnitude, and a shared axis would
flatten the small ones.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from simulator.report.numbers import number
from simulator.report.plots import DOWN, NEUTRAL, UP, focus_limits, forest_rows

ROW = 16  # px between segment rows
FONT = 11  # px, labels and ticks
CHAR = 6.2  # px, a generous average character width at FONT (labels are measured by their length)
PLOT = 300  # px, width of a panel's axis
TITLE = 26  # px above a panel's rows (its title)
AXIS = 36  # px below them (ticks and their labels)
GAP = 28  # px between panels
HEAD = 30  # px above the panels (the figure's title)
COLUMNS = 2  # panels side by side
MARGIN = 10  # px around the figure


def forest_figure(results: pl.DataFrame, metric: str, policies: Sequence[str], *, top: int = 20,
                  min_rows: int = 0) -> bytes | None:
    """One SVG of `metric`'s per-segment paired deltas, a panel per policy in `policies` order (None: nothing to draw).

    Panels run left to right, `COLUMNS` a line; the label column is as wide as the longest label of any panel,
    so panels line up.
    """
    panels = [(policy, rows) for policy in policies
              if (rows := forest_rows(results, metric, policy=policy, top=top, min_rows=min_rows)).height]
    if not panels:
        return None
    labels = max(len(label) for _, rows in panels for label in rows["segment"].to_list())
    label_width = 12 + CHAR * labels
    panel_width = label_width + PLOT + GAP
    columns = min(COLUMNS, len(panels))
    lines = [panels[i:i + columns] for i in range(0, len(panels), columns)]
    heights = [TITLE + ROW * max(rows.height for _, rows in line) + AXIS for line in lines]
    width = 2 * MARGIN + columns * panel_width - GAP + 16  # 16: room for the last tick label, centred on the edge
    height = 2 * MARGIN + HEAD + sum(heights) + GAP * (len(lines) - 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
             f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" '
             f'font-size="{FONT}">', f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>',
             f'<text x="{MARGIN}" y="{MARGIN + 14}" font-size="{FONT + 2}" font-weight="bold">{_text(metric)} by '
             "segment: candidate − baseline (paired delta and its interval; each panel on its own scale)</text>"]
    top_y = float(MARGIN + HEAD)
    for line, line_height in zip(lines, heights, strict=True):
        for column, (policy, rows) in enumerate(line):
            parts += _panel(rows, policy, MARGIN + column * panel_width, label_width, top_y)
        top_y += line_height + GAP
    parts.append("</svg>")
    return "".join(parts).encode()


def _panel(rows: pl.DataFrame, policy: str, start: float, label_width: float, top: float) -> list[str]:
    """One candidate's panel at (`start`, `top`): title, a line per segment (ALL first), 0 line, ticks."""
    left = start + label_width  # the axis
    low_x, high_x = focus_limits(rows, None)
    delta = rows["delta"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    low = rows["delta_ci_low"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    high = rows["delta_ci_high"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    colors = np.where(low > 0, UP, np.where(high < 0, DOWN, NEUTRAL))
    flagged = (rows["flag"].fill_null("") != "").to_numpy()

    def x(value: float) -> float:
        return left + (min(max(value, low_x), high_x) - low_x) / (high_x - low_x) * PLOT

    first, bottom = top + TITLE, top + TITLE + ROW * rows.height
    parts = [f'<text x="{start:.1f}" y="{top + 14:.1f}"><tspan font-weight="bold">{_text(policy)}</tspan>: ALL and '
             f'the {rows.height - 1} largest moves</text>',
             f'<rect x="{left:.1f}" y="{first - 4:.1f}" width="{PLOT}" height="{bottom - first + 8:.1f}" '
             'fill="none" stroke="#b0bec5"/>']
    for tick in _ticks(low_x, high_x):
        parts.append(f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{first - 4:.1f}" y2="{bottom + 4:.1f}" '
                     'stroke="#eceff1"/>'
                     f'<text x="{x(tick):.1f}" y="{bottom + 18:.1f}" text-anchor="middle">{_text(number(tick))}</text>')
    parts.append(f'<line x1="{x(0.0):.1f}" x2="{x(0.0):.1f}" y1="{first - 4:.1f}" y2="{bottom + 4:.1f}" '
                 'stroke="black"/>')
    for i, label in enumerate(rows["segment"].to_list()):
        y = first + ROW * i + ROW / 2
        parts.append(f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end">{_text(label)}</text>')
        if math.isfinite(low[i]) and math.isfinite(high[i]):
            parts.append(f'<line x1="{x(low[i]):.1f}" x2="{x(high[i]):.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                         f'stroke="{colors[i]}" stroke-width="2"/>')
            parts += [_cut(x(end), y, side, colors[i]) for end, side in ((low[i], -1), (high[i], 1))
                      if (end < low_x if side < 0 else end > high_x)]
        if math.isfinite(delta[i]):
            fill = "white" if flagged[i] else colors[i]
            parts.append(f'<circle cx="{x(delta[i]):.1f}" cy="{y:.1f}" r="3.5" fill="{fill}" stroke="{colors[i]}"/>')
    return parts


def _cut(edge: float, y: float, side: int, color: str) -> str:
    """An arrowhead at the panel's edge where an interval goes on beyond it (`side` −1: left, 1: right)."""
    tip, back = edge + 3 * side, edge - 4 * side
    return f'<path d="M{back:.1f},{y - 4:.1f} L{tip:.1f},{y:.1f} L{back:.1f},{y + 4:.1f}" fill="{color}"/>'


def _ticks(low: float, high: float, count: int = 5) -> np.ndarray:
    """About `count` round values (1, 2, 2.5 or 5 × 10^k apart) inside [low, high]."""
    span = high - low
    if not (math.isfinite(span) and span > 0):
        return np.zeros(0)
    raw = span / count
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw)
    ticks = np.arange(math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9) + 1) * step  # -0.3 / 0.1 = -2.99…96
    return np.where(np.abs(ticks) < step * 1e-9, 0.0, ticks)  # -0.0 and 1e-17 read as 0


def _text(value: str) -> str:
    """Text for SVG markup."""
    return html.escape(value, quote=False)
