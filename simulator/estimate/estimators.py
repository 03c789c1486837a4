"""Off-policy estimators of totals and ratios, written once over weighted totals.

Notation: a policy's weight for row i is w_i = π(a_i | x_i) / p_i (`Weighting`
says which action's probability), y_i a metric's value column, s_i its
population indicator (1 for every row, or for rows with mature fraud labels),
N = Σ s_i, n the rows of the segment.

- `ipw` (Horvitz–Thompson):   T̂ = Σ w_i y_i. Unbiased when the logging policy
  explores every action the policy takes (propensity > 0 there).
- `snipw` (self-normalised):  T̂ = N · Σ w_i y_i / Σ w̃_i s_i, where w̃ is the
  policy's own weight (or, for blocked/allowed weightings, [a=allow]/p). Slightly
  biased, O(1/n), but invariant to adding a constant to y and with much lower
  variance when weights are large — the default (see docs/estimation.md).
- `dr` (doubly robust): T̂ = Σ_i Σ_a π(a|x_i) m̂(x_i,a) + Σ_i w_i (y_i − m̂(x_i,a_i)),
  with the outcome model m̂ of `simulator.model.direct` (Dudík, Langford & Li 2011).
  Unbiased if either the propensities or m̂ are right; its variance is that of
  the residuals, smaller than IPW's when the scores predict outcomes.
- ratio metrics R = scale · T̂_num / T̂_den are ratios of IPW totals (or of DR
  totals under `dr`); self-normalisation cancels in a ratio with a shared
  normaliser, so `ipw` and `snipw` give the same ratios.

Intervals are CLT / delta-method: every estimate is g(T_1 … T_k) of weighted
totals, so Var ≈ ∇gᵀ Σ ∇g, with Σ the covariance of the totals' errors:

- population = "finite": the question is what would have happened on
  *these* payments, so the only randomness is which action the logging policy
  drew for each row. With z_i = w_i y_i and w_i = c_i(a_i)/p_i, the error of a
  total has design covariance Σ_i Cov(z_ij, z_il) = Σ_i E[z_ij z_il] − m_ij m_il,
  estimated without bias by Σ_i z_ij z_il (1 − p_i) whenever both terms put their
  mass on the same action of a row (any single policy; a deterministic one
  exactly). The logging policy's own totals are observed, so exact: error 0.
  A paired delta against another non-logged policy involves products of two
  potential outcomes of one row, which no data identifies, so its interval uses
  the superpopulation covariance below, which bounds it from above.
- population = "superpopulation" (default): rows are i.i.d. draws from traffic
  like this, the question a launch asks; Σ_jl = Σ_i z_ij z_il − T_j T_l / n
  (the usual OPE interval, wider on a fixed population).

Paired deltas use the gradient of g_candidate − g_baseline over the union of
their terms, so rows shared by both policies cancel (Owen 2013, ch. 9;
Swaminathan & Joachims 2015 for SNIPW).

The same functions evaluate bootstrap replicates: `total` may return arrays of
shape (segments, replicates) and everything broadcasts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simulator.errors import UnknownName
from simulator.estimate.linearised import Estimate, Gradient, divide
from simulator.plan.moments import Term, doubly_robust, ratio_terms, sum_terms

if TYPE_CHECKING:  # plans are built with this module's registry
    from simulator.plan.compiled import Plan
from simulator.model.value import RatioMetric, SumMetric

Totals = Callable[[Term], np.ndarray]


SumEstimator = Callable[[SumMetric, str, Totals], Estimate]


@dataclass(frozen=True, slots=True)
class EstimatorKind:
    """A registered estimator of sum metrics and what it needs from the plan.

    `outcome_model`: it needs the DR outcome model (`simulator.model.direct`), which
    the plan fits on the driver, and its ratios use its totals too.
    `stratified`: it post-stratifies (`simulator.estimate.strata`): its function also
    takes the plan (keyword `plan`), shards add the strata's sums, and its ratios are
    ratios of its own totals.
    """

    name: str
    total: Callable[..., Estimate]
    outcome_model: bool = False
    stratified: bool = False


_ESTIMATORS: dict[str, EstimatorKind] = {}


def register_estimator(name: str, *, outcome_model: bool = False,
                       stratified: bool = False) -> Callable[[Callable[..., Estimate]], Callable[..., Estimate]]:
    """Add an estimator of sum metrics under `name`, with its capabilities; names are unique."""

    def add(function: Callable[..., Estimate]) -> Callable[..., Estimate]:
        if name in _ESTIMATORS:
            raise ValueError(f"estimator {name!r} is registered twice")
        _ESTIMATORS[name] = EstimatorKind(name=name, total=function, outcome_model=outcome_model, stratified=stratified)
        return function

    return add


def known_estimators() -> tuple[str, ...]:
    """Every registered estimator's name, in registration order."""
    return tuple(_ESTIMATORS)


def estimator_kind(name: str) -> EstimatorKind:
    """The estimator called `name`; an unknown name lists the known ones."""
    if name not in _ESTIMATORS:
        raise UnknownName("estimator", name, _ESTIMATORS)
    return _ESTIMATORS[name]


def estimator_warnings(name: str) -> tuple[str, ...]:
    """What every output must say about an estimator whose intervals are not the measured default.

    Only the stratified estimator's intervals hold on future traffic in docs/estimation.md
    ("Coverage on future traffic"); the global ones are kept for comparison and retrospectives.
    """
    if estimator_kind(name).stratified:
        return ()
    return (f"estimator {name!r}: its intervals are not the ones measured to hold on future traffic; on "
            "generated data its 95 % intervals of fraud and block-quality deltas cover far less often than that "
            "(docs/estimation.md, \"Other estimators\"); use it to compare estimators, not to decide a launch",)


@register_estimator("ipw")
def ipw(metric: SumMetric, policy: str, total: Totals) -> Estimate:
    """Σ w y."""
    terms = sum_terms(metric, policy)
    value = total(terms.main)
    return Estimate(value=value, grad=lambda: {terms.main: np.ones_like(value)})


@register_estimator("snipw", stratified=True)
def snipw(metric: SumMetric, policy: str, total: Totals, *, plan: Plan) -> Estimate:
    """Self-normalised IPW within strata of what the policy and the baseline do (`simulator.estimate.strata`)."""
    from simulator.estimate.strata import stratified_total  # it reads the value model's tables, a later stage

    return stratified_total(metric, policy, total, plan=plan)


def snipw_global(metric: SumMetric, policy: str, total: Totals) -> Estimate:
    """N · Σ w y / Σ w̃ s, with N (the population's row count) held fixed."""
    terms = sum_terms(metric, policy)
    main, norm, count = total(terms.main), total(terms.norm), total(terms.count)
    value = count * divide(main, norm)

    def grad() -> Gradient:
        if terms.main == terms.norm:  # attempts: N exactly, no variance
            return {terms.main: np.zeros_like(value)}
        return {terms.main: divide(count, norm), terms.norm: -count * divide(main, norm * norm)}

    return Estimate(value=value, grad=grad)


@register_estimator("dr", outcome_model=True)
def dr(metric: SumMetric, policy: str, total: Totals) -> Estimate:
    """Σ_i Σ_a π(a|x_i) m̂(x_i, a) + Σ_i w_i (y_i − m̂(x_i, a_i)); see `simulator.model.direct`."""
    return doubly_robust_total(sum_terms(metric, policy).main, total)


def doubly_robust_total(main: Term, total: Totals) -> Estimate:
    """The DR total of one term: direct method plus the IPW-weighted residual."""
    hat, direct = doubly_robust(main)
    value = total(direct) + total(main) - total(hat)

    def grad() -> Gradient:
        one = np.ones_like(value)
        return {main: one, hat: -one, direct: one}

    return Estimate(value=value, grad=grad)


def plain_total(main: Term, total: Totals) -> Estimate:
    """The IPW total of one term."""
    value = total(main)
    return Estimate(value=value, grad=lambda: {main: np.ones_like(value)})


def ratio(metric: RatioMetric, policy: str, total: Totals, *, direct: bool = False) -> Estimate:
    """scale · T_num / T_den, with IPW totals or (`direct`) doubly robust ones."""
    num_term, den_term = ratio_terms(metric, policy)
    part = doubly_robust_total if direct else plain_total
    return ratio_of(metric, part(num_term, total), part(den_term, total))


def ratio_of(metric: RatioMetric, num: Estimate, den: Estimate) -> Estimate:
    """scale · num / den, with the gradient (and Hájek parts) of both."""
    value = metric.scale * divide(num.value, den.value)
    d_num = metric.scale * divide(np.ones_like(value), den.value)
    d_den = -metric.scale * divide(num.value, den.value * den.value)

    def grad() -> Gradient:
        out: Gradient = {}
        for parts, factor in ((num.grad, d_num), (den.grad, d_den)):
            for term, g in parts.items():
                out[term] = out.get(term, 0.0) + factor * g
        return out

    parts: dict[object, tuple[np.ndarray, object]] = {}
    for side, factor in ((num.parts, d_num), (den.parts, d_den)):
        for key, (f, part) in side.items():
            parts[key] = (parts[key][0] + factor * f, part) if key in parts else (factor * f, part)
    return Estimate(value=value, grad=grad, parts=parts)


@dataclass(frozen=True)
class Covariance:
    """The covariance of two totals' errors: Σ_i z_ia z_ib − centre(a)·centre(b) (see the module docstring).

    `cross` is the superpopulation cross sum Σ z_a z_b or the design one Σ z_a z_b (1 − p);
    `centre` is T/√n under the superpopulation (None for the design covariance);
    `disjoint(a, b)` says when two totals share no row, so their cross sum is 0 without computing it.
    """

    cross: Callable[[Term, Term], np.ndarray]
    centre: Callable[[Term], np.ndarray] | None = None
    disjoint: Callable[[Term, Term], bool] = lambda a, b: False


def variance(estimate: Estimate, covariance: Covariance) -> np.ndarray:
    """Delta-method variance ∇gᵀ Σ ∇g over the terms of an estimate (clamped at 0).

    Σ_ab = cross(a, b) − centre(a)·centre(b); for totals over disjoint rows (other strata or
    logged actions) cross is 0 and only the centring remains, so no cross sum is computed.
    Pairs are accumulated one by one (not as ∇gᵀC∇g − (∇gᵀc)²), so that a variance which
    is 0 because its totals cancel comes out 0 up to rounding, whatever the sharding.
    """
    terms = sorted((t for t, g in estimate.grad.items() if np.any(g)), key=lambda t: t.key)  # cancelled: no term
    centre = {t: covariance.centre(t) for t in terms} if covariance.centre is not None else None
    out = np.zeros_like(estimate.value, dtype=np.float64)
    for i, a in enumerate(terms):
        for b in terms[i:]:
            disjoint = covariance.disjoint(a, b)
            if disjoint and centre is None:
                continue
            cov = -centre[a] * centre[b] if disjoint else covariance.cross(a, b)
            if centre is not None and not disjoint:
                cov = cov - centre[a] * centre[b]
            factor = 1.0 if a == b else 2.0
            out = out + factor * estimate.grad[a] * estimate.grad[b] * cov
    return np.maximum(out, 0.0)  # rounding can make a variance slightly negative
