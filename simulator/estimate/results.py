"""From merged statistics to the results table of SPEC §9.

One row per (policy, segment, metric): the estimate and its interval, the
baseline's estimate, the paired delta and its interval, and diagnostics (rows,
effective sample size, largest weight, unsupported probability mass) with a
`flag` wherever a number should not be read as a plain estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np
import polars as pl

from segments.labels import ALL
from simulator.estimate import intervals
from simulator.stats.bootstrap import Replicates
from simulator.config import Estimation
from simulator.estimate.estimators import Covariance, Estimate, SumEstimator, estimator_kind, ratio, ratio_of, variance
from simulator.plan.moments import DIRECT, Term, ratio_terms, sum_terms, term_basis, uses_direct
from simulator.plan.compiled import Plan
from simulator.schema import LOGGED
from simulator.stats.shard import Stats
from simulator.estimate.totals import SegmentTotals, Totals
from simulator.estimate.rare import Diagnostics, PartDiagnostics, diagnose, part_diagnostics
from simulator.estimate.linearised import finite
from simulator.estimate.strata import HajekPart
from simulator.estimate.score import ScoreBounds, score_bounds
from simulator.plan.strata import disjoint_rows, stratifiable
from simulator.stats.units import value_table
from simulator.model.value import BLOCK_QUALITY, RatioMetric, ValueSet, Weighting, event_size

NO_SUPPORT = "no_support"
LOW_ESS = "low_ess"
UNIDENTIFIED = "unidentified"
FEW_EVENTS = "few_events"

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
    "baseline_policy": pl.String,  # the policy `baseline` and the deltas compare with
    "delta": pl.Float64,
    "delta_se": pl.Float64,
    "delta_ci_low": pl.Float64,
    "delta_ci_high": pl.Float64,
    "rows": pl.Int64,
    "ess": pl.Float64,
    "delta_explored": pl.Float64,  # explored rows behind the paired delta (rows where the policies differ)
    "delta_ess": pl.Float64,  # their effective number (Kish), summed over the delta's strata
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


@dataclass(frozen=True, slots=True)
class PolicyEstimator:
    """How one policy's metrics are estimated: its sum estimator and how its ratios combine totals.

    `direct`: ratios of outcome-model (DR) totals; `own_ratios`: ratios of the sum
    estimator's own estimates (stratified SNIPW); otherwise ratios of IPW totals.
    """

    total: SumEstimator
    direct: bool = False
    own_ratios: bool = False

    def ratio(self, metric: RatioMetric, policy: str, total: Callable[[Term], np.ndarray]) -> Estimate:
        if self.own_ratios:
            return ratio_of(metric, self.total(metric.numerator, policy, total), self.total(metric.denominator, policy, total))
        return ratio(metric, policy, total, direct=self.direct)


def policy_estimator(policy: str, plan: Plan, estimator_name: str) -> PolicyEstimator:
    """The estimator of a policy's metrics.

    The logging policy's totals are observed: an estimator that needs the outcome
    model is plain IPW there (its weights are 1, its residual terms cancel).
    """
    kind = estimator_kind(estimator_name)
    if kind.outcome_model and not uses_direct(policy, plan):
        return PolicyEstimator(estimator_kind("ipw").total)
    if kind.stratified:  # policies it cannot stratify keep global SNIPW, whose ratios are ratios of IPW totals
        return PolicyEstimator(partial(kind.total, plan=plan), own_ratios=stratifiable(policy, plan))
    return PolicyEstimator(kind.total, direct=kind.outcome_model)


def metric_estimates(policy: str, totals: Totals, estimator_name: str) -> list[MetricEstimate]:
    """Every metric of `policy` with the configured estimator."""
    estimator = policy_estimator(policy, totals.plan, estimator_name)
    out = [
        MetricEstimate(m.name, estimator.total(m, policy, totals.total), sum_terms(m, policy).main, m.population,
                       m.value in totals.plan.values.signed)
        for m in totals.plan.values.sums
    ]
    out += [
        MetricEstimate(r.name, estimator.ratio(r, policy, totals.total), ratio_terms(r, policy)[0],
                       r.numerator.population, False, r.proportion)
        for r in totals.plan.values.ratios
    ]
    return out


def metric_values(policy: str, plan: Plan, estimator_name: str, total: Callable[[Term], np.ndarray]) -> dict[str, np.ndarray]:
    """Every metric's value (no gradient) from any totals, e.g. a bootstrap replicate's."""
    estimator = policy_estimator(policy, plan, estimator_name)
    out = {m.name: estimator.total(m, policy, total).value for m in plan.values.sums}
    out |= {r.name: estimator.ratio(r, policy, total).value for r in plan.values.ratios}
    return out


def replicate_values(replicates: Replicates, totals: SegmentTotals, policy: str, estimator_name: str) -> dict[str, np.ndarray]:
    """Every metric's value in every bootstrap replicate, (segments, B) each."""
    index = {t: i for i, t in enumerate(replicates.terms)}
    block = np.concatenate(replicates.values, axis=0)
    if tuple(label for labels in replicates.labels for label in labels) != totals.labels:
        raise RuntimeError("bootstrap segments do not match the cell statistics")

    def total(term: Term) -> np.ndarray:
        if term_basis(term, totals.plan) == DIRECT:  # fixed given the rows: no replicate variation
            return np.broadcast_to(totals.total(term)[:, None], (block.shape[0], block.shape[2]))
        if term not in index:
            return np.full((block.shape[0], block.shape[2]), np.nan)
        if totals.plan.finite:  # replicates hold deviations from the point total
            return totals.total(term)[:, None] + block[:, index[term], :]
        return block[:, index[term], :]

    return metric_values(policy, totals.plan, estimator_name, total)


def covariances(totals: Totals, plan: Plan) -> tuple[Covariance, Covariance]:
    """Covariance of an estimate's own totals, and of a paired delta's (see `simulator.estimate.estimators`)."""
    rows = totals.rows

    def centre(term: Term) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return totals.total(term) / np.sqrt(rows)

    def disjoint(a: Term, b: Term) -> bool:
        return disjoint_rows(a, b, plan)

    superpopulation = Covariance(totals.cross, centre, disjoint)
    if not plan.finite:
        return superpopulation, superpopulation
    design = Covariance(totals.design_cross, None, disjoint)
    return design, design if plan.policy(plan.baseline).logging else superpopulation


def segmentation_name(plan: Plan, index: int) -> str:
    """ALL, or the columns of a segmentation joined by `|`."""
    return ALL if index == 0 else "|".join(plan.segments.segmentations[index - 1])


@dataclass(frozen=True)
class Evaluation:
    """What every policy's columns are computed from: the plan, the settings, the totals and their covariances."""

    plan: Plan
    estimation: Estimation
    totals: Totals
    own: Covariance  # of an estimate's own totals
    paired: Covariance  # of a paired delta's
    parts: Callable[[HajekPart], PartDiagnostics]  # memoised diagnostics of stratified Hájek parts

    @staticmethod
    def of(totals: Totals, estimation: Estimation) -> Evaluation:
        own, paired = covariances(totals, totals.plan)
        return Evaluation(totals.plan, estimation, totals, own, paired, part_diagnostics(totals))

    @property
    def exact_baseline(self) -> bool:
        """In the finite population the logging policy's totals are observed, hence exact."""
        return self.plan.finite and self.plan.policy(self.plan.baseline).logging


def segment_evaluation(stats: Stats, plan: Plan, estimation: Estimation) -> Evaluation | None:
    """The totals of a run's segments with their memo tables (None without cells).

    `finalize` and the decision changes' `finalize_changes` read many of the same totals and
    cross sums: given one evaluation, the second reads them from the first's memo tables.
    """
    if stats.cells.is_empty():
        return None
    return Evaluation.of(SegmentTotals(plan=plan, cells=stats.cells), estimation)


def finalize(stats: Stats, plan: Plan, estimation: Estimation, *, evaluation: Evaluation | None = None) -> pl.DataFrame:
    """The results table of every policy, segment and metric.

    `evaluation`: the `segment_evaluation` of the same statistics, to share its totals (built here when None).
    """
    columns: dict[str, list[np.ndarray]] = {name: [] for name in RESULT_SCHEMA}
    if stats.cells.is_empty():
        return pl.DataFrame(schema=RESULT_SCHEMA)
    evaluation = evaluation or segment_evaluation(stats, plan, estimation)
    assert evaluation is not None  # there are cells
    totals = evaluation.totals
    baseline = {m.name: m for m in metric_estimates(plan.baseline, totals, estimation.estimator)}
    base_reps = None
    if stats.replicates is not None:
        base_reps = replicate_values(stats.replicates, totals, plan.baseline, estimation.estimator)
    for planned in plan.policies:
        boot = None
        if stats.replicates is not None:
            reps = base_reps if planned.name == plan.baseline else \
                replicate_values(stats.replicates, totals, planned.name, estimation.estimator)
            boot = bootstrap_bounds(reps, base_reps, plan, estimation.confidence)
        for name, values in policy_columns(planned.name, evaluation, baseline, boot).items():
            columns[name] += values
    frame = pl.DataFrame({k: flag_text(v) if k == "flag" else pl.Series(k, np.concatenate(v), dtype=RESULT_SCHEMA[k], strict=False)
                          for k, v in columns.items()})
    return hide_unsupported(frame)


def effective_sample_size(term: Term, totals: Totals) -> np.ndarray:
    """(Σ w·s)² / Σ (w·s)² over a population s (every row, or rows with mature fraud labels)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nan_to_num(totals.total(term) ** 2 / totals.cross(term, term), nan=0.0)


def policy_columns(policy: str, evaluation: Evaluation, baseline: dict[str, MetricEstimate],
                   boot: dict[str, Bounds] | None) -> dict[str, list[np.ndarray]]:
    """Every column of RESULT_SCHEMA for one policy, flattened segment-major (`flag` as `flag_codes`).

    A grid's totals (`simulator.estimate.grid_totals`) give `(segments, points)`
    arrays, flattened segment-major then point; `boot` holds the policy's
    bootstrap bounds, if any (`bootstrap_bounds`).
    """
    totals, plan, estimation = evaluation.totals, evaluation.plan, evaluation.estimation
    target = Term(policy, Weighting.TARGET, "one")
    ess = {population: effective_sample_size(Term(policy, Weighting.TARGET, population), totals)
           for population in ("one", "mature")}
    unsupported = totals.unsupported_mass(policy)
    mature_rows = totals.total(Term(LOGGED, Weighting.TARGET, "mature"))
    names = np.asarray([segmentation_name(plan, i) for i in range(len(plan.segments.segmentations) + 1)], dtype=object)
    shape = np.broadcast_shapes(ess["one"].shape, ess["mature"].shape)
    per_segment = (-1,) + (1,) * (len(shape) - 1)
    columns: dict[str, list[np.ndarray]] = {name: [] for name in RESULT_SCHEMA}
    max_weight = totals.max_weight(target)
    fixed = {"segmentation": names[totals.segmentation].reshape(per_segment),
             "segment": np.asarray(totals.labels, dtype=object).reshape(per_segment),
             "policy": totals.policy_labels(policy),
             "baseline_policy": np.asarray(plan.baseline, dtype=object),
             "estimator": np.asarray(estimation.estimator, dtype=object)}
    estimates = metric_estimates(policy, totals, estimation.estimator)
    unseen = blocks_unseen({m.name: m.estimate.value for m in estimates})
    for metric in estimates:
        base = baseline[metric.name]
        values = metric_columns(policy, metric, base, evaluation, boot)
        values["rows"] = mature_rows if metric.population == "mature" else totals.rows
        population = "mature" if metric.population == "mature" else "one"
        values["flag"] = flag_codes(metric.estimate.value, ess[population], unsupported, estimation.min_ess) \
            | values.pop("few") | np.where(values.pop("thin"), np.int8(2), np.int8(0))  # bit 1: low_ess of the delta
        if metric.name in BLOCK_QUALITY:
            values["flag"] = values["flag"] | np.where(unseen, np.int8(1), np.int8(0))  # bit 0: unidentified
        values |= {"ess": ess[population], "max_weight": max_weight, "unsupported_mass": unsupported}
        values |= fixed | {"metric": np.asarray(metric.name, dtype=object)}
        for name in RESULT_SCHEMA:
            columns[name].append(np.broadcast_to(values[name], shape).ravel())
    return columns


Bounds = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]  # ci low, high; delta low, high



def blocks_unseen(values: dict[str, np.ndarray]) -> np.ndarray:
    """Where a policy blocks payments but no explored allowed row shows what they were (precision undefined).

    Then none of the block-quality metrics is identified: the blocked fraud count and the recall would
    read 0 although the data says nothing about them, so all four are flagged `unidentified` together.
    """
    if "block_precision" not in values:  # an action set without allow or block: no block-quality metric
        return np.zeros(np.shape(next(iter(values.values()))), dtype=bool)
    with np.errstate(invalid="ignore"):
        return (values["blocked_count"] > 0) & ~np.isfinite(values["block_precision"])


def bootstrap_bounds(reps: dict[str, np.ndarray], base_reps: dict[str, np.ndarray] | None, plan: Plan,
                     confidence: float) -> dict[str, Bounds]:
    """Percentile intervals of every metric from its replicates (last axis), and of its paired delta.

    Delta bounds come from the replicates only under the superpopulation model (see `metric_columns`).
    """
    out: dict[str, Bounds] = {}
    for name, values in reps.items():
        low, high = intervals.percentile(values, confidence)
        dlow = dhigh = None
        if base_reps is not None and not plan.finite:
            dlow, dhigh = intervals.percentile(values - base_reps[name], confidence)
        out[name] = (low, high, dlow, dhigh)
    return out


@lru_cache(maxsize=16)
def structural_zeros(values: ValueSet, actions: tuple[str, ...]) -> frozenset[str]:
    """Value columns that are 0 whatever the action and outcome, e.g. `challenged` when the action set has no challenge.

    Their estimates are exactly 0: a rare-event interval would wrongly allow one event.
    """
    table = value_table(values, actions)  # (actions, patterns, values, 2); NaN (a row value) is not 0
    zero = ~np.any(table != 0, axis=(0, 1, 3))
    return frozenset(v for v, z in zip(values.names, zero, strict=True) if z)


def metric_columns(policy: str, metric: MetricEstimate, base: MetricEstimate, evaluation: Evaluation,
                   boot: dict[str, Bounds] | None) -> dict[str, np.ndarray]:
    """One metric's result columns for a policy: estimate, delta against `base`, their intervals and diagnostics.

    The one place intervals are chosen (t with score limits, rare-event floor, bootstrap where it
    can see what it resamples); `simulator.estimate.changes` reuses it for a transition's delta.
    """
    plan, totals, confidence = evaluation.plan, evaluation.totals, evaluation.estimation.confidence
    estimate, baseline = metric.estimate.value, base.estimate.value
    delta = metric.estimate.minus(base.estimate)
    if metric.main.value in structural_zeros(plan.values, plan.actions):  # e.g. challenges without a challenge action
        zero = np.zeros_like(estimate + baseline)
        return {"estimate": estimate, "se": zero, "ci_low": estimate, "ci_high": estimate, "baseline": baseline,
                "delta": delta.value, "delta_se": zero, "delta_ci_low": delta.value, "delta_ci_high": delta.value,
                "interval": np.full(np.shape(zero), "exact (no action in the set produces it)", dtype=object),
                "delta_explored": np.full(np.shape(zero), np.nan), "delta_ess": np.full(np.shape(zero), np.nan),
                "few": np.zeros(np.shape(zero), dtype=np.int8), "thin": np.zeros(np.shape(zero), dtype=bool)}
    exact = plan.finite and plan.policy(policy).logging
    se = np.zeros_like(estimate) if exact else np.sqrt(variance(metric.estimate, evaluation.own))
    delta_se = np.sqrt(variance(delta, evaluation.paired))
    own = diagnose(metric.estimate, se**2, totals, evaluation.parts)
    paired = diagnose(delta, delta_se**2, totals, evaluation.parts, paired=True)
    floored = not exact  # on these payments (`finite`) the floor sees their own amounts: simulator.estimate.rare
    if floored:
        se, delta_se = np.sqrt(se**2 + own.extra_variance), np.sqrt(delta_se**2 + paired.extra_variance)
    few = own.few_events | paired.few_events
    stratified = estimator_kind(evaluation.estimation.estimator).stratified
    method = "t" if stratified else "clt"
    if stratified and not exact:  # shares of 0/1 outcomes: score limits, asymmetric where the share is near 0 or 1
        rare = not (metric.signed or metric.proportion or plan.finite)  # fraud volume, loss, counts: ≥ 0
        bounds = _score(metric.estimate, se, _df(own), evaluation, rare=rare)
        low, high, scored, few = bounds.low, bounds.high, bounds.decides, few | bounds.thin
        method = "t; score limits for 0/1 shares" + (" and rare-event totals" if rare else "")
    else:
        low, high = intervals.student(estimate, se, _df(own), confidence)
        scored = np.zeros(np.shape(estimate), dtype=bool)
    if plan.finite and not metric.signed and not exact and not stratified:
        event = _event(metric, totals, plan)
        low, high = intervals.gamma(estimate, se**2, event, confidence)
        method = "gamma"
    if boot is not None and not exact:
        boot_low, boot_high, boot_dlow, boot_dhigh = boot[metric.name]
        if method == "gamma":  # resampling cannot see rare events never observed: keep the gamma bounds too
            low, high = np.fmin(low, boot_low), np.fmax(high, boot_high)
            method = "bootstrap-percentile+gamma"
        else:  # where the floor or the score limits decide, resampling the explored rows cannot: keep them
            keep = own.few_events | own.floor_decides | scored | _undefined(boot_low, boot_high)
            low, high = np.where(keep, low, boot_low), np.where(keep, high, boot_high)
            method = "bootstrap-percentile" + ("; score limits for 0/1 shares" if stratified else "")
    if not metric.signed:  # a count, volume or rate is never negative: neither is its lower bound
        low = np.maximum(low, 0.0)
    if metric.proportion:
        low, high = np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)
    if evaluation.exact_baseline:  # the baseline is known exactly: the delta's interval is the estimate's, shifted
        dlow, dhigh = low - baseline, high - baseline
    elif stratified:
        dbounds = _score(delta, delta_se, _df(paired), evaluation)
        dlow, dhigh, dscored, few = dbounds.low, dbounds.high, dbounds.decides, few | dbounds.thin
        if boot is not None and boot[metric.name][2] is not None:
            keep = paired.few_events | paired.floor_decides | dscored | _undefined(*boot[metric.name][2:])
            dlow, dhigh = np.where(keep, dlow, boot[metric.name][2]), np.where(keep, dhigh, boot[metric.name][3])
        else:
            method += "; delta t"
    elif boot is not None and boot[metric.name][2] is not None:
        dlow, dhigh = intervals.student(delta.value, delta_se, _df(paired), confidence)
        keep = paired.few_events | paired.floor_decides | _undefined(*boot[metric.name][2:])
        dlow, dhigh = np.where(keep, dlow, boot[metric.name][2]), np.where(keep, dhigh, boot[metric.name][3])
    else:
        dlow, dhigh = intervals.student(delta.value, delta_se, _df(paired), confidence)
        method += "; delta clt"
    if floored and stratified:
        method += "; rare-event floor"
    thin = paired.estimated & (paired.ess < evaluation.estimation.min_ess * (1 - 1e-9))  # a grid reassociates sums
    return {"estimate": estimate, "se": se, "ci_low": low, "ci_high": high, "baseline": baseline,
            "delta": delta.value, "delta_se": delta_se, "delta_ci_low": dlow, "delta_ci_high": dhigh,
            "interval": np.full(np.shape(estimate), method, dtype=object),
            "delta_explored": np.where(paired.estimated, paired.explored, np.nan),
            "delta_ess": np.where(paired.estimated, paired.ess, np.nan),
            "few": np.where(few, np.int8(8), np.int8(0)), "thin": thin}


def _score(estimate: Estimate, se: np.ndarray, df: np.ndarray, evaluation: Evaluation, *,
           rare: bool = False) -> ScoreBounds:
    """The t interval with Wilson limits for the estimate's 0/1-valued Hájek parts (`simulator.estimate.score`)."""
    confidence = evaluation.estimation.confidence
    q, z = intervals.t_quantile(df, confidence), float(intervals.t_quantile(np.inf, confidence))
    return score_bounds(estimate, se**2, q, z, evaluation.totals.total, evaluation.parts, evaluation.plan,
                        rare=rare)


def _undefined(low: np.ndarray | None, high: np.ndarray | None) -> np.ndarray | bool:
    """Where a bootstrap interval is undefined (a replicate's ratio had no rows): the analytic interval stands."""
    return ~(np.isfinite(low) & np.isfinite(high))


def _df(diagnostics: Diagnostics) -> np.ndarray:
    """Degrees of freedom of an estimate's t interval: its explored rows' effective number − 1 (∞ when it has none)."""
    return np.where(diagnostics.estimated, np.maximum(diagnostics.ess - 1.0, 1.0), np.inf)


def _event(metric: MetricEstimate, totals: Totals, plan: Plan) -> np.ndarray:
    """One more row of typical size at the largest weight, on the estimate's scale."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_amount = totals.total(Term(LOGGED, Weighting.TARGET, "amount")) / totals.rows
    size = event_size(metric.main.value, plan.values, plan.actions, mean_amount)
    scale = np.abs(metric.estimate.grad.get(metric.main, np.ones_like(mean_amount)))
    return finite(scale * totals.max_weight(metric.main) * size)


FLAG_NAMES = (UNIDENTIFIED, LOW_ESS, NO_SUPPORT, FEW_EVENTS)
FLAG_LABELS = tuple(";".join(n for bit, n in enumerate(FLAG_NAMES) if code >> bit & 1) for code in range(16))


def flag_codes(estimate: np.ndarray, ess: np.ndarray, unsupported: np.ndarray, min_ess: float) -> np.ndarray:
    """Bit i set when flag FLAG_NAMES[i] applies; `FLAG_LABELS[code]` is the `;`-joined text."""
    return (~np.isfinite(estimate)).astype(np.int8) | (ess < min_ess).astype(np.int8) << 1 \
        | (unsupported > 1e-12).astype(np.int8) << 2


def flag_text(codes: list[np.ndarray]) -> pl.Series:
    """The `flag` column from per-metric arrays of `flag_codes`."""
    return pl.Series(list(FLAG_LABELS)).gather(np.concatenate(codes)).alias("flag")


def hide_unsupported(frame: pl.DataFrame) -> pl.DataFrame:
    """Estimates without support are flagged, not reported as plain numbers; NaN becomes null."""
    numbers = ["estimate", "se", "ci_low", "ci_high", "delta", "delta_se", "delta_ci_low", "delta_ci_high"]
    hidden = pl.col("flag").str.contains(NO_SUPPORT) | pl.col("flag").str.contains(UNIDENTIFIED)
    return frame.with_columns(
        [pl.when(hidden | pl.col(c).is_nan()).then(None).otherwise(pl.col(c)).alias(c) for c in numbers]
        + [pl.col(c).fill_nan(None) for c in ("baseline", "max_weight")]
    )
