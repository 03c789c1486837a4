"""The DR direct-method totals as sums of per-row predictions, so that their cross sums are mergeable.

A DR total is T̂ = Σ_i ψ_i with ψ_i = D_i + w_i (y_i − m̂(x_i, a_i)) and
D_i = Σ_a π(a|x_i) m̂(x_i, a) (`simulator.estimate.estimators.doubly_robust_total`:
terms `dm:` + `main` − `hat:`, gradient 1, 1, −1). Its superpopulation variance
Σ_i (ψ_i − T̂/n)², and a paired delta's from ψ_cand − ψ_base, is the
delta-method variance over those terms once the cross sums Σ_i D_i z_i (with
every other term z) and Σ_i D_i D'_i are known. D_i is a sum of *parts*, each
a per-cell coefficient times a per-row value under the basis `one`:

- a coded policy's target weighting: Σ_a π(a | cell) · m̂_a(x_i), one part per action;
- a coded policy's blocked weighting: π(block | cell) · m̂_allow(x_i);
- the allowed weighting: m̂_allow(x_i);
- a per-row policy (units are rows): its own mix, one value per row.

So the cross sums are ordinary quadratic sums `Q|one|β|m:<a>:<v>*y` per cell,
computed by shards like every other (`simulator.stats.shard`), additive across
shards, and combined with the parts' coefficients on the driver.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import combinations_with_replacement
from typing import TYPE_CHECKING

import numpy as np

from simulator.model.value import Weighting
from simulator.plan.moments import DIRECT, DM, ONE, Cells, Term, product, term_basis
from simulator.schema import ALLOW, BLOCK

if TYPE_CHECKING:
    from simulator.plan.compiled import Plan

PREDICTED = "m:"  # value prefix: the outcome model's prediction under one action, m:<action index>:<value>
MIXED = "pm:"  # value prefix: a per-row policy's Σ_a π(a|x) m̂(x, a), pm:<policy index>:<weighting>:<value>


def predicted_value(action: int, value: str) -> str:
    """Per-row value column m̂(x, action) of `value` (indices keep policy and action names out of products)."""
    return f"{PREDICTED}{action}:{value}"


def mixed_value(plan: Plan, policy: str, weighting: Weighting, value: str) -> str:
    """Per-row value column of a per-row policy's direct-method prediction under `weighting`."""
    index = next(i for i, p in enumerate(plan.policies) if p.name == policy)
    return f"{MIXED}{index}:{weighting.value}:{value}"


@dataclass(frozen=True, slots=True)
class DirectPart:
    """One part of a direct-method total: coefficient(cell) × `value` (basis `one`).

    The coefficient is π(`action` | cell) of the coded `policy`, or 1 when `policy` is None.
    """

    value: str
    policy: str | None = None
    action: int = 0


def direct_parts(term: Term, plan: Plan) -> tuple[DirectPart, ...]:
    """The parts whose sum over a cell's rows is a `dm:` term's total there."""
    value = term.value.removeprefix(DM)
    allow, block = plan.actions.index(ALLOW), plan.actions.index(BLOCK)
    if term.weighting is Weighting.ALLOWED:
        return (DirectPart(predicted_value(allow, value)),)
    if not plan.policy(term.policy).coded:
        return (DirectPart(mixed_value(plan, term.policy, term.weighting, value)),)
    if term.weighting is Weighting.BLOCKED:
        return (DirectPart(predicted_value(allow, value), term.policy, block),)
    return tuple(DirectPart(predicted_value(i, value), term.policy, i) for i in range(len(plan.actions)))


def part_coefficients(part: DirectPart, plan: Plan, cells: Cells) -> np.ndarray:
    """Per-cell coefficient of a part."""
    if part.policy is None:
        return np.ones(cells.action.shape[0])
    table = plan.policy(part.policy).table
    assert table is not None  # parts name coded policies only (internal invariant)
    return table[cells.codes[part.policy], part.action]


def moment_parts(term: Term, plan: Plan) -> tuple[tuple[str, str], ...]:
    """(basis, value) of every row-weighted sum a term's total is made of (one, unless it is `dm:`)."""
    basis = term_basis(term, plan)
    if basis == DIRECT:
        return tuple((ONE, p.value) for p in direct_parts(term, plan))
    assert basis is not None  # filtered by the callers
    return ((basis, term.value),)


def direct_quadratic(terms: Iterable[Term], plan: Plan) -> set[tuple[str, str, str]]:
    """Quadratic sums (basis, basis, product) that the cross sums of pairs with a `dm:` term need."""
    parts = {t: moment_parts(t, plan) for t in terms if term_basis(t, plan) is not None}
    out: set[tuple[str, str, str]] = set()
    for a, b in combinations_with_replacement(parts, 2):
        if DIRECT not in (term_basis(a, plan), term_basis(b, plan)):
            continue
        for basis_a, value_a in parts[a]:
            for basis_b, value_b in parts[b]:
                low, high = sorted((basis_a, basis_b))
                out.add((low, high, product(value_a, value_b)))
    return out


def direct_values(needed: Iterable[tuple[str, str, str]]) -> frozenset[str]:
    """The predicted and mixed value columns some of these quadratic sums use (what a shard must add)."""
    names = {name for _, _, prod in needed for name in prod.split("*")}
    return frozenset(n for n in names if n.startswith((PREDICTED, MIXED)))
