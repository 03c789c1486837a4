"""Which sums the estimators need, and how a policy's weight enters each of them.

Every estimate is a smooth function of weighted totals `T = Σ_i weight_i · value_i`
(a *term*: a policy, a `Weighting` and a value column), and its interval needs
the cross sums `Σ_i z_ij · z_il` of the terms it uses. A row's weight factors as
`coefficient(cell) · basis_i`:

- basis `one` (= 1): the logging policy, whose weight π(a|x)/propensity is exactly 1;
- basis `inv_p` (= 1/propensity): coded policies, with coefficient π(a_logged | cell)
  (or [a=allow]·π(block | cell) for the blocked weighting), and the allowed weighting;
- basis `lpb` (= [a=allow]·logging_prob_block/propensity): the logging policy's blocked weighting;
- bases `t:<name>` / `b:<name>`: per-row weights of policies that are not finitely coded.

So a shard only sums `basis · value` and `basis · basis' · value · value'` per
cell (policy-independent), and the estimators apply the cell coefficients. This
module lists exactly the sums a plan needs and computes the coefficients.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import combinations_with_replacement
from typing import TYPE_CHECKING

import numpy as np

from simulator.schema import ALLOW, BLOCK, LOGGED
from simulator.plan.strata import RARE, Stratum
from simulator.model.value import RatioMetric, SumMetric, ValueSet, Weighting, counterfactual_column, counterfactual_columns

if TYPE_CHECKING:  # the plan uses this module's names; this module only reads plans
    from simulator.plan.compiled import Plan

ONE = "one"
INV_P = "inv_p"
DIRECT = "dm"  # pseudo-basis of the doubly robust estimator's direct-method part (no row weight)
HAT = "hat:"  # value prefix: the outcome model's prediction at the logged action
DM = "dm:"  # value prefix: the outcome model's prediction averaged over the policy's actions
LOGGED_BLOCK = "lpb"
ANY_POLICY = ""  # terms whose weight does not depend on the policy (the allowed weighting)


@dataclass(frozen=True, slots=True)
class Term:
    """A weighted total: Σ_i weight(policy, weighting)_i · value_i.

    With a `stratum` (`simulator.plan.strata`), the total runs over that stratum's
    rows and weights instead; `policy` and `weighting` are then unused ("", TARGET).
    """

    policy: str
    weighting: Weighting
    value: str
    stratum: Stratum | None = None
    # A total order on terms, for stable layouts; and the hash, computed once: finalize looks terms up
    # in memo tables hundreds of thousands of times, and a stratum's nested tuples are slow to hash.
    key: tuple[object, ...] = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = (self.policy, self.weighting.value, self.value, () if self.stratum is None else self.stratum.key)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "_hash", hash((self.policy, self.weighting, self.value, self.stratum)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[Term], tuple[object, ...]]:
        """Rebuilt (and re-hashed) where it is unpickled: string hashes differ between processes."""
        return (Term, (self.policy, self.weighting, self.value, self.stratum))


def pair(a: Term, b: Term) -> tuple[Term, Term]:
    """The two terms in a canonical order, for memo keys of symmetric sums (by hash first: cheap to compare)."""
    return (a, b) if (a._hash, a.key) <= (b._hash, b.key) else (b, a)


def stratum_term(value: str, stratum: Stratum) -> Term:
    """The total of a value column over a stratum."""
    return Term("", Weighting.TARGET, value, stratum)


@dataclass(frozen=True, slots=True)
class Cells:
    """The keys of statistics cells that weights depend on: logged action and policy codes."""

    action: np.ndarray  # (C,) index into plan.actions
    codes: Mapping[str, np.ndarray]  # coded policy name -> (C,) code


def product(a: str, b: str) -> str:
    """Canonical name of the per-row product of two value columns."""
    return "*".join(sorted((a, b)))


def row_basis(name: str) -> str:
    """Name of the per-row target basis of a policy that is not coded."""
    return f"t:{name}"


def row_block_basis(name: str) -> str:
    """Name of the per-row blocked basis of a policy that is not coded."""
    return f"b:{name}"



def term_basis(term: Term, plan: Plan) -> str | None:
    """The basis a term's weight uses; None when the data cannot support it."""
    if term.stratum is not None:
        return INV_P if term.stratum.logged is not None and term.stratum.weighted else ONE
    if term.value.startswith(DM):
        return DIRECT
    if term.weighting is Weighting.ALLOWED:
        return INV_P
    planned = plan.policy(term.policy)
    if planned.logging:
        if term.weighting is Weighting.TARGET:
            return ONE
        return LOGGED_BLOCK if plan.logging_probs else None
    if planned.coded:
        return INV_P
    return row_basis(term.policy) if term.weighting is Weighting.TARGET else row_block_basis(term.policy)


def coefficients(term: Term, plan: Plan, cells: Cells) -> np.ndarray:
    """Per-cell coefficient of a term's basis: the weight is coefficient · basis."""
    size = cells.action.shape[0]
    if term.stratum is not None:
        return stratum_coefficients(term.stratum, plan, cells)
    if term.weighting is Weighting.ALLOWED:
        return (cells.action == plan.actions.index(ALLOW)).astype(np.float64)
    planned = plan.policy(term.policy)
    if not planned.coded:
        return np.ones(size)
    table = planned.table
    assert table is not None  # coded policies carry their table (internal invariant)
    code = cells.codes[term.policy]
    if term.weighting is Weighting.TARGET:
        return table[code, cells.action]
    return (cells.action == plan.actions.index(ALLOW)) * table[code, plan.actions.index(BLOCK)]


def stratum_coefficients(stratum: Stratum, plan: Plan, cells: Cells) -> np.ndarray:
    """Per-cell membership of a stratum: Π π_policy(action | cell), times [logged = action] when restricted."""
    out = np.ones(cells.action.shape[0])
    for policy, action in stratum.members:
        table = plan.policy(policy).table
        assert table is not None  # only coded policies are stratified
        out = out * table[cells.codes[policy], action]
    if stratum.logged is not None:
        out = out * (cells.action == stratum.logged)
    return out


@dataclass(frozen=True, slots=True)
class SumTerms:
    """The terms of a sum metric: its total, its self-normaliser and the population size."""

    main: Term
    norm: Term
    count: Term


def sum_terms(metric: SumMetric, policy: str) -> SumTerms:
    """Terms of a sum metric for one policy."""
    target = metric.weighting is Weighting.TARGET
    owner = ANY_POLICY if metric.weighting is Weighting.ALLOWED else policy
    return SumTerms(
        main=Term(owner, metric.weighting, metric.value),
        norm=Term(policy if target else ANY_POLICY, Weighting.TARGET if target else Weighting.ALLOWED, metric.population),
        count=Term(LOGGED, Weighting.TARGET, metric.population),
    )


def ratio_terms(metric: RatioMetric, policy: str) -> tuple[Term, Term]:
    """Numerator and denominator terms of a ratio metric for one policy."""
    return sum_terms(metric.numerator, policy).main, sum_terms(metric.denominator, policy).main


def doubly_robust(term: Term) -> tuple[Term, Term]:
    """The prediction and direct-method terms that go with a total in the DR estimator."""
    return Term(term.policy, term.weighting, HAT + term.value), Term(term.policy, term.weighting, DM + term.value)


def uses_direct(policy: str, plan: Plan) -> bool:
    """DR applies to every policy but the logging one, whose totals are observed."""
    return plan.direct is not None and not plan.policy(policy).logging


def metric_terms(policy: str, plan: Plan) -> Iterator[tuple[str, tuple[Term, ...]]]:
    """Every metric's name and the terms its estimate uses."""
    direct = uses_direct(policy, plan)
    for metric in plan.values.sums:
        terms = sum_terms(metric, policy)
        extra = doubly_robust(terms.main) if direct else ()
        yield metric.name, (terms.main, terms.norm, terms.count, *extra)
    for ratio in plan.values.ratios:
        num, den = ratio_terms(ratio, policy)
        extra = (*doubly_robust(num), *doubly_robust(den)) if direct else ()
        yield ratio.name, (num, den, *extra)


@dataclass(frozen=True, slots=True)
class Needs:
    """The sums a shard must produce: linear (basis, value) and quadratic (basis, basis, product)."""

    linear: tuple[tuple[str, str], ...]
    quadratic: tuple[tuple[str, str, str], ...]
    design: tuple[tuple[str, str, str], ...] = ()  # quadratic sums × (1 − propensity)
    direct: tuple[str, ...] = ()  # value columns the DR outcome model predicts


def needed_sums(plan: Plan) -> Needs:
    """Linear and quadratic sums for every metric of every policy and its paired delta."""
    linear: set[tuple[str, str]] = set()
    quadratic: set[tuple[str, str, str]] = set()
    names = [p.name for p in (*plan.policies, *plan.codings)]  # a coding's totals are read by whoever added it
    base = dict(metric_terms(plan.baseline, plan))
    strata = stratified_items(plan.values, plan.actions) if plan.stratified else {}
    strata_quadratic: set[tuple[str, str, str]] = set()
    direct_values: set[str] = set()
    from simulator.plan.direct_terms import direct_quadratic  # it builds on this module's names

    for name in names:
        for metric, terms in metric_terms(name, plan):
            direct_values |= {t.value.removeprefix(DM) for t in terms if t.value.startswith(DM)}
            quadratic |= direct_quadratic((*terms, *base[metric]), plan)  # DR: cross sums of the direct method
            used = [t for t in (*terms, *base[metric]) if term_basis(t, plan) not in (None, DIRECT)]
            own = {(_basis(t, plan), t.value) for t in used}
            items = own | strata.get(metric, set())
            linear |= items
            for (ba, va), (bb, vb) in combinations_with_replacement(sorted(items), 2):
                both = (ba, va) in own and (bb, vb) in own
                (quadratic if both else strata_quadratic).add((*sorted((ba, bb)), product(va, vb)))
    linear |= {(ONE, "one"), (ONE, "amount")}
    if plan.stratified:
        # the rare-event floor's counts (`simulator.estimate.rare`), whichever metrics the action set keeps
        linear |= {(ONE, v) for v in (*RARE.values(), "fraud_volume", "authorized", "mature_authorized",
                                      "authorized_volume")}
        strata_quadratic |= {(ONE, ONE, product(a, b)) for a, b in
                             (("amount", "amount"), ("amount", "fraud_volume"), ("amount", "authorized_volume"))}
        linear |= {(ONE, c) for c in counterfactual_columns(plan.values, plan.actions)}  # ... of values without a table
    design: set[tuple[str, str, str]] = set()
    if plan.finite:
        design = {q for q in quadratic | strata_quadratic if ONE not in q[:2]}
        if plan.policy(plan.baseline).logging:  # superpopulation sums then only serve the effective sample size
            quadratic = {q for q in quadratic if q[0] == q[1] and q[2] in ("one*one", "mature*mature")}
    quadratic |= strata_quadratic  # superpopulation sums of the strata: diagnostics and the rare-event floor need them
    return Needs(
        linear=tuple(sorted(linear)),
        quadratic=tuple(sorted(quadratic)),
        design=tuple(sorted(design)),
        direct=tuple(sorted(direct_values)),
    )


def stratified_items(values: ValueSet, actions: tuple[str, ...]) -> dict[str, set[tuple[str, str]]]:
    """Per metric, the (basis, value) sums the stratified estimator reads (`simulator.estimate.strata`).

    Hájek sums of the value and its population over explored rows (basis inv_p), stratum
    sizes and fixed values over every row (basis one), and the value over every row (for
    the delta against the logging policy's observed total); a ratio reads both of its parts.
    A row value's total under block is exact from every row (its value evaluated under block).
    Every cross sum among one metric's items is needed too; the rare-event floor adds
    counts of events and the amount's moments.
    """
    def items(metric: SumMetric) -> set[tuple[str, str]]:
        out = {(ONE, "one"), (ONE, "mature"), (INV_P, metric.value), (INV_P, metric.population),
               (ONE, metric.population), (ONE, metric.value)}
        if BLOCK in actions and metric.value in values.row_values:
            out.add((ONE, counterfactual_column(metric.value, BLOCK, "declined")))
        return out

    out = {m.name: items(m) for m in values.sums}
    out |= {r.name: items(r.numerator) | items(r.denominator) for r in values.ratios}
    return out


def _basis(term: Term, plan: Plan) -> str:
    basis = term_basis(term, plan)
    assert basis is not None  # filtered by the caller
    return basis


def linear_column(basis: str, value: str) -> str:
    return f"L|{basis}|{value}"


def quadratic_column(basis_a: str, basis_b: str, prod: str) -> str:
    a, b = sorted((basis_a, basis_b))
    return f"Q|{a}|{b}|{prod}"


def design_column(basis_a: str, basis_b: str, prod: str) -> str:
    a, b = sorted((basis_a, basis_b))
    return f"D|{a}|{b}|{prod}"


def direct_column(action: str, value: str) -> str:
    """Σ over a cell of the outcome model's prediction of `value` under `action`."""
    return f"M|{action}|{value}"


def row_direct_column(policy: str, weighting: Weighting, value: str) -> str:
    """Σ over a cell of a per-row policy's prediction Σ_a π(a|x)·m̂(a) (or π(block)·m̂(allow))."""
    return f"PM|{policy}|{weighting.value}|{value}"


def max_column(basis: str) -> str:
    return f"max|{basis}"
