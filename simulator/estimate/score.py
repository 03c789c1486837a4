"""Score intervals for estimates that rest on 0/1 outcomes: Wilson per Hájek part, combined by MOVER.

A count such as `authorized_count` is, stratum by stratum, N_k times a share p̂
of explored rows (approved or not). The variance of a share moves with the
share itself — p(1 − p)/m — so a symmetric interval ±t·se is too short exactly
on the side where the estimate erred: with approvals near 90 %, a population
whose explored rows happened to approve more shows a higher count *and* a
smaller standard error, and the truth falls below the interval far more often
than the nominal 2.5 % (measured on fresh populations: 0.05–0.08 below, 0.01
above; docs/estimation.md). The score (Wilson 1927) interval evaluates the
variance at the limit instead of at the estimate and holds both tails for a
binomial share.

How the estimate's interval is built (the method of variance estimates
recovery, MOVER: Zou & Donner 2008; Newcombe 1998 for a difference of two
shares). For each Hájek part j whose value takes two values (lo, hi) under its
action, with share p̂_j = (ȳ_j − lo)/(hi − lo), effective size n_j (Kish) and
weight w_j (the estimate's derivative with respect to the part times N_j·(hi − lo)),
the Wilson limits (l_j, u_j) at the same quantile q give one-sided distances
w_j·(p̂_j − l_j) and w_j·(u_j − p̂_j). Everything else of the estimate (stratum
sizes, money parts, the floor of other parts) keeps its variance V_rest:

    low  = L̂ − √(q²·V_rest + Σ_j (distance of j towards lower L)²)
    high = L̂ + √(q²·V_rest + Σ_j (distance of j towards higher L)²)

with V_rest = V − Σ_j factor_j²·max(within_j, floor_j), what the parts put into
the estimate's variance V. With no two-valued part the interval is t·se on both
sides, as before.

A fraud-valued part whose explored rows show fewer than `FEW` frauds keeps its
rare-event floor instead (`simulator.estimate.rare`): with a handful of events a
share's Wilson limit is dominated by the quantile, not the data, and the floor is
the better-measured prior there (and such estimates are flagged `few_events`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from simulator.config import ValueModel
from simulator.plan.compiled import Plan
from simulator.plan.strata import Members
from simulator.estimate.linearised import Estimate, divide
from simulator.estimate.rare import FEW, PartDiagnostics
from simulator.estimate.strata import HajekPart, outcomes
from simulator.model.value import VALUES
from simulator.stats.units import value_table


@lru_cache(maxsize=256)
def two_values(model: ValueModel, actions: tuple[str, ...], action: int, value: str) -> tuple[float, float] | None:
    """(lo, hi) when a value column under an action takes exactly two values whatever the amount, else None."""
    table = value_table(model, actions)[action, :, VALUES.index(value)]  # (patterns, 2): c0, c1
    if np.any(table[:, 1] != 0):
        return None
    distinct = np.unique(table[:, 0])
    return (float(distinct[0]), float(distinct[1])) if len(distinct) == 2 else None


def wilson(share: np.ndarray, n: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's score limits for a share observed on n (effective) trials, at quantile q."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z2n = q**2 / n
        centre = (share + z2n / 2) / (1 + z2n)
        half = q / (1 + z2n) * np.sqrt(share * (1 - share) / n + z2n / (4 * n))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def score_bounds(estimate: Estimate, variance: np.ndarray, q: np.ndarray, total: Callable[..., np.ndarray],
                 parts: Callable[[HajekPart], PartDiagnostics], plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """The MOVER interval of the module docstring: (low, high) of `estimate` with variance `variance`."""
    model, actions, sure = plan.value_model, plan.actions, deterministic(plan)
    value = estimate.value
    shape = np.shape(value)
    replaced, down, up = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    used = [(np.nan_to_num(np.broadcast_to(f, shape)), p) for f, p in estimate.parts.values()]
    for factor, part in used:
        if not np.any(factor) or _shares_rows(part, used, sure):
            continue
        levels = two_values(model, actions, part.action, part.value)  # type: ignore[attr-defined]
        if levels is None:
            continue
        d = parts(part)  # type: ignore[arg-type]  # parts are HajekParts by construction
        kind = outcomes(model, actions, part.action, part.value)  # type: ignore[attr-defined]
        scored = (factor != 0) & (d.explored > 0) & ((d.events >= FEW) if kind.fraud else True)
        if not np.any(scored):
            continue
        lo, hi = levels
        size, main, norm = total(part.size), total(part.main), total(part.norm)  # type: ignore[attr-defined]
        share = np.clip(np.nan_to_num(divide(divide(main, norm) - lo, hi - lo)), 0.0, 1.0)
        low, high = wilson(share, np.maximum(d.ess, 1.0), q)
        weight = factor * size * (hi - lo)
        below = np.where(weight > 0, share - low, high - share) * np.abs(weight)  # towards a lower estimate
        above = np.where(weight > 0, high - share, share - low) * np.abs(weight)
        replaced = replaced + np.where(scored, factor**2 * np.maximum(d.within, d.floor), 0.0)
        down = down + np.where(scored, below**2, 0.0)
        up = up + np.where(scored, above**2, 0.0)
    rest = q**2 * np.maximum(np.nan_to_num(variance) - replaced, 0.0)
    return value - np.sqrt(rest + down), value + np.sqrt(rest + up)


def deterministic(plan: Plan) -> frozenset[str]:
    """Coded policies (and a sweep's codings) that take one action per cell: their strata of different actions are disjoint."""
    return frozenset(p.name for p in plan.coded
                     if p.table is None or p in plan.codings or bool(np.all((p.table == 0) | (p.table == 1))))


def _shares_rows(part: HajekPart, used: list[tuple[np.ndarray, HajekPart]], sure: frozenset[str]) -> bool:
    """Whether another part of the estimate reads some of the same explored rows (then the two errors are correlated).

    MOVER adds the parts' distances as independent: a part nested in another (the segment's
    mean and one stratum's, in a ratio such as block recall) keeps its share of the t interval.
    """
    own = part.explored.stratum
    assert own is not None
    for factor, other in used:
        if other is part or not np.any(factor) or other.action != part.action:
            continue
        theirs = other.explored.stratum
        assert theirs is not None
        if not _disjoint(own.members, theirs.members, sure):
            return True
    return False


def _disjoint(a: Members, b: Members, sure: frozenset[str]) -> bool:
    """Two strata are disjoint when some deterministic policy takes different actions in them
    (a randomising policy puts a row in several of its strata, with fractional weights)."""
    actions = dict(a)
    return any(policy in sure and policy in actions and actions[policy] != action for policy, action in b)
