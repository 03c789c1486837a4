"""Decision changes (SPEC §9 `changes.parquet`): per policy, segment and transition, rows, volume and metric deltas.

A transition (b → c) holds the rows where the baseline takes b and the policy
takes c ≠ b. Its `rows` and `volume` are counts of the log (expected counts for
a stochastic policy), from the cell sums (`simulator.stats.changes`).

Its deltas come from the stratified estimator (`simulator.estimate.strata`),
whose paired delta is already a sum over transitions:

    Δ̂ = Σ_{b≠c} Δ̂_bc,   Δ̂_bc = V(stratum (b, c), c) − V(stratum (b, c), b)

so a transition's delta of a sum metric is its stratum's term, with the
interval, rare-event floor and flags of `simulator.estimate.results` applied to
that term alone (analytic t intervals, also under a bootstrap). For a ratio
R = s·N/D the change splits exactly too: with R_B = N_B/D_B,

    R_P − R_B = s·(ΔN − R_B·ΔD)/D_P = Σ_{b≠c} s·(ΔN_bc − R_B·ΔD_bc)/D_P,

each transition's contribution to the numerator net of what its change of the
denominator would carry at the baseline's rate, over the candidate's
denominator; its gradient follows by the chain rule. Transitions' deltas add
up to the results' delta (up to rounding), segment by segment.

Where the delta is not a sum over transitions — a baseline that is not coded
(`logged`), a policy that is not coded (`python`, the logging policy), or an
estimator other than stratified `snipw` — transitions keep their counts and
their deltas are null, with the reason in `interval`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from simulator.config import Estimation
from simulator.estimate.estimators import Estimate, estimator_kind
from simulator.estimate.linearised import Gradient, divide, finite
from simulator.estimate.results import FLAG_LABELS, NO_SUPPORT, UNIDENTIFIED, Evaluation, MetricEstimate, \
    metric_columns, segment_evaluation, segmentation_name
from simulator.estimate.strata import looked_at, stratified_total, stratum_value, zero
from simulator.estimate.totals import SegmentTotals
from simulator.model.value import RatioMetric, SumMetric, Weighting
from simulator.plan.compiled import Plan
from simulator.plan.moments import ONE, Term, linear_column, ratio_terms, sum_terms
from simulator.plan.strata import Members, stratifiable
from simulator.plan.changes import LOGGED_ACTION
from simulator.schema import ACTION, AMOUNT, TRANSACTION_ID
from simulator.stats.changes import EXAMPLE_KEYS, FROM, POLICY, SEGMENT, SEGMENTATION, TO, cell_constant, changing, \
    transition_column
from simulator.stats.shard import ROWS, Stats

CHANGES_SCHEMA: dict[str, type[pl.DataType]] = {
    "policy": pl.String,
    "segmentation": pl.String,
    "segment": pl.String,
    "from_action": pl.String,  # the baseline's action
    "to_action": pl.String,  # the policy's action
    "rows": pl.Float64,  # logged rows that change decision (a whole number for deterministic policies)
    "volume": pl.Float64,  # their amount
    "metric": pl.String,
    "delta": pl.Float64,  # the transition's share of the policy's paired delta
    "delta_se": pl.Float64,
    "delta_ci_low": pl.Float64,
    "delta_ci_high": pl.Float64,
    "delta_explored": pl.Float64,
    "delta_ess": pl.Float64,
    "flag": pl.String,
    "baseline_policy": pl.String,
    "estimator": pl.String,
    "interval": pl.String,  # the method, or why the delta is not split by transition
}
NUMBERS = ("delta", "delta_se", "delta_ci_low", "delta_ci_high")


def not_split(name: str, plan: Plan, estimator: str) -> str | None:
    """Why a policy's delta is not a sum over transitions (the `interval` text), or None when it is."""
    if not estimator_kind(estimator).stratified:
        return f"not estimated: the {estimator} delta is not a sum over transitions (stratified snipw's is)"
    if not stratifiable(plan.baseline, plan):
        return f"not estimated: the baseline '{plan.baseline}' is not coded, so deltas are not split by its actions"
    if plan.policy(name).logging:
        return "not estimated: the logging policy's delta (its exploration) is not split by transition"
    if not stratifiable(name, plan):
        return f"not estimated: '{name}' is not coded, so its delta is not split by transition"
    return None


@dataclass(frozen=True, slots=True)
class Transition:
    """One transition of one policy: the baseline's action index `source`, the policy's `target`."""

    policy: str
    source: int
    target: int

    def members(self, plan: Plan) -> Members:
        """The stratum of rows where the baseline takes `source` and the policy `target`."""
        return ((plan.baseline, self.source), (self.policy, self.target))


def transitions(plan: Plan) -> list[Transition]:
    """Every (policy, b, c ≠ b) pair, in the plan's policy order then action order."""
    n = len(plan.actions)
    return [Transition(name, b, c) for name in changing(plan) for b in range(n) for c in range(n) if b != c]


def cell_members(name: str, totals: SegmentTotals) -> np.ndarray:
    """(cells, n_actions): a cell-constant policy's distribution per cell (the logging policy: the logged action)."""
    plan = totals.plan
    planned = plan.policy(name)
    if planned.logging:
        return np.eye(len(plan.actions))[totals.keys.action]
    assert planned.table is not None  # cell-constant policies only
    return planned.table[totals.keys.codes[name]]


def counts(transition: Transition, totals: SegmentTotals) -> tuple[np.ndarray, np.ndarray]:
    """(rows, volume) per segment of one transition: exact counts of the log for deterministic policies."""
    plan, name, b, c = totals.plan, transition.policy, transition.source, transition.target
    if cell_constant(name, plan) and cell_constant(plan.baseline, plan):
        joint = cell_members(plan.baseline, totals)[:, b] * cell_members(name, totals)[:, c]
        return (totals.by_segment(joint * totals.column(ROWS)),
                totals.by_segment(joint * totals.column(linear_column(ONE, "amount"))))
    return (totals.by_segment(totals.column(transition_column(name, b, c, volume=False))),
            totals.by_segment(totals.column(transition_column(name, b, c, volume=True))))


def sum_delta(metric: SumMetric, transition: Transition, totals: SegmentTotals) -> Estimate:
    """Δ̂_bc of a sum metric: V(stratum (b, c), c) − V(stratum (b, c), b), or 0 where both read the same total."""
    plan = totals.plan
    read_b, read_c = (looked_at(metric.weighting, a, plan.actions) for a in (transition.source, transition.target))
    if read_b == read_c:
        return zero()
    members = transition.members(plan)
    return stratum_value(metric, members, read_c, totals.total, plan).minus(
        stratum_value(metric, members, read_b, totals.total, plan))


def scaled(estimate: Estimate, factor: np.ndarray) -> Estimate:
    """factor · estimate (a per-segment factor held fixed), with its gradient and Hájek parts."""

    def grad() -> Gradient:
        return {term: g * factor for term, g in estimate.grad.items()}

    parts = {key: (f * factor, part) for key, (f, part) in estimate.parts.items()}
    return Estimate(value=estimate.value * factor, grad=grad, parts=parts)


def ratio_delta(metric: RatioMetric, transition: Transition, totals: SegmentTotals) -> Estimate:
    """A transition's share of a ratio's delta: s·(ΔN_bc − R_B·ΔD_bc)/D_P, linearised in every estimate it reads."""
    plan, s = totals.plan, metric.scale
    num, den = sum_delta(metric.numerator, transition, totals), sum_delta(metric.denominator, transition, totals)
    num_b = stratified_total(metric.numerator, plan.baseline, totals.total, plan=plan)
    den_b = stratified_total(metric.denominator, plan.baseline, totals.total, plan=plan)
    den_p = stratified_total(metric.denominator, transition.policy, totals.total, plan=plan)
    rate_b = divide(num_b.value, den_b.value)
    value = s * divide(num.value - rate_b * den.value, den_p.value)
    pieces = ((num, s * divide(1.0, den_p.value)), (den, -s * divide(rate_b, den_p.value)),
              (num_b, -s * divide(den.value, den_b.value * den_p.value)),
              (den_b, s * divide(den.value * rate_b, den_b.value * den_p.value)),
              (den_p, -divide(value, den_p.value)))
    linear = zero()
    for estimate, factor in pieces:
        linear = linear.plus(scaled(estimate, finite(factor)))
    return Estimate(value=value, grad=lambda: linear.grad, parts=linear.parts)


def transition_metrics(transition: Transition, totals: SegmentTotals) -> list[MetricEstimate]:
    """Every metric's delta carried by one transition, as results' `MetricEstimate`s (sums, then ratios)."""
    policy, values = transition.policy, totals.plan.values
    out = [MetricEstimate(m.name, sum_delta(m, transition, totals), sum_terms(m, policy).main, m.population,
                          m.value in values.signed) for m in values.sums]
    out += [MetricEstimate(r.name, ratio_delta(r, transition, totals), ratio_terms(r, policy)[0],
                           r.numerator.population, False, r.proportion) for r in values.ratios]
    return out


def estimated_columns(transition: Transition, evaluation: Evaluation) -> dict[str, list[np.ndarray]]:
    """Delta columns of every metric of one transition, segment-major per metric, with flag bits in `_bits`.

    The interval machinery is the results table's (`metric_columns`), fed the transition's delta against a zero
    baseline: the same variance, rare-event floor, t quantiles and `few_events` / `low_ess` rules.
    """
    totals = evaluation.totals
    segments = len(totals.labels)
    nothing = MetricEstimate("", Estimate(value=np.zeros(segments), grad={}), Term("", Weighting.TARGET, "one"),
                             "one", False)
    unsupported = totals.unsupported_mass(transition.policy) > 1e-12
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("metric", *NUMBERS, "delta_explored", "delta_ess",
                                                         "interval", "_bits")}
    for metric in transition_metrics(transition, totals):
        values = metric_columns(transition.policy, metric, nothing, evaluation, None)
        delta = np.broadcast_to(values["delta"], (segments,))
        bits = (~np.isfinite(delta)).astype(np.int8) | np.where(values["thin"], np.int8(2), np.int8(0)) \
            | np.where(unsupported, np.int8(4), np.int8(0)) | values["few"]
        columns = {"metric": np.full(segments, metric.name, dtype=object), "_bits": bits}
        columns |= {k: values[k] for k in (*NUMBERS, "delta_explored", "delta_ess", "interval")}
        for name, value in columns.items():
            out[name].append(np.broadcast_to(value, (segments,)))
    return out


def finalize_changes(stats: Stats, plan: Plan, estimation: Estimation, results: pl.DataFrame, *,
                     evaluation: Evaluation | None = None) -> pl.DataFrame:
    """The `changes.parquet` table: every policy, segment, transition with rows, and metric.

    `results` is the run's results table: a transition inherits its policy's `no_support` and
    `unidentified` flags in the segment (e.g. block quality where no explored allowed row shows what blocks hit).
    `evaluation`: the one `finalize` used (`segment_evaluation`), whose totals and cross sums are then read
    from its memo tables instead of computed again.
    """
    if stats.cells.is_empty():
        return pl.DataFrame(schema=CHANGES_SCHEMA)
    evaluation = evaluation or segment_evaluation(stats, plan, estimation)
    assert evaluation is not None  # there are cells
    totals: SegmentTotals = evaluation.totals  # type: ignore[assignment]  # a run's (a sweep has no changes)
    names = [segmentation_name(plan, i) for i in range(len(plan.segments.segmentations) + 1)]
    frames = []
    for transition in transitions(plan):
        rows, volume = counts(transition, totals)
        keep = rows > 0
        if not keep.any():
            continue
        keys = pl.DataFrame({POLICY: [transition.policy] * len(totals.labels),
                             SEGMENTATION: [names[i] for i in totals.segmentation], SEGMENT: list(totals.labels),
                             FROM: plan.actions[transition.source], TO: plan.actions[transition.target],
                             "rows": rows, "volume": volume, "_segment": np.arange(len(totals.labels))})
        frames.append(_with_deltas(keys.filter(pl.Series(keep)), transition, evaluation))
    if not frames:
        return pl.DataFrame(schema=CHANGES_SCHEMA)
    out = pl.concat(frames, how="vertical_relaxed")
    return _flagged(out, results, plan, estimation).select(
        [pl.col(k).cast(t) for k, t in CHANGES_SCHEMA.items()])


def _with_deltas(keys: pl.DataFrame, transition: Transition, evaluation: Evaluation) -> pl.DataFrame:
    """One row per metric of every segment in `keys`, with the transition's delta columns (or the reason for none)."""
    plan = evaluation.plan
    reason = not_split(transition.policy, plan, evaluation.estimation.estimator)
    metrics = list(plan.values.metric_names)
    if reason is not None:
        empty = pl.DataFrame({"metric": metrics}).with_columns(
            *(pl.lit(None, dtype=pl.Float64).alias(k) for k in (*NUMBERS, "delta_explored", "delta_ess")),
            pl.lit(reason).alias("interval"), pl.lit(0, dtype=pl.Int8).alias("_bits"))
        return keys.join(empty, how="cross")
    columns = estimated_columns(transition, evaluation)
    segments = len(evaluation.totals.labels)
    deltas = pl.DataFrame({"_segment": np.tile(np.arange(segments), len(metrics)),
                           **{k: np.concatenate(v) for k, v in columns.items()}})
    return keys.join(deltas, on="_segment", how="left", maintain_order="left")


def _flagged(frame: pl.DataFrame, results: pl.DataFrame, plan: Plan, estimation: Estimation) -> pl.DataFrame:
    """`flag` from the transition's own bits and its policy's `no_support` / `unidentified`; hidden numbers null."""
    inherited = results.select(POLICY, SEGMENT, "metric", pl.col("flag").alias("_policy_flag"))
    frame = frame.join(inherited, on=[POLICY, SEGMENT, "metric"], how="left", maintain_order="left")
    estimated = pl.col("interval").str.starts_with("not estimated").not_()
    policy_flag = pl.col("_policy_flag").fill_null("")
    bits = pl.col("_bits") | pl.when(estimated & policy_flag.str.contains(UNIDENTIFIED)).then(1).otherwise(0) \
        | pl.when(estimated & policy_flag.str.contains(NO_SUPPORT)).then(4).otherwise(0)
    codes = frame.select(bits.cast(pl.Int64)).to_series()
    frame = frame.with_columns(flag=pl.Series(list(FLAG_LABELS)).gather(codes))
    hidden = pl.col("flag").str.contains(NO_SUPPORT) | pl.col("flag").str.contains(UNIDENTIFIED)
    return frame.with_columns(
        [pl.when(hidden | pl.col(c).is_nan()).then(None).otherwise(pl.col(c)).alias(c) for c in NUMBERS],
        baseline_policy=pl.lit(plan.baseline), estimator=pl.lit(estimation.estimator))


def finalize_examples(stats: Stats, plan: Plan) -> pl.DataFrame:
    """The `examples.parquet` table: the largest payments of each (policy, segment, transition), `rank` 1 first.

    Ordered as the plan lists policies and segmentations, then by segment, transition and rank; the logged
    action is `logged_action` (the row's `action` in the log).
    """
    if stats.examples is None or stats.examples.frame.is_empty():
        return pl.DataFrame(schema={**{k: pl.String for k in EXAMPLE_KEYS}, "rank": pl.UInt32})
    policies = {p.name: i for i, p in enumerate(plan.policies)}
    segmentations = {segmentation_name(plan, i): i for i in range(len(plan.segments.segmentations) + 1)}
    frame = stats.examples.frame.with_columns(
        pl.col(POLICY).replace_strict(policies, return_dtype=pl.Int32).alias("_p"),
        pl.col(SEGMENTATION).replace_strict(segmentations, return_dtype=pl.Int32).alias("_s"))
    frame = frame.sort(["_p", "_s", SEGMENT, FROM, TO, AMOUNT, TRANSACTION_ID],
                       descending=[False, False, False, False, False, True, False])
    rank = (pl.int_range(pl.len(), dtype=pl.UInt32).over(list(EXAMPLE_KEYS)) + 1).alias("rank")
    return frame.with_columns(rank).drop("_p", "_s").rename({ACTION: LOGGED_ACTION}).select(
        *EXAMPLE_KEYS, "rank", pl.exclude(*EXAMPLE_KEYS, "rank"))
