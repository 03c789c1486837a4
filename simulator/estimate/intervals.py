"""Confidence intervals from an estimate and its uncertainty, vectorised over segments.

- `normal`: estimate ± z·se (CLT / delta method).
- `student`: estimate ± t_df·se, df from the effective number of explored rows (stratified SNIPW).
- `gamma`: Fay & Feuer (1997), built for weighted sums of rare counts such as
  directly standardised rates. The estimate is treated as a gamma variable with
  the estimate's mean and variance; the upper limit adds one more event of size
  `event` (the largest weight times a typical value), which keeps the interval
  honest when the few rows that carry a rare outcome were never explored (a
  CLT interval then collapses to a point). It tends to the normal interval as
  events accumulate.
- `percentile`: bootstrap replicates' quantiles.
"""

from __future__ import annotations

import numpy as np
from scipy import special


def _tails(confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    return alpha, 1.0 - alpha


def normal_quantile(confidence: float) -> float:
    """The normal's upper quantile of a two-sided interval (scipy.stats.norm.ppf, without importing scipy.stats)."""
    return float(special.ndtri(_tails(confidence)[1]))


def normal(estimate: np.ndarray, se: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """estimate ∓ z·se."""
    z = normal_quantile(confidence)
    return estimate - z * se, estimate + z * se


def student(estimate: np.ndarray, se: np.ndarray, df: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """estimate ∓ t_df·se: the CLT interval with the quantile of a t on `df` degrees of freedom (∞: normal).

    A Hájek mean over m explored rows estimates its variance from those m rows; with few of
    them the studentised estimate has heavier tails than a normal (Student 1908; the issue's
    "t quantiles on the effective number of contributing rows").
    """
    t = t_quantile(df, confidence)
    return estimate - t * se, estimate + t * se


def t_quantile(df: np.ndarray, confidence: float) -> np.ndarray:
    """The upper quantile of a two-sided interval from a t on `df` degrees of freedom (∞: the normal's)."""
    df = np.asarray(df, dtype=np.float64)
    upper = _tails(confidence)[1]  # scipy's t.ppf and norm.ppf are these functions behind argument checks
    return np.where(np.isfinite(df), special.stdtrit(np.maximum(np.nan_to_num(df, posinf=1e9), 1.0), upper),
                    special.ndtri(upper))


def gamma(
    estimate: np.ndarray, variance: np.ndarray, event: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fay–Feuer gamma interval for a non-negative total (estimate ≥ 0, event ≥ 0)."""
    low_q, high_q = _tails(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        shape = estimate**2 / variance
        low = np.where(variance > 0, _gamma_ppf(low_q, np.where(variance > 0, shape, 1.0)) * variance / estimate, estimate)
        low = np.where(estimate > 0, low, 0.0)
        plus_mean, plus_var = estimate + event, variance + event**2
        high = np.where(
            plus_var > 0,
            _gamma_ppf(high_q, np.where(plus_var > 0, plus_mean**2 / plus_var, 1.0)) * plus_var / plus_mean,
            estimate,
        )
    undefined = np.isnan(estimate) | np.isnan(variance)  # an unknown input is an unknown interval, not an exact one
    return np.where(undefined, np.nan, low), np.where(undefined, np.nan, np.maximum(high, estimate))


def _gamma_ppf(q: float, shape: np.ndarray) -> np.ndarray:
    """Quantile q of Gamma(shape, 1), computed once per distinct shape.

    The inverse incomplete gamma function costs ~1 µs per value; a sweep asks for
    it on every (segment, grid point), where points that differ only in score bins
    a segment has no rows in share their totals, hence their shape.
    """
    shape = np.asarray(shape, dtype=np.float64)
    distinct, inverse = np.unique(shape, return_inverse=True)
    return special.gammaincinv(distinct, q)[inverse].reshape(shape.shape)


def percentile(replicates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles over the last axis; undefined (NaN) when any replicate is."""
    low, high = np.quantile(replicates, _tails(confidence), axis=-1)
    return low, high
