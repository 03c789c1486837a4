"""Post-strata of the default estimator (stratified SNIPW) and the totals it reads.

Global self-normalisation re-weights every row when a policy changes a few of
them, so rows two policies treat alike stop cancelling in their delta, and a
candidate that only blocks more can show *more* fraud. The stratified
estimator (`simulator.estimate.strata`) normalises within strata instead:

- a policy's own strata: the rows where it takes action c (weight π(c|x));
- a pair's strata: the rows where the baseline takes b and the policy takes c
  (weight π_B(b|x)·π_P(c|x)); a delta sums only over strata with b ≠ c.

Within a stratum, the value of "action a on these rows" is either fixed by the
action (a count, every outcome of a block: computed exactly from every row of
the stratum) or the Hájek mean of the rows logged with a, times the stratum's
size. Every piece is a total of one value column over a stratum, a `Term`
whose `stratum` restricts its cells: the shard's per-cell sums serve it
unchanged, with the cell coefficient Π π_policy(action | cell) · [logged = a].

This module decides which strata and totals exist (so the bootstrap and the
shards can list them); `simulator.estimate.strata` turns them into estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import product as cartesian
from typing import TYPE_CHECKING

import numpy as np

from simulator.schema import ALLOW, BLOCK
from simulator.model.value import Weighting

if TYPE_CHECKING:  # the plan uses this module's names; this module only reads plans
    from simulator.plan.compiled import Plan
    from simulator.plan.moments import Term

Members = tuple[tuple[str, int], ...]  # (policy, action index): a row's membership is Π π_policy(action | x)


@dataclass(frozen=True, slots=True)
class Stratum:
    """Which rows a stratified total runs over, and how they are weighted.

    `members`: every row, weighted by Π π_policy(action | x) (coded policies: constant per cell).
    `logged`: only rows logged with this action index; then `weighted` says whether each row
    counts 1/propensity (a Hájek sum) or 1 (a count of explored rows).
    """

    members: Members
    logged: int | None = None
    weighted: bool = True

    @property
    def key(self) -> tuple[object, ...]:
        """A total order on strata, for stable layouts."""
        return (self.members, -1 if self.logged is None else self.logged, self.weighted)


def stratifiable(name: str, plan: Plan) -> bool:
    """Reported coded policies (constant distribution per cell) can be post-stratified; per-row ones cannot.

    A sweep's grid is a coding too: its points' strata are read by `simulator.estimate.grid_totals`.
    """
    planned = plan.policy(name)
    return planned.coded and planned.table is not None


def actions_taken(name: str, plan: Plan) -> tuple[int, ...]:
    """The actions a coded policy puts any probability on (a coding's table is a placeholder: any action)."""
    if any(p.name == name for p in plan.codings):
        return tuple(range(len(plan.actions)))
    table = plan.policy(name).table
    assert table is not None  # stratifiable policies only
    return tuple(int(a) for a in np.flatnonzero(table.max(axis=0) > 0))


def own_strata(name: str, plan: Plan) -> tuple[tuple[Members, int], ...]:
    """The strata of one policy: (members, the action it takes there)."""
    return tuple((((name, c),), c) for c in actions_taken(name, plan))


def paired_strata(baseline: str, name: str, plan: Plan) -> tuple[tuple[Members, int, int], ...]:
    """The strata of a pair: (members, baseline's action, policy's action)."""
    pairs = cartesian(actions_taken(baseline, plan), actions_taken(name, plan))
    return tuple((((baseline, b), (name, c)), b, c) for b, c in pairs)


def looked_at(weighting: Weighting, action: int, actions: tuple[str, ...]) -> int | None:
    """Whose outcome a stratum's total reads: the action taken, allow for blocked rows' fraud, or none."""
    if weighting is Weighting.TARGET:
        return action
    if weighting is Weighting.ALLOWED:
        return actions.index(ALLOW)
    return actions.index(ALLOW) if action == actions.index(BLOCK) else None


RARE = {"fraud": "fraud", "fraud_volume": "fraud", "fraud_loss": "fraud"}  # value → its event indicator


def disjoint_rows(a: Term, b: Term, plan: Plan) -> bool:
    """Whether two stratified totals run over disjoint rows: other logged actions, or other actions of a deterministic member."""
    sa, sb = a.stratum, b.stratum
    if sa is None or sb is None:
        return False
    if sa.logged is not None and sb.logged is not None and sa.logged != sb.logged:
        return True
    taken = dict(sa.members)
    for policy, action in sb.members:
        if policy in taken and taken[policy] != action and deterministic(policy, plan):
            return True
    return False


@lru_cache(maxsize=256)
def _deterministic(table_bytes: bytes, shape: tuple[int, ...]) -> bool:
    table = np.frombuffer(table_bytes).reshape(shape)
    return bool(np.all((table == 0) | (table == 1)))


def deterministic(policy: str, plan: Plan) -> bool:
    """A coded policy whose every code takes one action (so its action strata do not overlap)."""
    table = plan.policy(policy).table
    return table is not None and _deterministic(table.tobytes(), table.shape)
