"""How numbers read in every report, table, plot and recommendation: one module, so they read alike.

- `number` — compact (1.23M, 45.6k, 0.912), for plots and the recommendation's reasons;
- `compact` — the same, signed or not and "—" when missing, for the sweep's table of top points;
- `table_number` — money with thousands separators, rates to 4 digits (the exploration-cost line);
- `glance`, `glance_interval` — per metric, 3 significant digits, for the CLI's 80-column tables:
  money and counts with k/M/B, rates in % (deltas in pp), fraud in bps;
- `format_value`, `format_interval`, `format_relative` — per metric, for the review report:
  money with 2 decimals, rates in % (deltas in pp), fraud in bps.
"""

from __future__ import annotations

import math

import numpy as np

MONEY_METRICS = frozenset({"authorized_volume", "revenue", "cost", "fraud_loss", "net_value", "fraud_volume"})
PERCENT_METRICS = frozenset({"auth_rate", "block_rate", "block_precision", "block_recall"})
BPS_METRICS = frozenset({"fraud_rate_bps"})


def number(value: float | None) -> str:
    """A compact human number: 1.23M, 45.6k, 11.7, 0.912; "n/a" for a missing value."""
    if value is None or not np.isfinite(value):
        return "n/a"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def signed_number(value: float | None) -> str:
    """`number` with a + on positive values, for deltas: +162k, -4.63k, n/a."""
    text = number(value)
    return f"+{text}" if value is not None and value > 0 else text


def compact(value: float | None, signed: bool = False) -> str:
    """1.23M, 45.6k, 11.7, 0.912 (3 significant digits), with a + on positive values when `signed`; "—" when missing.

    `number` without the sign, and with "—" for a missing value, as tables show it.
    """
    if value is None or not math.isfinite(value):
        return "—"
    sign = "+" if signed and value > 0 else ""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{sign}{value / size:.3g}{suffix}"
    return f"{sign}{value:.3g}"


def table_number(value: float | None) -> str:
    """A number for a table: rates to 4 significant digits, money with thousands separators; "—" when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def format_value(metric: str, value: float | None, *, delta: bool = False) -> str:
    """A number as a reader wants it: money with separators and 2 decimals, rates in %, fraud in bps.

    Deltas carry a sign, and rate deltas are in percentage points (pp).
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    sign = "+" if delta else ""
    if metric in PERCENT_METRICS:
        return f"{100 * value:{sign},.2f} {'pp' if delta else '%'}"
    if metric in BPS_METRICS:
        return f"{value:{sign},.2f} bps"
    if metric in MONEY_METRICS:
        return f"{value:{sign},.2f}"
    return f"{value:{sign},.0f}" if abs(value) >= 100 else f"{value:{sign},.1f}"


def format_interval(metric: str, low: float | None, high: float | None, *, delta: bool = False) -> str:
    """`[low, high]` in the metric's format."""
    if low is None or high is None:
        return "—"
    return f"[{format_value(metric, low, delta=delta)}, {format_value(metric, high, delta=delta)}]"


def format_relative(delta: float | None, baseline: float | None) -> str:
    """delta / |baseline| in %, or — when the baseline is 0 or missing."""
    if delta is None or baseline is None or baseline == 0 or not math.isfinite(baseline):
        return "—"
    return f"{100 * delta / abs(baseline):+.2f} %"


def glance(metric: str, value: float | None, *, delta: bool = False) -> str:
    """A number a risk analyst reads at a glance, at most 8 characters: `26.9M`, `88.8%`, `-0.145pp`, `48.3`.

    3 significant digits with k/M/B for money and counts; rates in % and their
    deltas in percentage points; `fraud_rate_bps` in bps as it is. Deltas carry
    a sign; "—" when missing.
    """
    if value is None or not math.isfinite(value):
        return "—"
    if metric in PERCENT_METRICS:
        return f"{compact(100 * value, delta)}{'pp' if delta else '%'}"
    return compact(value, delta)


def glance_interval(metric: str, low: float | None, high: float | None) -> str:
    """A delta's interval in `glance`'s units without the unit (`[-0.331, +0.03]`); "—" when missing."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "—"
    scale = 100 if metric in PERCENT_METRICS else 1
    return f"[{compact(scale * low, True)}, {compact(scale * high, True)}]"
