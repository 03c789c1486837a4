"""Stratified SNIPW, the default estimator: Hájek means within strata of what the policies do.

For a policy P compared with a coded baseline B (see `simulator.plan.strata`):

    T̂_B = Σ_b  V(stratum b of B, action b)
    Δ̂   = Σ_{b≠c} [V(stratum (b, c), action c) − V(stratum (b, c), action b)]
    T̂_P = T̂_B + Δ̂

where V(k, a), the value of action a on the rows of stratum k, is

- exact when the value is fixed by the action (counts, every outcome of a block,
  fraud loss under liability shift): c0(immature)·N_k + (c0(mature) − c0(immature))·N_k^mature;
- else N_k^s · Σ_{k, logged a} y/p / Σ_{k, logged a} s/p, the Hájek mean of the
  explored rows times the stratum's size (s: the metric's population).

So rows both policies treat alike cancel exactly in Δ̂; a candidate that only
blocks more can never show more fraud, approvals or revenue (its Δ̂ only swaps
Hájek means of explored rows for a block's exact zeros); and normalising per
stratum keeps SNIPW's stability. When the baseline is not coded (`logged`, a
per-row policy), T̂_P is Σ_c V(stratum c of P, c) and the delta is the plain
difference. Policies that are not coded (`python` kinds) and a sweep's grid
keep global self-normalisation (`simulator.estimate.estimators.snipw_global`).

A stratum with rows but no explored row of the action it needs borrows the
Hájek mean of the action over the whole segment and is reported `few_events`.
Each Hájek mean is listed in `Estimate.parts`, for the rare-event variance
floor and the diagnostics of `simulator.estimate.rare`.

References: Särndal, Swensson & Wretman (1992), *Model Assisted Survey
Sampling*, ch. 7 (post-stratification); Swaminathan & Joachims (2015) for
self-normalised off-policy estimators; docs/research/intervals.md for the
measurements behind the choice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from simulator.estimate.estimators import snipw_global
from simulator.estimate.linearised import Estimate, Gradient, divide, finite
from simulator.model.value import SumMetric, ValueSet, Weighting, counterfactual_column, reads_any
from simulator.plan.moments import Term, stratum_term
from simulator.schema import BLOCK, DISPUTE_LOST, FRAUD_DISPUTE
from simulator.stats.units import PATTERNS, value_table
from simulator.plan.strata import (
    Members,
    Stratum,
    looked_at,
    own_strata,
    paired_strata,
    stratifiable,
)

if TYPE_CHECKING:  # plans are compiled with this module's term list
    from simulator.plan.compiled import Plan

TotalFn = Callable[[Term], np.ndarray]


@dataclass(frozen=True, slots=True)
class HajekPart:
    """One Hájek mean of a stratified estimate: the totals it is made of and of its rare-event floor."""

    size: Term  # N_k^s: the stratum's rows of the metric's population
    main: Term  # Σ y/p over explored rows of the action
    norm: Term  # Σ s/p over the same rows
    explored: Term  # how many explored rows of the action (unweighted, of the metric's population)
    authorized: Term  # how many of them were authorized
    events: Term  # how many of them carry a fraud dispute (the rare event)
    amount: Term  # Σ amount over the stratum (the size of an outcome)
    action: int
    value: str


def stratified_total(metric: SumMetric, policy: str, total: TotalFn, *, plan: Plan) -> Estimate:
    """The stratified estimate of a sum metric for `policy` (see the module docstring)."""
    if not stratifiable(policy, plan):
        return snipw_global(metric, policy, total)
    baseline = plan.baseline
    if policy == baseline or not stratifiable(baseline, plan):
        return own_total(metric, policy, total, plan)
    return own_total(metric, baseline, total, plan).plus(paired_delta(metric, baseline, policy, total, plan))


def stratified_terms(plan: Plan) -> tuple[Term, ...]:
    """Every stratified total the reported policies' estimates read (the bootstrap keeps replicates of each)."""
    seen: dict[Term, None] = {}

    def record(term: Term) -> np.ndarray:
        seen.setdefault(term)
        return np.ones(1)

    metrics = [*plan.values.sums, *(m for r in plan.values.ratios for m in (r.numerator, r.denominator))]
    for planned in plan.policies:
        for metric in metrics:
            stratified_total(metric, planned.name, record, plan=plan)
    return tuple(sorted((t for t in seen if t.stratum is not None), key=lambda t: t.key))


def own_total(metric: SumMetric, policy: str, total: TotalFn, plan: Plan) -> Estimate:
    """Σ over the policy's own strata of the value of the action it takes there.

    The allowed weighting (every payment as if allowed) does not depend on the policy: one stratum, the segment.
    """
    if metric.weighting is Weighting.ALLOWED:
        return stratum_value(metric, (), looked_at(metric.weighting, 0, plan.actions), total, plan)
    out = zero()
    for members, action in own_strata(policy, plan):
        out = out.plus(stratum_value(metric, members, looked_at(metric.weighting, action, plan.actions), total, plan))
    return out


def paired_delta(metric: SumMetric, baseline: str, policy: str, total: TotalFn, plan: Plan) -> Estimate:
    """Σ over strata where the two policies' actions are read differently: the policy's value minus the baseline's."""
    out = zero()
    for members, b, c in paired_strata(baseline, policy, plan):
        read_b, read_c = (looked_at(metric.weighting, a, plan.actions) for a in (b, c))
        if read_b == read_c:  # the same total on the same rows: it cancels exactly
            continue
        out = out.plus(stratum_value(metric, members, read_c, total, plan))
        out = out.minus(stratum_value(metric, members, read_b, total, plan))
    return out


def zero() -> Estimate:
    """The estimate 0 (identity of `plus`)."""
    return Estimate(value=np.zeros(1), grad={})


def stratum_value(metric: SumMetric, members: Members, action: int | None, total: TotalFn, plan: Plan) -> Estimate:
    """V(k, a): the total of the metric's value over stratum k had every row got action a."""
    if action is None:  # e.g. the blocked weighting where the policy does not block
        return zero()
    if plan.actions[action] == BLOCK and metric.value in plan.values.row_values:
        # no outcome follows a block: a row value's total is its rows' own, evaluated under block (exact)
        return exact_total(stratum_term(counterfactual_column(metric.value, BLOCK, "declined"), Stratum(members)),
                           total)
    fixed = fixed_values(plan.values, plan.actions).get((action, metric.value))
    if fixed is not None:
        return fixed_value(fixed, members, total)
    # Block quality reads the blocked rows' outcomes through explored allowed rows of the same stratum;
    # another stratum's allowed rows are not a stand-in for what blocks hit: unidentified, not borrowed.
    return hajek(hajek_part(metric, members, action), members, total, borrow=metric.weighting is not Weighting.BLOCKED)


def exact_total(term: Term, total: TotalFn) -> Estimate:
    """A total known exactly from every row of a stratum (no exploration needed)."""
    t = total(term)
    return Estimate(value=t, grad={term: np.ones_like(t)})


def fixed_value(fixed: tuple[float, float], members: Members, total: TotalFn) -> Estimate:
    """c0(immature)·N + (c0(mature) − c0(immature))·N^mature: exact given the stratum's rows."""
    immature, mature = fixed
    everyone, grown = stratum_term("one", Stratum(members)), stratum_term("mature", Stratum(members))
    grad: Gradient = {}
    value = np.zeros(1)
    for term, factor in ((everyone, immature), (grown, mature - immature)):
        if factor != 0.0:
            t = total(term)
            value = value + factor * t
            grad[term] = np.full_like(t, factor)
    return Estimate(value=value, grad=grad)


def hajek_part(metric: SumMetric, members: Members, action: int) -> HajekPart:
    """The totals of one stratum's Hájek mean of a metric's value under an action."""
    explored = Stratum(members, logged=action)
    counted = Stratum(members, logged=action, weighted=False)
    mature = metric.population == "mature"
    return HajekPart(
        size=stratum_term(metric.population, Stratum(members)),
        main=stratum_term(metric.value, explored),
        norm=stratum_term(metric.population, explored),
        explored=stratum_term(metric.population, counted),
        authorized=stratum_term("mature_authorized" if mature else "authorized", counted),
        events=stratum_term("fraud", counted),
        amount=stratum_term("amount", Stratum(members)),
        action=action,
        value=metric.value,
    )


def hajek(part: HajekPart, members: Members, total: TotalFn, *, borrow: bool = True) -> Estimate:
    """N · A / B, or where the stratum explored none of the action, N times the segment's pooled mean (`borrow`) or NaN."""
    size, main, norm = total(part.size), total(part.main), total(part.norm)
    pooled_main = stratum_term(part.value, Stratum((), logged=part.action))
    pooled_norm = stratum_term(part.size.value, Stratum((), logged=part.action))
    seen = norm > 0
    a = np.where(seen, main, total(pooled_main))
    b = np.where(seen, norm, total(pooled_norm))
    mean = divide(a, b) if borrow else np.where(seen, divide(main, norm), np.nan)
    value = np.where(size > 0, size * (mean if not borrow else finite(mean)), 0.0)

    def grad() -> Gradient:
        d_a, d_b = divide(size, b), -size * divide(a, b * b)
        d_a, d_b = np.where(size > 0, finite(d_a), 0.0), np.where(size > 0, finite(d_b), 0.0)
        out: Gradient = {part.size: np.where(size > 0, finite(mean), 0.0)}
        for own, pooled, d in ((part.main, pooled_main, d_a), (part.norm, pooled_norm, d_b)):
            out[own] = np.where(seen, d, 0.0)
            out[pooled] = out.get(pooled, 0.0) + np.where(seen, 0.0, d)
        return out

    key = (members, part.action, part.value, part.size.value)
    return Estimate(value=value, grad=grad, parts={key: (np.where(size > 0, 1.0, 0.0), part)})  # empty: no part


@lru_cache(maxsize=16)
def fixed_values(values: ValueSet, actions: tuple[str, ...]) -> dict[tuple[int, str], tuple[float, float]]:
    """Value columns fixed by the action, whatever the outcome: (action, value) → (c0 if immature, c0 if mature).

    Such a value needs no exploration: its total over a stratum is exact from the
    stratum's row counts. A blocked payment has no outcome (validation enforces it),
    so under block every value is fixed.
    """
    table = value_table(values, actions)  # (actions, patterns, values, 2); NaN for row values: never fixed
    out: dict[tuple[int, str], tuple[float, float]] = {}
    patterns = np.arange(PATTERNS)
    for a, name in enumerate(actions):
        possible = patterns[(patterns & 7) == 0] if name == BLOCK else patterns
        for j, value in enumerate(values.names):
            c0, c1 = table[a, possible, j, 0], table[a, possible, j, 1]
            mature = (possible & 8) > 0
            if not np.all(c1 == 0) or not np.all(np.isfinite(c0)):
                continue
            immature_c0, mature_c0 = np.unique(c0[~mature]), np.unique(c0[mature])
            if len(immature_c0) <= 1 and len(mature_c0) <= 1:
                out[(a, value)] = (float(immature_c0[0]) if len(immature_c0) else 0.0,
                                   float(mature_c0[0]) if len(mature_c0) else 0.0)
    return out


@dataclass(frozen=True, slots=True)
class Outcomes:
    """A value under an action as base + authorized·(a0 + a1·amount) + fraud·(f0 + f1·amount) (mature rows).

    Read from the value model's own table: the change from a declined payment to an
    authorized one, and from an authorized one to a lost fraud dispute. A value without a
    table is `per_row`: its rare-event floor reads each row's value under every outcome
    (`simulator.stats.units.counterfactual_values`), and `reads_fraud` says whether it moves with fraud.
    """

    a0: float
    a1: float
    f0: float
    f1: float
    per_row: bool = False
    reads_fraud: bool = False

    @property
    def fraud(self) -> bool:
        """Whether the value moves with fraud (so rare events decide its spread)."""
        return self.f0 != 0.0 or self.f1 != 0.0 or self.reads_fraud


@lru_cache(maxsize=256)
def outcomes(values: ValueSet, actions: tuple[str, ...], action: int, value: str) -> Outcomes:
    """How a value depends on the outcome under an action (see `Outcomes`)."""
    if value in values.untabulated:
        return Outcomes(0.0, 0.0, 0.0, 0.0, per_row=True,
                        reads_fraud=reads_any(values, value, frozenset({FRAUD_DISPUTE, DISPUTE_LOST})))
    table = finite(value_table(values, actions)[action, :, values.names.index(value)])  # (patterns, 2)
    return _moves(table[0b1000], table[0b1001], table[0b1111])  # mature: + authorized, + fraud, + lost


def _moves(declined: np.ndarray, authorized: np.ndarray, lost: np.ndarray) -> Outcomes:
    """`Outcomes` from a value's c0, c1 when declined, approved, and approved then lost to fraud."""
    return Outcomes(a0=float(authorized[0] - declined[0]), a1=float(authorized[1] - declined[1]),
                    f0=float(lost[0] - authorized[0]), f1=float(lost[1] - authorized[1]))
