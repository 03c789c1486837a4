"""A threshold sweep's grid: its points, the score bins they share, and the grid policy coding them.

Every point of a threshold grid on one score chooses, for a row, block if
`score >= block_above`, else challenge if `score >= challenge_above`, else
allow (the semantics of the `threshold` kind). Sort every threshold of every
point into `edges`: a row's *bin* is the number of edges at or below its score,
so each point's decision is a function of the bin alone, and the bins where a
point takes a given action form one contiguous range `[lo, hi)`. The engine
therefore aggregates rows once per (segment, bin, logged action) — the bin is
the code of one coded "grid" policy — and every point's totals are range
sums over bins (prefix-sum differences): O(rows + points) instead of
O(rows × points), and the same numbers as evaluating each point alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import product
from typing import ClassVar

import numpy as np
import polars as pl

from policies.base import Actions, Coded, score_values
from simulator.config_tables import Range
from simulator.errors import InvalidConfig, UnknownName
from simulator.plan.compiled import Binned, Plan, PlannedPolicy
from simulator.plan.moments import INV_P, metric_terms, stratified_items, term_basis
from simulator.plan.strata import stratifiable
from simulator.schema import ALLOW, BLOCK, CHALLENGE, UNIT_RANGE

GRID_POLICY = "sweep:threshold"  # the grid's coding in a plan (not a valid config name: it has a colon)


def grid_values(spec: Range | Sequence[float] | float | None, where: str,
                bounds: tuple[float, float] = UNIT_RANGE) -> tuple[float, ...] | None:
    """The thresholds a `[sweep]` key names: a range table, a list, or one number, within the score's `bounds`.

    `bounds` is [0, 1], or the score's declared `[data.score_range]` (thresholds are in its units).
    """
    if spec is None:
        return None
    values = spec.values() if isinstance(spec, Range) else (
        (float(spec),) if isinstance(spec, int | float) else tuple(float(v) for v in spec))
    if not values:
        raise InvalidConfig(f"{where}: the list of thresholds is empty")
    low, high = bounds
    bad = [v for v in values if not low <= v <= high]
    if bad:
        raise InvalidConfig(f"{where}: thresholds must be in [{low:g}, {high:g}], got {bad[0]:g}")
    return values if isinstance(spec, Range) else tuple(sorted(set(values)))


@dataclass(frozen=True, slots=True)
class ThresholdGrid:
    """The valid points of a threshold grid (`challenge_above < block_above`) and their bins.

    `challenge` and `block` are `(points,)` with NaN where the grid has no such
    threshold. `skipped` counts the combinations left out because their
    challenge threshold was not below their block threshold.
    """

    score: str
    challenge: np.ndarray
    block: np.ndarray
    edges: np.ndarray
    skipped: int

    @property
    def points(self) -> int:
        return len(self.block)

    @property
    def bins(self) -> int:
        return len(self.edges) + 1

    def label(self, point: int) -> str:
        """A readable name of one point, e.g. `challenge>=0.2 block>=0.5`."""
        parts = [f"{name}>={value:g}" for name, value in (("challenge", self.challenge[point]), ("block", self.block[point]))
                 if np.isfinite(value)]
        return " ".join(parts)

    def frame(self) -> pl.DataFrame:
        """One row per point: its index, label and thresholds (null when the grid has none)."""
        return pl.DataFrame({
            "point": np.arange(self.points, dtype=np.int32),
            "label": [self.label(p) for p in range(self.points)],
            "challenge_above": self.challenge,
            "block_above": self.block,
        }).with_columns(pl.col("challenge_above", "block_above").fill_nan(None))

    def ranges(self, actions: Actions) -> tuple[np.ndarray, np.ndarray]:
        """`(lo, hi)`, each `(points, actions)`: the bins `[lo, hi)` where each point takes each action."""
        first = self._first_bin(self.challenge), self._first_bin(self.block)
        challenge_from, block_from = first
        challenge_from = np.minimum(challenge_from, block_from)
        spans = {ALLOW: (np.zeros_like(block_from), challenge_from),
                 CHALLENGE: (challenge_from, block_from),
                 BLOCK: (block_from, np.full_like(block_from, self.bins))}
        lo = np.zeros((self.points, len(actions)), dtype=np.int64)
        hi = np.zeros((self.points, len(actions)), dtype=np.int64)
        for index, action in enumerate(actions):
            if action in spans:
                lo[:, index], hi[:, index] = spans[action]
        return lo, hi

    def _first_bin(self, thresholds: np.ndarray) -> np.ndarray:
        """The first bin whose rows are at or above each threshold (`bins` when unset: never)."""
        out = np.full(self.points, self.bins, dtype=np.int64)
        finite = np.isfinite(thresholds)
        out[finite] = np.searchsorted(self.edges, thresholds[finite], side="left") + 1
        return out


def threshold_grid(score: str, challenge: tuple[float, ...] | None, block: tuple[float, ...] | None,
                   actions: Actions, where: str) -> ThresholdGrid:
    """Every valid combination of the two threshold lists, in (block, challenge) order."""
    if challenge is None and block is None:
        raise InvalidConfig(f"{where}: needs block_above and/or challenge_above (a list or {{start, stop, num}})")
    for action, values, key in ((CHALLENGE, challenge, "challenge_above"), (BLOCK, block, "block_above")):
        if (values is not None or action == ALLOW) and action not in actions:
            raise InvalidConfig(f"{where}.{key}: needs action {action!r}, which is not in the action set ({', '.join(actions)})")
    pairs = list(product(block if block is not None else (np.nan,), challenge if challenge is not None else (np.nan,)))
    b = np.array([p[0] for p in pairs], dtype=np.float64)
    c = np.array([p[1] for p in pairs], dtype=np.float64)
    valid = ~(np.isfinite(b) & np.isfinite(c) & (c >= b))
    if not valid.any():
        raise InvalidConfig(f"{where}: no grid point has challenge_above < block_above")
    edges = np.unique(np.concatenate([v for v in (challenge, block) if v is not None]).astype(np.float64))
    return ThresholdGrid(score=score, challenge=c[valid], block=b[valid], edges=edges, skipped=int((~valid).sum()))


@dataclass(frozen=True, slots=True)
class ScoreBins:
    """The grid policy: coded by each row's bin among the grid's edges.

    Its table is a placeholder (allow everywhere): every point's own decision
    per bin is applied on the driver (`simulator.estimate.grid_totals`).
    """

    score: str
    edges: np.ndarray
    actions: Actions
    where: str
    deterministic: ClassVar[bool] = True
    logging: ClassVar[bool] = False

    @property
    def columns(self) -> frozenset[str]:
        return frozenset({self.score})

    def coded(self, batch: pl.DataFrame) -> Coded:
        """Code = the number of edges at or below the row's score."""
        score = score_values(batch, self.score, where=self.where)
        codes = np.searchsorted(self.edges, score, side="right").astype(np.int32)
        table = np.zeros((len(self.edges) + 1, len(self.actions)))
        table[:, self.actions.index(ALLOW)] = 1.0  # every action set has allow (config check)
        return Coded(codes=codes, table=table)

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        return self.coded(batch).probabilities()


def grid_plan(plan: Plan, grid: ThresholdGrid, names: Sequence[str]) -> Plan:
    """The plan with the grid's bins as one more coding of the cells, and their bootstrap sums kept per bin.

    `names` are the data's columns (the score must be one of them).
    """
    if grid.score not in names:
        raise UnknownName("score column", grid.score, names)
    bins = ScoreBins(score=grid.score, edges=grid.edges, actions=plan.actions, where="sweep")
    table = bins.coded(pl.DataFrame({grid.score: []}, schema={grid.score: pl.Float64})).table
    coding = PlannedPolicy(name=GRID_POLICY, policy=bins, table=table)
    plan = replace(plan, codings=(*plan.codings, coding), columns=plan.columns | {grid.score})
    if not plan.bootstrap:
        return plan
    terms = {t for _, ts in metric_terms(GRID_POLICY, plan) for t in ts if t.policy == GRID_POLICY}
    moments = {(INV_P, t.value) for t in terms if term_basis(t, plan) == INV_P}
    outer = None
    if plan.stratified:  # the points' strata: the grid's action crossed with the baseline's
        moments |= {m for items in stratified_items(plan.values, plan.actions).values() for m in items}
        outer = plan.baseline if stratifiable(plan.baseline, plan) else None
    return replace(plan, binned=Binned(coding=GRID_POLICY, moments=tuple(sorted(moments)), outer=outer))
