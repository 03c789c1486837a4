"""Value model: what each logged payment contributed, in counts and money (SPEC §3).

The value model is policy-independent. For each row it yields one number per
*value column* (`VALUES`), computed from the logged action and outcome; every
reported metric is then a weighted total of one value column (a sum metric) or
a ratio of two weighted totals (a ratio metric). Policies only change the
weights, so these columns are computed once per row whatever is evaluated.

Formulas (A = amount, auth/fraud/lost = the logged outcomes as 0/1, s = 1 when
the row's fraud label is mature, see `maturity_mask`):

- revenue      = margin_rate · A · auth            (the merchant's margin on approved sales)
- cost         = fee_rate · A · auth + fee_fixed · [action ≠ block] + challenge_cost · [action = challenge]
- fraud_loss   = s · fraud · (lost · A + dispute_fee), and 0 on challenged rows when
                 `liability_shift` (the issuer bears fraud on authenticated payments)
- net_value    = s · (revenue − cost) − fraud_loss   (over the mature rows, so that revenue
                 and fraud loss cover the same payments)

Fraud metrics (`fraud_count`, `fraud_volume`, `fraud_loss`, `net_value`, the
block-quality metrics and `fraud_rate_bps`) cover only rows with mature labels
unless `[data] immature_labels = "include"`; the others cover every row. Under
`"develop"` (the default) "mature" means old enough to develop and each fraud
label counts 1 / Ĝ(age) (`simulator.model.maturity`): fraud = s · w · fraud_raw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulator.schema import (
    ACTION,
    AMOUNT,
    AUTHORIZED,
    BLOCK,
    CHALLENGE,
    CREATED_AT,
    DISPUTE_LOST,
    FRAUD_DISPUTE,
)

if TYPE_CHECKING:  # annotations only: the config validates [review] and [sweep] metric names against this module
    from simulator.config import ValueModel


class Weighting(Enum):
    """How a policy re-weights a row for a metric.

    TARGET:  π(a_logged | x) / propensity — what the policy would have done.
    BLOCKED: [a_logged = allow] · π(block | x) / propensity — payments the policy
             blocks, seen through the rows the logging policy let through.
    ALLOWED: [a_logged = allow] / propensity — every payment as if allowed
             (policy-independent; the denominator of block recall).
    """

    TARGET = "target"
    BLOCKED = "blocked"
    ALLOWED = "allowed"


# Value columns, in a fixed order: the columns of the per-row value matrix.
VALUES: tuple[str, ...] = (
    "one",
    "amount",
    "mature",
    "authorized",
    "authorized_volume",
    "blocked",
    "challenged",
    "fraud",
    "fraud_volume",
    "legit_authorized",
    "mature_authorized",
    "mature_authorized_volume",
    "revenue",
    "cost",
    "fraud_loss",
    "net_value",
)


@dataclass(frozen=True, slots=True)
class SumMetric:
    """A total of one value column under one weighting, over a population.

    `population` names the value column that says which rows the metric covers
    ("one" = every row, "mature" = rows with mature fraud labels); the
    self-normalised estimator rescales by it.
    """

    name: str
    value: str
    weighting: Weighting = Weighting.TARGET
    population: str = "one"


@dataclass(frozen=True, slots=True)
class RatioMetric:
    """A ratio of two sum metrics' totals, times `scale`."""

    name: str
    numerator: SumMetric
    denominator: SumMetric
    scale: float = 1.0
    proportion: bool = True  # a share of its denominator: intervals stay within [0, 1]


_T, _B, _A = Weighting.TARGET, Weighting.BLOCKED, Weighting.ALLOWED

SUM_METRICS: tuple[SumMetric, ...] = (
    SumMetric("attempts", "one"),
    SumMetric("authorized_count", "authorized"),
    SumMetric("authorized_volume", "authorized_volume"),
    SumMetric("blocked_count", "blocked"),
    SumMetric("challenged_count", "challenged"),
    SumMetric("fraud_count", "fraud", population="mature"),
    SumMetric("fraud_volume", "fraud_volume", population="mature"),
    SumMetric("revenue", "revenue"),
    SumMetric("cost", "cost"),
    SumMetric("fraud_loss", "fraud_loss", population="mature"),
    SumMetric("net_value", "net_value", population="mature"),
    SumMetric("blocked_fraud_count", "fraud", _B, population="mature"),
    SumMetric("blocked_legit_count", "legit_authorized", _B, population="mature"),
)
_BY_NAME = {m.name: m for m in SUM_METRICS}

RATIO_METRICS: tuple[RatioMetric, ...] = (
    RatioMetric("auth_rate", _BY_NAME["authorized_count"], _BY_NAME["attempts"]),
    RatioMetric("block_rate", _BY_NAME["blocked_count"], _BY_NAME["attempts"]),
    RatioMetric(
        "fraud_rate_bps",
        _BY_NAME["fraud_volume"],
        SumMetric("mature_authorized_volume", "mature_authorized_volume", population="mature"),
        scale=10_000.0,
        proportion=False,
    ),
    RatioMetric(
        "block_precision",
        _BY_NAME["blocked_fraud_count"],
        SumMetric("blocked_authorized", "mature_authorized", _B, population="mature"),
    ),
    RatioMetric(
        "block_recall",
        _BY_NAME["blocked_fraud_count"],
        SumMetric("carried_fraud_count", "fraud", _A, population="mature"),
    ),
)

METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in SUM_METRICS) + tuple(r.name for r in RATIO_METRICS)


def maturity_cutoff(as_of: datetime, label_maturity_days: int) -> datetime:
    """Rows created after this instant have fraud labels that may still change."""
    return as_of - timedelta(days=label_maturity_days)


def maturity_mask(cutoff: datetime | None) -> pl.Expr:
    """1.0 for rows whose fraud labels are mature (all rows when `cutoff` is None)."""
    if cutoff is None:
        return pl.lit(1.0)
    return (pl.col(CREATED_AT) <= pl.lit(cutoff)).cast(pl.Float64)


def value_exprs(model: ValueModel, cutoff: datetime | None, mature: pl.Expr | None = None,
                develop: pl.Expr | None = None) -> list[pl.Expr]:
    """Expressions for every column of `VALUES`, in order, from the logged outcome.

    Nulls in the outcome columns follow SPEC §2 (null = did not happen) and count as 0.
    `mature` overrides the maturity mask derived from `cutoff` (for tables of patterns).
    `develop` is the fraud label's weight (1 / Ĝ(age) under `immature_labels = "develop"`,
    `simulator.model.maturity`; 1 when None): every value column is affine in it.
    """
    amount = pl.col(AMOUNT).cast(pl.Float64)
    auth = pl.col(AUTHORIZED).fill_null(False).cast(pl.Float64)
    fraud_raw = pl.col(FRAUD_DISPUTE).fill_null(False).cast(pl.Float64)
    lost = pl.col(DISPUTE_LOST).fill_null(False).cast(pl.Float64)
    is_block = (pl.col(ACTION) == BLOCK).cast(pl.Float64)
    is_challenge = (pl.col(ACTION) == CHALLENGE).cast(pl.Float64)
    mature = maturity_mask(cutoff) if mature is None else mature
    fraud = mature * fraud_raw * (pl.lit(1.0) if develop is None else develop)
    revenue = model.margin_rate * amount * auth
    cost = model.fee_rate * amount * auth + model.fee_fixed * (1.0 - is_block) + model.challenge_cost * is_challenge
    shifted = is_challenge if model.liability_shift else pl.lit(0.0)
    fraud_loss = fraud * (lost * amount + model.dispute_fee) * (1.0 - shifted)
    exprs = {
        "one": pl.lit(1.0),
        "amount": amount,
        "mature": mature,
        "authorized": auth,
        "authorized_volume": amount * auth,
        "blocked": is_block,
        "challenged": is_challenge,
        "fraud": fraud,
        "fraud_volume": fraud * amount,
        "legit_authorized": mature * auth - fraud * auth,  # = mature·auth·(1 − fraud) when not developed
        "mature_authorized": mature * auth,
        "mature_authorized_volume": mature * amount * auth,
        "revenue": revenue,
        "cost": cost,
        "fraud_loss": fraud_loss,
        "net_value": mature * (revenue - cost) - fraud_loss,
    }
    return [exprs[name].alias(name) for name in VALUES]


_PER_AMOUNT = {"authorized_volume", "fraud_volume", "mature_authorized_volume", "amount"}
SIGNED_VALUES = frozenset({"net_value"})  # the only value column that can be negative


def event_size(value: str, model: ValueModel, mean_amount: np.ndarray) -> np.ndarray:
    """A typical single row's contribution to a value column (for rare-event intervals)."""
    if value in _PER_AMOUNT:
        return mean_amount
    if value == "revenue":
        return model.margin_rate * mean_amount
    if value == "cost":
        return model.fee_rate * mean_amount + model.fee_fixed + model.challenge_cost
    if value == "fraud_loss":
        return mean_amount + model.dispute_fee
    if value == "net_value":
        return model.margin_rate * mean_amount + model.fee_fixed + model.challenge_cost + model.dispute_fee
    return np.ones_like(mean_amount)
