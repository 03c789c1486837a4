"""The true counterfactual value of a policy on generated data, from its ground truth.

`policysim generate` writes every row's outcome under every action. The true
total of a sum metric under policy π is Σ_i Σ_a π(a|x_i) · y_i(a), with y_i(a)
the value column of row i had action a been taken, labels censored exactly as
in the log (a dispute counts only if it arrived by the as-of date) or, for
developed labels, every eventual dispute. Estimates
of a run on that log are checked against these numbers.

Any action set works: an action other than block reads its outcomes from the
ground truth's `authorized_<a>`, `fraud_dispute_<a>` and `dispute_lost_<a>`
(e.g. `review` in the generator's review scenario); block has none.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from segments.labels import ALL
from segments.codes import segment_codes
from simulator.config import RunConfig
from simulator.plan.compiled import compile_plan
from simulator.schema import (
    ACTION,
    ALLOW,
    AUTHORIZED,
    BLOCK,
    CREATED_AT,
    DISPUTE_LOST,
    DISPUTED_AT,
    FRAUD_DISPUTE,
    PROPENSITY,
    TRANSACTION_ID,
    logging_prob_column,
)
from simulator.model.value import SumMetric, ValueSet, Weighting


def counterfactual_log(log: pl.DataFrame, truth: pl.DataFrame, action: str, as_of: datetime,
                       censored: bool = True) -> pl.DataFrame:
    """The log as it would read had every row been given `action`.

    `censored=False` shows every eventual dispute, arrived by `as_of` or not (what developed labels estimate).
    """
    frame = log.drop(AUTHORIZED, FRAUD_DISPUTE, DISPUTE_LOST).join(truth, on=TRANSACTION_ID, how="left", validate="1:1")
    if action == BLOCK:
        outcome = [pl.lit(None, pl.Boolean).alias(c) for c in (AUTHORIZED, FRAUD_DISPUTE, DISPUTE_LOST)]
    else:
        arrived = pl.col(CREATED_AT) + pl.duration(days=pl.col("dispute_delay_days")) <= pl.lit(as_of)
        arrived = arrived if censored else pl.lit(True)
        fraud = pl.col(f"fraud_dispute_{action}")
        outcome = [
            pl.col(f"authorized_{action}").alias(AUTHORIZED),
            pl.when(fraud.is_null()).then(None).otherwise(fraud & arrived).alias(FRAUD_DISPUTE),
            pl.when(fraud & arrived).then(pl.col(f"dispute_lost_{action}")).otherwise(None).alias(DISPUTE_LOST),
        ]
    return frame.with_columns(pl.lit(action).alias(ACTION), *outcome)


def relog(log: pl.DataFrame, truth: pl.DataFrame, seed: int, as_of: datetime, actions: tuple[str, ...]) -> pl.DataFrame:
    """The same payments logged again: new logging draws, outcomes from the ground truth.

    Each row's action is redrawn from its `logging_prob_<action>`; propensity and
    outcomes follow. Repeating this gives the sampling distribution of an
    estimate over logging draws alone — what a finite-population interval covers.
    """
    probs = log.select([logging_prob_column(a) for a in actions]).to_numpy()
    uniform = np.random.default_rng(seed).random(log.height)
    drawn = np.minimum((uniform[:, None] > np.cumsum(probs, axis=1)).sum(axis=1), len(actions) - 1)
    parts = []
    for index, action in enumerate(actions):
        rows = log.filter(pl.Series(drawn == index))
        if rows.height:
            parts.append(counterfactual_log(rows, truth, action, as_of).with_columns(pl.col(logging_prob_column(action)).alias(PROPENSITY)))
    frame = pl.concat(parts).sort(TRANSACTION_ID)
    arrived = pl.col(CREATED_AT) + pl.duration(days=pl.col("dispute_delay_days"))
    frame = frame.with_columns(pl.when(pl.col(FRAUD_DISPUTE)).then(arrived).otherwise(None).alias(DISPUTED_AT))
    return frame.select(log.columns)


def _values(frame: pl.DataFrame, values: ValueSet, cutoff: datetime | None) -> np.ndarray:
    return values.evaluate(frame, cutoff).to_numpy()


def true_totals(config: RunConfig, log: pl.DataFrame, truth: pl.DataFrame, *, eventual: bool | None = None) -> pl.DataFrame:
    """True value per (policy, segmentation, segment, metric) of every policy in `config`.

    The logging policy's own truth is its observed totals, so it is left out. Fraud
    counts the disputes arrived by the as-of date, or with `eventual` every dispute
    that will arrive (default: eventual exactly when the plan develops labels, which
    is what developed estimates estimate), over the rows the plan's fraud metrics cover.
    """
    plan = compile_plan(config, log.lazy())
    actions = plan.actions
    censored = plan.development is None if eventual is None else not eventual
    by_action = {a: _values(counterfactual_log(log, truth, a, plan.as_of, censored), plan.values, plan.cutoff) for a in actions}
    allow = by_action.get(ALLOW)
    segs = [(ALL, np.zeros(log.height, dtype=np.int64), (ALL,))]
    for index, seg in enumerate(segment_codes(log, plan.segments)):
        segs.append(("|".join(plan.segments.segmentations[index]), seg.codes, seg.labels))
    rows = []
    for planned in plan.policies:
        if planned.logging:
            continue
        probs = planned.policy.probabilities(log)
        target = sum(probs[:, i, None] * by_action[a] for i, a in enumerate(actions))
        weighted = {Weighting.TARGET: target}
        if allow is not None and BLOCK in actions:
            weighted |= {Weighting.BLOCKED: probs[:, actions.index(BLOCK), None] * allow, Weighting.ALLOWED: allow}
        for name, codes, labels in segs:
            sums = {w: np.stack([np.bincount(codes, m[:, j], minlength=len(labels)) for j in range(m.shape[1])], axis=1)
                    for w, m in weighted.items()}
            totals = _metric_totals(sums, plan.values)
            for metric, per_segment in totals.items():
                rows += [(planned.name, name, label, metric, float(v)) for label, v in zip(labels, per_segment, strict=True)]
    return pl.DataFrame(rows, schema=["policy", "segmentation", "segment", "metric", "truth"], orient="row")


def _metric_totals(sums: dict[Weighting, np.ndarray], values: ValueSet) -> dict[str, np.ndarray]:
    def total(metric: SumMetric) -> np.ndarray:
        return sums[metric.weighting][:, values.names.index(metric.value)]

    out = {m.name: total(m) for m in values.sums}
    with np.errstate(divide="ignore", invalid="ignore"):
        for r in values.ratios:
            out[r.name] = r.scale * total(r.numerator) / total(r.denominator)
    return out
