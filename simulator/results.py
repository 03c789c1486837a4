"""From merged statistics to the results table of SPEC §9.

One row per (policy, segment, metric): the estimate and its interval, the
baseline's estimate, the paired delta and its interval, and diagnostics (rows,
effective sample size, largest weight, unsupported probability mass) with a
`flag` wherever a number should not be read as a plain estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulator import intervals
from simulator.bootstrap import Replicates
from simulator.config import Estimation
from simulator.errors import PolicysimError
from simulator.estimators import Covariance, Estimate, estimator, ratio, variance
from simulator.moments import DIRECT, Term, ratio_terms, sum_terms, term_basis, uses_direct
from simulator.plan import LOGGED, Plan
from simulator.stats import Stats
from simulator.support import unsupported_mass
from simulator.totals import ALL, SegmentTotals
from simulator.value import RATIO_METRICS, SIGNED_VALUES, SUM_METRICS, Weighting, event_size

NO_SUPPORT = "no_support"
LOW_ESS = "low_ess"
UNIDENTIFIED = "unidentified"

RESULT_SCHEMA: dict[str, type[pl.DataType]] = {
    "policy": pl.String,
    "segmentation": pl.String,
    "segment": pl.String,
    "metric": pl.String,
    "estimate": pl.Float64,
    "se": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "baseline": pl.Float64,
    "delta": pl.Float64,
    "delta_se": pl.Float64,
    "delta_ci_low": pl.Float64,
    "delta_ci_high": pl.Float64,
    "rows": pl.Int64,
    "ess": pl.Float64,
    "max_weight": pl.Float64,
    "unsupported_mass": pl.Float64,
    "flag": pl.String,
    "estimator": pl.String,
    "interval": pl.String,
}


@dataclass(frozen=True, slots=True)
class MetricEstimate:
    """One metric of one policy over the segments of a segmentation."""

    name: str
    estimate: Estimate
    main: Term  # the term whose rare events dominate (a sum's total, a ratio's numerator)
    population: str
    signed: bool
    proportion: bool = False


def _estimator_of(policy: str, plan: Plan, estimator_name: str) -> tuple[str, bool]:
    """The sum estimator and whether ratios use DR totals; the logging policy's totals are observed."""
    direct = uses_direct(policy, plan)
    if estimator_name == "dr" and not direct:
        return "ipw", False
    return estimator_name, direct


def metric_estimates(policy: str, totals: SegmentTotals, estimator_name: str) -> list[MetricEstimate]:
    """Every metric of `policy` with the configured estimator."""
    name, direct = _estimator_of(policy, totals.plan, estimator_name)
    sum_estimator = estimator(name)
    out = [
        MetricEstimate(m.name, sum_estimator(m, policy, totals.total), sum_terms(m, policy).main, m.population,
                       m.value in SIGNED_VALUES)
        for m in SUM_METRICS
    ]
    out += [
        MetricEstimate(r.name, ratio(r, policy, totals.total, direct=direct), ratio_terms(r, policy)[0],
                       r.numerator.population, False, r.proportion)
        for r in RATIO_METRICS
    ]
    return out


def replicate_values(replicates: Replicates, totals: SegmentTotals, policy: str, estimator_name: str) -> dict[str, np.ndarray]:
    """Every metric's value in every bootstrap replicate, (segments, B) each."""
    index = {t: i for i, t in enumerate(replicates.terms)}
    block = np.concatenate(replicates.values, axis=0)
    if tuple(label for labels in replicates.labels for label in labels) != totals.labels:
        raise PolicysimError("internal: bootstrap segments do not match the cell statistics")

    def total(term: Term) -> np.ndarray:
        if term_basis(term, totals.plan) == DIRECT:  # fixed given the rows: no replicate variation
            return np.broadcast_to(totals.total(term)[:, None], (block.shape[0], block.shape[2]))
        if term not in index:
            return np.full((block.shape[0], block.shape[2]), np.nan)
        if totals.plan.finite:  # replicates hold deviations from the point total
            return totals.total(term)[:, None] + block[:, index[term], :]
        return block[:, index[term], :]

    name, direct = _estimator_of(policy, totals.plan, estimator_name)
    sum_estimator = estimator(name)
    out = {m.name: sum_estimator(m, policy, total).value for m in SUM_METRICS}
    out |= {r.name: ratio(r, policy, total, direct=direct).value for r in RATIO_METRICS}
    return out


def covariances(totals: SegmentTotals, plan: Plan) -> tuple[Covariance, Covariance]:
    """Covariance of an estimate's own totals, and of a paired delta's (see `simulator.estimators`)."""
    rows = totals.rows

    def superpopulation(a: Term, b: Term) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return totals.cross(a, b) - totals.total(a) * totals.total(b) / rows

    if not plan.finite:
        return superpopulation, superpopulation
    paired = totals.design_cross if plan.policy(plan.baseline).logging else superpopulation
    return totals.design_cross, paired


def segmentation_name(plan: Plan, index: int) -> str:
    """ALL, or the columns of a segmentation joined by `|`."""
    return ALL if index == 0 else "|".join(plan.segments.segmentations[index - 1])


@dataclass(frozen=True)
class _Context:
    plan: Plan
    estimation: Estimation
    totals: SegmentTotals
    replicates: Replicates | None
    own: Covariance
    paired: Covariance

    @property
    def exact_baseline(self) -> bool:
        """In the finite population the logging policy's totals are observed, hence exact."""
        return self.plan.finite and self.plan.policy(self.plan.baseline).logging


def finalize(stats: Stats, plan: Plan, estimation: Estimation) -> pl.DataFrame:
    """The results table of every policy, segment and metric."""
    columns: dict[str, list[np.ndarray]] = {name: [] for name in RESULT_SCHEMA}
    if stats.cells.is_empty():
        return pl.DataFrame(schema=RESULT_SCHEMA)
    totals = SegmentTotals(plan=plan, cells=stats.cells)
    own, paired = covariances(totals, plan)
    context = _Context(plan, estimation, totals, stats.replicates, own, paired)
    baseline = {m.name: m for m in metric_estimates(plan.baseline, totals, estimation.estimator)}
    base_reps = _reps(context, plan.baseline)
    for planned in plan.policies:
        for name, values in _policy_columns(planned.name, context, baseline, base_reps).items():
            columns[name] += values
    frame = pl.DataFrame({k: pl.Series(k, np.concatenate(v), dtype=RESULT_SCHEMA[k], strict=False) for k, v in columns.items()})
    return _hide_unsupported(frame)


def _reps(context: _Context, policy: str) -> dict[str, np.ndarray] | None:
    if context.replicates is None:
        return None
    return replicate_values(context.replicates, context.totals, policy, context.estimation.estimator)


def _policy_columns(policy: str, context: _Context, baseline: dict[str, MetricEstimate],
                    base_reps: dict[str, np.ndarray] | None) -> dict[str, list[np.ndarray]]:
    totals, plan = context.totals, context.plan
    target = Term(policy, Weighting.TARGET, "one")
    with np.errstate(divide="ignore", invalid="ignore"):
        ess = np.nan_to_num(totals.total(target) ** 2 / totals.cross(target, target), nan=0.0)
    unsupported = unsupported_mass(policy, totals, plan)
    reps = _reps(context, policy)
    mature_rows = totals.total(Term(LOGGED, Weighting.TARGET, "mature"))
    names = np.asarray([segmentation_name(plan, i) for i in range(len(plan.segments.segmentations) + 1)], dtype=object)
    columns: dict[str, list[np.ndarray]] = {name: [] for name in RESULT_SCHEMA}
    size = len(totals.labels)
    for metric in metric_estimates(policy, totals, context.estimation.estimator):
        base = baseline[metric.name]
        values = _metric_values(policy, metric, base, context, reps, base_reps)
        values["rows"] = mature_rows if metric.population == "mature" else totals.rows
        values["flag"] = _flags(metric.estimate.value, ess, unsupported, context.estimation.min_ess)
        values |= {"ess": ess, "max_weight": totals.max_weight(target), "unsupported_mass": unsupported}
        fixed = {"policy": policy, "metric": metric.name, "estimator": context.estimation.estimator}
        values |= {k: np.full(size, v, dtype=object) for k, v in fixed.items()}
        values["segmentation"] = names[totals.segmentation]
        values["segment"] = np.asarray(totals.labels, dtype=object)
        for name in RESULT_SCHEMA:
            columns[name].append(np.broadcast_to(values[name], size))
    return columns


def _metric_values(policy: str, metric: MetricEstimate, base: MetricEstimate, context: _Context,
                   reps: dict[str, np.ndarray] | None, base_reps: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    plan, totals, confidence = context.plan, context.totals, context.estimation.confidence
    estimate, baseline = metric.estimate.value, base.estimate.value
    delta = metric.estimate.minus(base.estimate)
    exact = plan.finite and plan.policy(policy).logging
    se = np.zeros_like(estimate) if exact else np.sqrt(variance(metric.estimate, context.own))
    delta_se = np.sqrt(variance(delta, context.paired))
    method = "clt"
    low, high = intervals.normal(estimate, se, confidence)
    if plan.finite and not metric.signed and not exact:
        event = _event(metric, totals, plan)
        low, high = intervals.gamma(estimate, se**2, event, confidence)
        method = "gamma"
    if reps is not None and not exact:
        boot_low, boot_high = intervals.percentile(reps[metric.name], confidence)
        if method == "gamma":  # resampling cannot see rare events never observed: keep the gamma bounds too
            low, high = np.fmin(low, boot_low), np.fmax(high, boot_high)
            method = "bootstrap-percentile+gamma"
        else:
            low, high = boot_low, boot_high
            method = "bootstrap-percentile"
    if metric.proportion:
        low, high = np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)
    if context.exact_baseline:  # the baseline is known exactly: the delta's interval is the estimate's, shifted
        dlow, dhigh = low - baseline, high - baseline
    elif reps is not None and base_reps is not None and not plan.finite:
        dlow, dhigh = intervals.percentile(reps[metric.name] - base_reps[metric.name], confidence)
    else:
        dlow, dhigh = intervals.normal(delta.value, delta_se, confidence)
        method += "; delta clt"
    return {"estimate": estimate, "se": se, "ci_low": low, "ci_high": high, "baseline": baseline,
            "delta": delta.value, "delta_se": delta_se, "delta_ci_low": dlow, "delta_ci_high": dhigh,
            "interval": np.full(len(totals.labels), method, dtype=object)}


def _event(metric: MetricEstimate, totals: SegmentTotals, plan: Plan) -> np.ndarray:
    """One more row of typical size at the largest weight, on the estimate's scale."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_amount = totals.total(Term(LOGGED, Weighting.TARGET, "amount")) / totals.rows
    size = event_size(metric.main.value, plan.value_model, mean_amount)
    scale = np.abs(metric.estimate.grad.get(metric.main, np.ones_like(mean_amount)))
    return np.nan_to_num(scale * totals.max_weight(metric.main) * size)


def _flags(estimate: np.ndarray, ess: np.ndarray, unsupported: np.ndarray, min_ess: float) -> np.ndarray:
    parts = [
        np.where(~np.isfinite(estimate), UNIDENTIFIED, ""),
        np.where(ess < min_ess, LOW_ESS, ""),
        np.where(unsupported > 1e-12, NO_SUPPORT, ""),
    ]
    joined = [";".join(p for p in row if p) for row in zip(*parts, strict=True)]
    return np.asarray(joined, dtype=object)


def _hide_unsupported(frame: pl.DataFrame) -> pl.DataFrame:
    """Estimates without support are flagged, not reported as plain numbers; NaN becomes null."""
    numbers = ["estimate", "se", "ci_low", "ci_high", "delta", "delta_se", "delta_ci_low", "delta_ci_high"]
    hidden = pl.col("flag").str.contains(NO_SUPPORT) | pl.col("flag").str.contains(UNIDENTIFIED)
    return frame.with_columns(
        [pl.when(hidden | pl.col(c).is_nan()).then(None).otherwise(pl.col(c)).alias(c) for c in numbers]
        + [pl.col(c).fill_nan(None) for c in ("baseline", "max_weight")]
    )
