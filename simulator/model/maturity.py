"""Developing immature fraud labels from the observed dispute delays (SPEC §2, §5).

A fraudulent dispute arrives `delay` days after its payment; at the as-of date
a row of age a shows its eventual dispute only if delay ≤ a. With
G(t) = P(delay ≤ t), the observed fraud O of a row is, on average, its eventual
fraud F times G(age), so O / G(age) is unbiased for F (inverse-probability-of-
censoring weighting). `[data] immature_labels = "develop"` weights every fraud
value of a row (fraud_count, fraud_volume, fraud_loss, the fraud part of
net_value and of the block-quality metrics) by 1 / Ĝ(age) instead of dropping
recent rows.

Ĝ is fitted once on the driver from one lazy aggregation of the observed
disputes by (delay day, age day), so every shard uses the same curve. A
dispute of delay day k (delay in [k, k + 1) days) on a row of age day m is
observed for certain when m ≥ k + 1, so among rows aged at least t + 1 days
the observed disputes with delay day ≤ t are all the eventual ones, and
r(t) = P(delay day = t | delay day ≤ t) is estimated by

    r̂(t) = E(t) / R(t),  E(t) = #{k = t, m ≥ t + 1},  R(t) = #{k ≤ t, m ≥ t + 1},

the reverse-time hazard of right-truncated data (Lynden-Bell 1971). Then
Ĝ(t) = P(delay day ≤ t) = Π_{s > t} (1 − r̂(s)), with Ĝ = 1 from the longest
delay seen on (a log shorter than the dispute window cannot see later
disputes), and Var(log Ĝ(t)) = Σ_{s > t} E(s) / (R(s) (R(s) − E(s))), the
Greenwood form. Assumption: the delay distribution is the same for every row
(it does not depend on the segment, the amount or the creation date).

A row of age day m is aged between m and m + 1 days, so its probability of
showing its dispute lies between Ĝ(m − 1) and Ĝ(m); the weight uses their mean.
Rows where that is below `MIN_SHARE` (the youngest weeks, where weights would
explode) are left out of the fraud metrics, like immature rows in "exclude"
mode, and every output says so: a row with weight w adds w times the variance
of a fully mature row's fraud, and a row of weight ≤ 2 lowers the variance of
the per-row fraud rate of rows whose mean weight is ≥ 1, so 1 / MIN_SHARE = 2
keeps every row that cannot make the estimate worse and drops the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from simulator.schema import CREATED_AT, DISPUTED_AT, FRAUD_DISPUTE

MIN_SHARE = 0.5  # rows whose expected share of arrived disputes is below this are left out of fraud metrics
DAY_US = 86_400_000_000
_DELAY, _AGE = "_delay_day", "_age_day"


@dataclass(frozen=True, slots=True, eq=False)
class DelayCurve:
    """Ĝ on daily bins: `share[t]` = P(delay < t + 1 days); 1 from the last entry on.

    `hazard`, `events` and `at_risk` are r̂(t), E(t) and R(t) of the module docstring.
    """

    share: np.ndarray
    log_variance: np.ndarray  # Var(log Ĝ(t)), Greenwood form (inf where Ĝ(t) = 0)
    hazard: np.ndarray
    events: np.ndarray
    at_risk: np.ndarray

    def at(self, day: np.ndarray) -> np.ndarray:
        """Ĝ at integer delay days (0 before day 0, 1 after the last)."""
        day = np.asarray(day)
        inside = self.share[np.clip(day, 0, len(self.share) - 1)]
        return np.where(day < 0, 0.0, np.where(day >= len(self.share), 1.0, inside))

    def row_share(self, age_day: np.ndarray) -> np.ndarray:
        """Expected share of disputes arrived for a row aged `age_day` whole days: mean of Ĝ(m − 1), Ĝ(m)."""
        age_day = np.asarray(age_day)
        return 0.5 * (self.at(age_day - 1) + self.at(age_day))


def fit_delay_curve(counts: np.ndarray) -> DelayCurve:
    """Ĝ from `counts[k, m]`: observed disputes of delay day k on rows of age day m (k ≤ m)."""
    counts = np.asarray(counts, dtype=np.float64)
    delays, ages = counts.shape
    if delays == 0:
        empty = np.zeros(0)
        return DelayCurve(share=np.ones(1), log_variance=np.zeros(1), hazard=empty, events=empty, at_risk=empty)
    older = np.zeros((delays, ages + 2))  # older[k, j] = disputes of delay day k on rows of age day ≥ j
    older[:, :ages] = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
    t = np.arange(delays)
    events = older[t, t + 1]
    at_risk = np.cumsum(older[:, 1:delays + 1], axis=0)[t, t]  # Σ_{k ≤ t} older[k, t + 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, events / at_risk, 0.0)
        increment = np.where(at_risk > events, events / (at_risk * (at_risk - events)), np.where(events > 0, np.inf, 0.0))
    # Ĝ(t) = Π_{s > t} (1 − r̂(s)): a reverse cumulative product, shifted by one.
    survive = np.concatenate([np.cumprod((1.0 - hazard)[::-1])[::-1][1:], [1.0]])
    log_variance = np.concatenate([np.cumsum(increment[::-1])[::-1][1:], [0.0]])
    return DelayCurve(share=survive, log_variance=log_variance, hazard=hazard, events=events, at_risk=at_risk)


def age_days(as_of: datetime) -> pl.Expr:
    """Whole days from a row's creation to `as_of` (negative for rows created after it)."""
    return ((pl.lit(as_of) - pl.col(CREATED_AT)).dt.total_microseconds() // DAY_US).cast(pl.Int64)


def delay_counts(data: pl.LazyFrame, as_of: datetime) -> np.ndarray:
    """`counts[k, m]` of `fit_delay_curve`, from one lazy aggregation over the disputed rows.

    Disputes arriving after `as_of` are not in the log as of that date and are left out.
    """
    delay = ((pl.col(DISPUTED_AT) - pl.col(CREATED_AT)).dt.total_microseconds() // DAY_US).clip(0).cast(pl.Int64)
    arrived = pl.col(FRAUD_DISPUTE).fill_null(False) & pl.col(DISPUTED_AT).is_not_null() \
        & (pl.col(DISPUTED_AT) <= pl.lit(as_of))
    grouped = (data.filter(arrived).select(delay.alias(_DELAY), age_days(as_of).alias(_AGE))
               .group_by(_DELAY, _AGE).len().collect())
    if grouped.is_empty():
        return np.zeros((0, 0))
    k, m, n = (grouped[c].to_numpy() for c in (_DELAY, _AGE, "len"))
    m = np.maximum(m, k)  # a dispute cannot be older than its payment's age; guards clock skew
    counts = np.zeros((int(k.max()) + 1, int(m.max()) + 1))
    np.add.at(counts, (k, m), n)
    return counts


@dataclass(frozen=True, slots=True, eq=False)
class Development:
    """How a run develops fraud labels: the curve, who is left out, and each age's weight.

    `levels` holds the weight of every development code a row can carry: code 0
    is weight 1 (no fraud, or not developed), code 1 + m the weight 1 / Ĝ of a
    fraud row of age day m (ages past the table share its last entry, 1).
    `relative_variance` is the curve's share of a developed total's variance,
    Var_Ĝ(T̂) / T̂², under the age profile of the log's developed disputes.
    """

    as_of: datetime
    curve: DelayCurve
    min_age_days: int
    levels: np.ndarray
    relative_variance: float
    disputes: int

    @property
    def cutoff(self) -> datetime:
        """Rows created after this instant are too young to develop and are left out of the fraud metrics."""
        return self.as_of - timedelta(days=self.min_age_days)

    def code_expr(self) -> pl.Expr:
        """Each row's development code (see `levels`): nonzero only for fraud rows old enough to develop."""
        developed = pl.col(FRAUD_DISPUTE).fill_null(False) & (pl.col(CREATED_AT) <= pl.lit(self.cutoff))
        code = age_days(self.as_of).clip(0, len(self.levels) - 2) + 1
        return pl.when(developed).then(code).otherwise(0).cast(pl.Int64)

    def weight_expr(self) -> pl.Expr:
        """Each row's fraud weight 1 / Ĝ(age) by age alone (0 below the minimum age), for lazy value columns."""
        code = age_days(self.as_of).clip(0, len(self.levels) - 2) + 1
        return pl.lit(pl.Series(self.levels)).gather(code)

    def summary(self) -> dict[str, Any]:
        """What outputs record about the curve."""
        days = [30, 60, 90, 120, 180]
        return {
            "disputes_observed": self.disputes,
            "min_age_days": self.min_age_days,
            "fraud_labels_developed_from": self.cutoff.isoformat(),
            "arrived_share_by_age_days": {str(d): round(float(self.curve.row_share(np.array(d))), 4) for d in days},
            "curve_relative_se": round(float(np.sqrt(self.relative_variance)), 5),
        }


def development(counts: np.ndarray, as_of: datetime) -> Development:
    """Fit the curve and tabulate the weights, the minimum age and the curve's variance share."""
    curve = fit_delay_curve(counts)
    horizon = max(len(curve.share), counts.shape[1] if counts.ndim == 2 else 0) + 1
    ages = np.arange(horizon)
    share = curve.row_share(ages)
    min_age = int(np.argmax(share >= MIN_SHARE))  # share is non-decreasing and ends at 1
    with np.errstate(divide="ignore"):
        weight = np.where(ages >= min_age, 1.0 / share, 0.0)
    weight[-1] = 1.0  # ages past the table: every dispute has arrived
    levels = np.concatenate([[1.0], weight])
    disputes_by_age = counts.sum(axis=0) if counts.size else np.zeros(0)
    return Development(as_of=as_of, curve=curve, min_age_days=min_age, levels=levels,
                       relative_variance=curve_variance_share(curve, disputes_by_age, weight, min_age),
                       disputes=int(counts.sum()))


def curve_variance_share(curve: DelayCurve, disputes_by_age: np.ndarray, weight: np.ndarray, min_age: int) -> float:
    """Var_Ĝ(T̂) / T̂² by the delta method, for a total whose developed disputes have the log's age profile.

    T̂ = Σ_m D_m with D_m = n_m / Ĝ(m); log Ĝ(m) = Σ_{s > m} log(1 − r̂(s)) with independent
    increments of variance v_s, so Var_Ĝ(T̂) = Σ_s v_s (Σ_{m < s} D_m)².
    """
    ages = np.arange(len(disputes_by_age))
    developed = np.where(ages >= min_age, disputes_by_age * weight[np.clip(ages, 0, len(weight) - 1)], 0.0)
    total = developed.sum()
    if total <= 0 or len(curve.events) == 0:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(curve.at_risk > curve.events, curve.events / (curve.at_risk * (curve.at_risk - curve.events)), 0.0)
    below = np.concatenate([[0.0], np.cumsum(developed)])  # below[s] = Σ_{m < s} D_m
    s = np.arange(len(v))
    share_below = below[np.clip(s, 0, len(below) - 1)] / total
    return float(np.sum(v[s >= min_age] * share_below[s >= min_age] ** 2))


def develop_labels(data: pl.LazyFrame, names: set[str], as_of: datetime) -> tuple[Development | None, tuple[str, ...]]:
    """The development of a log's fraud labels, or None and why not (a warning for every output)."""
    if DISPUTED_AT not in names:
        return None, (_no_delays("the data has no disputed_at column"),)
    counts = delay_counts(data, as_of)
    if counts.sum() == 0:
        return None, (_no_delays("no fraud dispute with a disputed_at arrived by the as-of date"),)
    return development(counts, as_of), ()


def _no_delays(why: str) -> str:
    return (f"labels: immature_labels = \"develop\" needs observed dispute delays ({why}); fraud metrics fall back "
            "to \"exclude\": they cover rows older than label_maturity_days")
