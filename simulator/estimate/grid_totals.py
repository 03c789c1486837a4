"""Totals of every point of a threshold grid at once, from cell sums binned by score.

`SegmentTotals` answers `total(term)` for one policy as a `(segments,)` array.
`GridTotals` answers the same questions (the `Totals` protocol) for the grid
policy with a `(segments, points)` array, so the estimators, which are
elementwise, evaluate every grid point in one call. Terms of other policies
(the logging policy, the allowed weighting) come back as `(segments, 1)` and broadcast.

A term's weight is its cell coefficient times a basis (`simulator.plan.moments`).
For every point and every logged action, the cells where a grid term's
coefficient is 1 are one contiguous range of bins (0 elsewhere), and so is the
product of two terms' coefficients (the intersection of two ranges). So a sum
of any cell column over a term (or a pair of terms) is, per segment, a
difference of two prefix sums over bins: `cum[hi] − cum[lo]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from simulator.estimate.direct_cross import cell_parts
from simulator.plan.direct_terms import direct_parts
from simulator.plan.grid import GRID_POLICY, ThresholdGrid
from simulator.plan.strata import Stratum
from simulator.plan.moments import (
    DIRECT,
    DM,
    ONE,
    Term,
    design_column,
    direct_column,
    linear_column,
    max_column,
    product,
    quadratic_column,
    stratum_coefficients,
    term_basis,
)
from simulator.plan.compiled import Plan
from simulator.schema import ALLOW, BLOCK
from simulator.stats.shard import ROWS, SUPPORT_KEY, code_key
from simulator.estimate.totals import SegmentTotals
from simulator.model.value import Weighting

_NOISE = 1e-12  # relative to a segment's Σ |column|: what prefix-sum differences cannot resolve
Ranges = tuple[np.ndarray, np.ndarray]  # (lo, hi), each (points, actions): bins [lo, hi) per logged action


@dataclass
class GridTotals:
    """Per-segment totals of every grid point, sharing `base`'s segments and its other policies' terms."""

    base: SegmentTotals
    grid: ThresholdGrid
    policy: str = field(init=False, default=GRID_POLICY)  # the grid policy's name in the plan
    choose: Ranges = field(init=False)  # bins where each point chooses each action
    _bin_action: np.ndarray = field(init=False)  # per cell: bin * actions + logged action
    _binner: sparse.csr_matrix = field(init=False)  # (segments · bins · actions) × cells
    _cum: dict[str, np.ndarray] = field(init=False, default_factory=dict)
    _scale: dict[str, np.ndarray] = field(init=False, default_factory=dict)  # per segment: Σ |column|
    _total: dict[Term, np.ndarray] = field(init=False, default_factory=dict)
    _pair: dict[tuple[str, Term, Term], np.ndarray] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        plan, cells = self.base.plan, self.base.cells
        actions = len(plan.actions)
        self.choose = self.grid.ranges(plan.actions)
        bins = cells[code_key(self.policy)].to_numpy().astype(np.int64)
        self._bin_action = bins * actions + self.base.keys.action
        width = self.grid.bins * actions
        segment, cell = self.base.memberships()
        shape = (len(self.base.labels) * width, cells.height)
        self._binner = sparse.csr_matrix((np.ones(len(cell)), (segment * width + self._bin_action[cell], cell)), shape=shape)

    @property
    def plan(self) -> Plan:
        return self.base.plan

    @property
    def labels(self) -> tuple[str, ...]:
        return self.base.labels

    @property
    def segmentation(self) -> np.ndarray:
        return self.base.segmentation

    @property
    def rows(self) -> np.ndarray:
        return self.base.rows[:, None]

    # -- ranges of bins per term -------------------------------------------------

    def ranges(self, term: Term) -> Ranges:
        """Where a grid term's coefficient is 1, per point and logged action (it is 0 elsewhere).

        A stratified term's grid member takes one action: its bins, in the logged actions the
        stratum admits; its other members' coefficients are per cell (`outside`).
        """
        lo, hi = self.choose
        if term.stratum is not None:
            action = next(a for p, a in term.stratum.members if p == self.policy)
            logged = range(lo.shape[1]) if term.stratum.logged is None else (term.stratum.logged,)
            out_lo, out_hi = np.zeros_like(lo), np.zeros_like(hi)
            for column in logged:
                out_lo[:, column], out_hi[:, column] = lo[:, action], hi[:, action]
            return out_lo, out_hi
        if term.weighting is Weighting.TARGET:
            return lo, hi
        allow, block = self.plan.actions.index(ALLOW), self.plan.actions.index(BLOCK)
        out_lo, out_hi = np.zeros_like(lo), np.zeros_like(hi)  # blocked: logged allow rows the point blocks
        out_lo[:, allow], out_hi[:, allow] = lo[:, block], hi[:, block]
        return out_lo, out_hi

    # -- binned prefix sums --------------------------------------------------------

    def cumulative(self, per_cell: np.ndarray, key: str) -> np.ndarray:
        """(segments, bins + 1, actions): Σ of a cell column over bins below each edge, per logged action."""
        if key not in self._cum:
            actions = len(self.plan.actions)
            binned = (self._binner @ per_cell).reshape(len(self.labels), self.grid.bins, actions)
            cum = np.zeros((binned.shape[0], binned.shape[1] + 1, actions))
            np.cumsum(binned, axis=1, out=cum[:, 1:])
            self._cum[key] = cum
            self._scale[key] = np.abs(binned).sum(axis=(1, 2))
        return self._cum[key]

    def range_sum(self, key: str, ranges: Ranges) -> np.ndarray:
        """(segments, points): Σ over logged actions of a binned column over each point's bins.

        A difference of prefix sums carries an absolute rounding error of a few ulps of
        the segment's whole total; results below that noise floor are exactly 0 (as the
        same sum over no rows is when the point is evaluated alone).
        """
        lo, hi = ranges
        cum = self._cum[key]
        out = np.zeros((cum.shape[0], lo.shape[0]))
        for action in range(cum.shape[2]):
            out += cum[:, hi[:, action], action] - cum[:, lo[:, action], action]
        return np.where(np.abs(out) <= _NOISE * self._scale[key][:, None], 0.0, out)

    # -- the Totals protocol -----------------------------------------------------------

    def total(self, term: Term) -> np.ndarray:
        """Σ_i weight_i · value_i per segment and point."""
        if not self.is_grid(term):
            return self.base.total(term)[:, None]
        if term not in self._total:
            basis = term_basis(term, self.plan)
            if basis == DIRECT:
                self._total[term] = self._direct(term)
            else:
                name = self._binned(term, linear_column(basis, term.value))
                self._total[term] = self.range_sum(name, self.ranges(term))
        return self._total[term]

    def is_grid(self, term: Term) -> bool:
        """Whether a term's weight depends on the grid point (the grid policy's, or a stratum it is a member of)."""
        if term.stratum is not None:
            return any(p == self.policy for p, _ in term.stratum.members)
        return term.policy == self.policy

    def _others(self, term: Term) -> tuple[tuple[str, int], ...]:
        """A stratified term's members other than the grid (none for other terms)."""
        return () if term.stratum is None else tuple(m for m in term.stratum.members if m[0] != self.policy)

    def outer_weights(self, term: Term, outer: str | None) -> np.ndarray | None:
        """A grid stratum's membership per code of the outer coding (the baseline), for binned replicates."""
        rest = self._others(term)
        if not rest:
            return None
        if len(rest) != 1 or rest[0][0] != outer:
            raise RuntimeError(f"binned replicates keep the codes of {outer!r}, not of {rest}")
        table = self.plan.policy(outer).table
        assert table is not None
        return table[:, rest[0][1]]

    def outside(self, term: Term) -> tuple[np.ndarray, str] | None:
        """A grid term's per-cell coefficient from members other than the grid, and a name for it (None: 1)."""
        rest = self._others(term)
        if not rest:
            return None
        return stratum_coefficients(Stratum(rest), self.plan, self.base.keys), repr(rest)

    def _binned(self, term: Term, column: str, other: np.ndarray | None = None, other_key: str = "") -> str:
        """Bin a cell column times the term's outside coefficient (and another per-cell factor); its cache key."""
        per_cell, name = self.base.column(column), column
        scale = self.outside(term)
        if scale is not None:
            per_cell, name = per_cell * scale[0], f"{name}@{scale[1]}"
        if other is not None:
            per_cell, name = per_cell * other, f"{name}@{other_key}"
        self.cumulative(per_cell, name)
        return name

    def _direct(self, term: Term) -> np.ndarray:
        """DR direct-method total: Σ_i Σ_a π_point(a|x_i) m̂(x_i, a) (or π(block)·m̂(allow) when blocked)."""
        value = term.value.removeprefix(DM)
        lo, hi = self.choose
        out = np.zeros((len(self.labels), lo.shape[0]))
        chosen = [(self.plan.actions.index(BLOCK), ALLOW)] if term.weighting is Weighting.BLOCKED else \
            [(i, a) for i, a in enumerate(self.plan.actions)]
        for index, predicted_action in chosen:
            out += self.mass(index, self.base.column(direct_column(predicted_action, value)),
                             direct_column(predicted_action, value))
        return out

    def _pair_sum(self, kind: str, a: Term, b: Term, column: str) -> np.ndarray:
        """Σ of a cell column over the cells where both terms' coefficients are non-zero, times them.

        Two grid terms: the intersection of their bin ranges. A grid term and
        another: the other's per-cell coefficient scales the column before binning.
        """
        a, b = (a, b) if self.is_grid(a) else (b, a)
        key = (kind, *((a, b) if a.key <= b.key else (b, a)))
        if key not in self._pair:
            if self.is_grid(b):
                (alo, ahi), (blo, bhi) = self.ranges(a), self.ranges(b)
                lo = np.maximum(alo, blo)
                ranges = (lo, np.maximum(lo, np.minimum(ahi, bhi)))
                scale = self.outside(b)
                name = self._binned(a, column, *((None, "") if scale is None else scale))
            else:
                ranges, name = self.ranges(a), self._binned(a, column, self.base.coef(b), repr(b.key))
            self._pair[key] = self.range_sum(name, ranges)
        return self._pair[key]

    def cross(self, a: Term, b: Term) -> np.ndarray:
        """Σ_i z_ia · z_ib per segment and point."""
        if not (self.is_grid(a) or self.is_grid(b)):
            return self.base.cross(a, b)[:, None]
        ba, bb = term_basis(a, self.plan), term_basis(b, self.plan)
        if ba is None or bb is None:
            return np.full((len(self.labels), self.grid.points), np.nan)
        if DIRECT in (ba, bb):
            return self._direct_cross(a, b)
        return self._pair_sum("Q", a, b, quadratic_column(ba, bb, product(a.value, b.value)))

    def _grid_parts(self, term: Term) -> list[tuple[Ranges, str, str]]:
        """A grid term as (bins where its coefficient is 1, basis, value) parts (`simulator.plan.direct_terms`).

        A direct-method part's coefficient is π(action | bin): the bins where each point takes that
        action, whatever the logged action.
        """
        basis = term_basis(term, self.plan)
        if basis != DIRECT:
            assert basis is not None  # NaN before this (internal invariant)
            return [(self.ranges(term), basis, term.value)]
        lo, hi = self.choose
        return [((np.broadcast_to(lo[:, p.action:p.action + 1], lo.shape), np.broadcast_to(hi[:, p.action:p.action + 1], hi.shape)),
                 ONE, p.value) for p in direct_parts(term, self.plan)]

    def _direct_cross(self, a: Term, b: Term) -> np.ndarray:
        """Σ_i z_ia · z_ib per segment and point when a or b is a DR direct-method term (a is made the grid's)."""
        a, b = (a, b) if self.is_grid(a) else (b, a)
        out = np.zeros((len(self.labels), self.grid.points))
        for (alo, ahi), basis_a, value_a in self._grid_parts(a):
            if self.is_grid(b):
                for (blo, bhi), basis_b, value_b in self._grid_parts(b):
                    name = quadratic_column(basis_a, basis_b, product(value_a, value_b))
                    self.cumulative(self.base.column(name), name)
                    lo = np.maximum(alo, blo)
                    out += self.range_sum(name, (lo, np.maximum(lo, np.minimum(ahi, bhi))))
                continue
            for index, (coef_b, basis_b, value_b) in enumerate(cell_parts(self.base, b)):
                column = quadratic_column(basis_a, basis_b, product(value_a, value_b))
                name = f"{column}@{b.key}@{index}"
                self.cumulative(coef_b * self.base.column(column), name)
                out += self.range_sum(name, (alo, ahi))
        return out

    def design_cross(self, a: Term, b: Term) -> np.ndarray:
        """Σ_i z_ia · z_ib · (1 − p_i) per segment and point (0 when either total is observed or fixed)."""
        if not (self.is_grid(a) or self.is_grid(b)):
            return self.base.design_cross(a, b)[:, None]
        ba, bb = term_basis(a, self.plan), term_basis(b, self.plan)
        if ba is None or bb is None:
            return np.full((len(self.labels), self.grid.points), np.nan)
        if ONE in (ba, bb) or DIRECT in (ba, bb):
            return np.zeros((len(self.labels), self.grid.points))
        return self._pair_sum("D", a, b, design_column(ba, bb, product(a.value, b.value)))

    def max_weight(self, term: Term) -> np.ndarray:
        """Largest weight of a grid term in each segment, per point."""
        if not self.is_grid(term):
            return self.base.max_weight(term)[:, None]
        basis = term_basis(term, self.plan)
        if basis is None:
            return np.full((len(self.labels), self.grid.points), np.nan)
        actions = len(self.plan.actions)
        segment, cell = self.base.memberships()
        binned = np.zeros((len(self.labels), self.grid.bins * actions))
        np.maximum.at(binned, (segment, self._bin_action[cell]), self.base.column(max_column(basis))[cell])
        return range_max(binned.reshape(len(self.labels), self.grid.bins, actions), self.ranges(term))

    def mass(self, index: int, per_cell: np.ndarray, key: str) -> np.ndarray:
        """(segments, points): Σ of a cell column over the rows where each point takes action `index`."""
        lo, hi = self.choose
        self.cumulative(per_cell, key)
        # the bins where each point takes `index`, whatever the logged action
        every = np.broadcast_to(lo[:, index:index + 1], lo.shape), np.broadcast_to(hi[:, index:index + 1], hi.shape)
        return self.range_sum(key, every)

    def unsupported_mass(self, policy: str) -> np.ndarray:
        """Share of each point's rows that go to an action the logging policy never explored (see simulator.estimate.support)."""
        if policy != self.policy:
            return self.base.unsupported_mass(policy)[:, None]
        plan, rows = self.plan, self.base.column(ROWS)
        lacking = np.zeros((len(self.labels), self.grid.points))
        support = self.base.column(SUPPORT_KEY)
        for index in range(len(plan.actions)):
            unexplored = self.mass(index, rows * ((support >> index) & 1), f"unexplored|{index}")
            if not plan.logging_probs:  # an action never logged in the segment is unexplored on all its rows
                logged = self.base.by_segment(rows * (self.base.keys.action == index))
                unexplored = np.where((logged == 0)[:, None], self.mass(index, rows, ROWS), unexplored)
            lacking += unexplored
        n = self.rows
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n > 0, lacking / np.where(n > 0, n, 1), 0.0)

    def policy_labels(self, policy: str) -> np.ndarray:
        """Each point's label for the grid policy (`(1, points)`), else the policy's name."""
        if policy != self.policy:
            return self.base.policy_labels(policy)
        return np.asarray(self.grid.frame()["label"].to_list(), dtype=object)[None, :]


def range_max(binned: np.ndarray, ranges: Ranges) -> np.ndarray:
    """(segments, points): max over each point's bins, per logged action, of a (segments, bins, actions) array ≥ 0."""
    lo, hi = ranges
    segments, bins, actions = binned.shape
    out = np.zeros((segments, lo.shape[0]))
    for action in range(actions):
        for start in np.unique(lo[:, action]):  # few distinct starts: one running max each
            points = np.flatnonzero((lo[:, action] == start) & (hi[:, action] > start))
            if len(points) == 0:
                continue
            running = np.maximum.accumulate(binned[:, start:, action], axis=1)
            out[:, points] = np.maximum(out[:, points], running[:, hi[points, action] - start - 1])
    return out
