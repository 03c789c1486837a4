"""Matplotlib figures of results, for the review report and for notebooks.

Figures are built with `matplotlib.figure.Figure` directly (not pyplot), so no
GUI backend and no global figure registry is involved: building one in a
server or a test is safe, and `figure_png` renders it with Agg.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:  # matplotlib loads when a figure is drawn, not when the package is imported
    from matplotlib.figure import Figure

from simulator.errors import PolicysimError, UnknownName
from segments.labels import ALL

UP = "#2e7d32"  # interval entirely above 0
DOWN = "#c62828"  # interval entirely below 0
NEUTRAL = "#546e7a"  # interval contains 0


def _policy(results: pl.DataFrame, policy: str | None) -> str:
    """The policy to plot: the given one, or the only one whose deltas are not all zero."""
    names = results["policy"].unique(maintain_order=True).to_list()
    if policy is not None:
        if policy not in names:
            raise UnknownName("policy", policy, names)
        return policy
    moving = results.group_by("policy", maintain_order=True).agg(pl.col("delta").abs().max().alias("m")).filter(
        pl.col("m") > 0)["policy"].to_list()
    if len(moving) != 1:
        raise PolicysimError(f"give policy=...: {len(moving)} policies move in these results, of {names}")
    return str(moving[0])


def forest_rows(results: pl.DataFrame, metric: str, *, policy: str | None = None,
                segmentation: str | None = None, top: int = 25, min_rows: int = 0) -> pl.DataFrame:
    """The rows a forest plot shows: ALL, then the `top` segments with the largest |delta|, largest first.

    Segments without a delta (flagged no_support or unidentified) cannot be drawn and are left out, and so
    are segments with fewer than `min_rows` payments (a tiny segment's delta is large and its interval huge:
    "largest moves" would otherwise pick 8-row segments).
    """
    chosen = _policy(results, policy)
    rows = results.filter((pl.col("policy") == chosen) & (pl.col("metric") == metric) & pl.col("delta").is_not_null()
                          & ((pl.col("segment") == ALL) | (pl.col("rows") >= min_rows)))
    if segmentation is not None:
        rows = rows.filter((pl.col("segmentation") == segmentation) | (pl.col("segment") == ALL))
    overall = rows.filter(pl.col("segment") == ALL)
    others = rows.filter(pl.col("segment") != ALL).sort(pl.col("delta").abs(), descending=True).head(top)
    return pl.concat([overall, others])


def forest_plot(results: pl.DataFrame, metric: str, *, policy: str | None = None, segmentation: str | None = None,
                top: int = 25, limit: float | None = None, min_rows: int = 0, focus: bool = False) -> Figure:
    """Per-segment paired deltas of one metric with their intervals (one line per segment, ALL on top).

    Green: the interval lies above 0; red: below 0; grey: it contains 0. Hollow
    markers are flagged estimates (low_ess). `limit` draws a guardrail's bound.
    `min_rows` leaves out smaller segments; `focus` keeps the axis on ALL, 0, the
    limit and the middle 80 % of the segments' interval ends, so that one very wide
    interval does not squeeze the rest into a line (it is cut at the edge).

    Example::

        result = run(config, Path("data/transactions"), engine="local")
        forest_plot(result.results, "net_value", policy="stricter", segmentation="card_country", top=15)
    """
    rows = forest_rows(results, metric, policy=policy, segmentation=segmentation, top=top, min_rows=min_rows)
    height = 1.2 + 0.28 * max(rows.height, 1)
    labels = rows["segment"].to_list()
    label_inches = 0.3 + 0.062 * max((len(label) for label in labels), default=3)  # fontsize 8
    width = 4.8 + label_inches
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    # fixed margins, not a layout engine: constrained layout measures every text and triples the time
    figure.subplots_adjust(left=label_inches / width, right=0.97, top=1 - 0.4 / height, bottom=0.65 / height)
    axes = figure.add_subplot()
    delta = rows["delta"].to_numpy()
    low = rows["delta_ci_low"].fill_null(np.nan).to_numpy()
    high = rows["delta_ci_high"].fill_null(np.nan).to_numpy()
    colors = np.where(low > 0, UP, np.where(high < 0, DOWN, NEUTRAL))
    flagged = (rows["flag"].fill_null("") != "").to_numpy()
    y = np.arange(rows.height)[::-1]
    axes.hlines(y, low, high, colors=colors, linewidth=2)
    axes.scatter(delta[~flagged], y[~flagged], c=colors[~flagged], zorder=3, s=24)
    axes.scatter(delta[flagged], y[flagged], facecolors="white", edgecolors=colors[flagged], zorder=3, s=24)
    axes.axvline(0.0, color="black", linewidth=0.8)
    if limit is not None:
        axes.axvline(limit, color="#ef6c00", linestyle="--", linewidth=1, label=f"guardrail limit {limit:g}")
        axes.legend(loc="lower right", fontsize=8)
    if focus:
        axes.set_xlim(*focus_limits(rows, limit))
    axes.set_yticks(y, labels, fontsize=8)
    axes.set_xlabel(f"{metric}: candidate − baseline (paired delta, interval)")
    axes.set_title(f"{metric} by segment (ALL and the {rows.height - 1} largest moves)", fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    return figure


def focus_limits(rows: pl.DataFrame, limit: float | None) -> tuple[float, float]:
    """x limits: ALL's interval, 0, the limit and the 10th–90th percentiles of the segments' interval ends."""
    ends = np.concatenate([rows["delta_ci_low"].drop_nulls().to_numpy(), rows["delta_ci_high"].drop_nulls().to_numpy(),
                           rows["delta"].drop_nulls().to_numpy()])
    ends = ends[np.isfinite(ends)]
    overall = rows.filter(pl.col("segment") == ALL)
    keep = [0.0] + ([limit] if limit is not None else [])
    if overall.height:
        keep += [v for v in overall.select("delta_ci_low", "delta_ci_high", "delta").row(0) if v is not None]
    low, high = (min(np.quantile(ends, 0.1), *keep), max(np.quantile(ends, 0.9), *keep)) if ends.size else (-1.0, 1.0)
    pad = 0.08 * (high - low or 1.0)
    return low - pad, high + pad


def calibration_plot(calibration_frame: pl.DataFrame) -> Figure:
    """Reliability curves: mean logged score against the observed rate per score bin, one panel per score.

    Points on the diagonal are calibrated; error bars are ±2 binomial standard
    errors; marker area grows with the rows in the bin. Axes are zoomed to the
    data, so a fraud score near 0 stays readable.

    Example::

        calibration_plot(calibrations(pl.scan_parquet("data/transactions/*.parquet"), cutoff=None))
    """
    scores = calibration_frame["score"].unique(maintain_order=True).to_list()
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.0 * max(len(scores), 1), 4.4))
    figure.subplots_adjust(left=0.09, right=0.98, top=0.92, bottom=0.12, wspace=0.25)
    for index, score in enumerate(scores):
        curve = calibration_frame.filter(pl.col("score") == score).sort("bin")
        axes = figure.add_subplot(1, len(scores), index + 1)
        x, obs = curve["mean_score"].to_numpy(), curve["observed_rate"].to_numpy()
        err = 2 * curve["observed_se"].to_numpy()
        rows = curve["rows"].to_numpy()
        low = float(min(np.min(x), np.min(obs - err), 1.0)) if curve.height else 0.0
        high = float(max(np.max(x), np.max(obs + err), 0.0)) if curve.height else 1.0
        pad = 0.05 * max(high - low, 1e-3)
        lo, hi = max(low - pad, 0.0), min(high + pad, 1.0)
        axes.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
        axes.errorbar(x, obs, yerr=err, fmt="none", ecolor="#90a4ae", elinewidth=1)
        axes.scatter(x, obs, s=12 + 60 * rows / max(rows.max(initial=1), 1), color="#1565c0", zorder=3,
                     label="score bin")
        axes.plot(x, obs, color="#1565c0", linewidth=1)
        axes.set_xlim(lo, hi)
        axes.set_ylim(lo, hi)
        if hi > 50 * max(float(np.min(x, initial=1.0)), 1e-6):  # a skewed score: spread the crowded low bins
            axes.set_xscale("symlog", linthresh=1e-3)
            axes.set_yscale("symlog", linthresh=1e-3)
        outcome = curve["outcome"][0] if curve.height else ""
        axes.set_xlabel(f"mean {score} in bin")
        axes.set_ylabel(f"observed {outcome} rate")
        axes.set_title(f"{score} vs {outcome} ({int(rows.sum()):,} rows)", fontsize=10)
        axes.grid(alpha=0.3)
        axes.legend(loc="upper left", fontsize=8)
    return figure


def figure_png(figure: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (rendered with Agg).

    Example::

        Path("net_value.png").write_bytes(figure_png(forest_plot(result.results, "net_value")))
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
