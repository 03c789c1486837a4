"""Weighted totals and their cross sums per segment, from merged cell statistics.

The estimators and the results table ask any `Totals` for `total(term)`,
`cross(a, b)` and the like; `SegmentTotals` answers for the policies of a run
(arrays over the segments of every segmentation), `GridTotals`
(`simulator.estimate.grid_totals`) for every point of a threshold grid at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import polars as pl
from scipy import sparse

from segments.labels import ALL
from simulator.estimate.direct_cross import direct_cross
from simulator.estimate.support import unsupported_mass
from simulator.model.value import Weighting
from simulator.plan.compiled import Plan
from simulator.plan.moments import (
    DIRECT,
    DM,
    ONE,
    Cells,
    Term,
    coefficients,
    design_column,
    direct_column,
    linear_column,
    max_column,
    pair,
    product,
    quadratic_column,
    row_direct_column,
    term_basis,
)
from simulator.plan.strata import Stratum
from simulator.schema import ALLOW, BLOCK
from simulator.stats.shard import ACTION_KEY, ROWS, code_key, segment_key


SPARSE_SHARE = 0.15  # a coefficient nonzero on fewer cells than this share is summed over those cells alone
# (measured: over 20 % of 100 k cells, the gathers and the bincount cost more than the dense product)


@dataclass(frozen=True, slots=True)
class Support:
    """The cells where a coefficient is not 0 (ascending; None when most are) and whether all of it is finite."""

    cells: np.ndarray | None
    finite: bool


def _product(factors: list[np.ndarray]) -> np.ndarray:
    """f0 · f1 · …, left to right (the order the dense products used: the same bits)."""
    out = factors[0]
    for factor in factors[1:]:
        out = out * factor
    return out


class Totals(Protocol):
    """Weighted totals per segment, for the estimators and the results table.

    Arrays run over `labels` (ALL first, then every segmentation's segments) on
    their first axis. A run's totals are `(segments,)`; a grid's are
    `(segments, points)` for the grid's terms and `(segments, 1)` for any other
    term, so everything downstream broadcasts over points.
    """

    @property
    def plan(self) -> Plan: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def segmentation(self) -> np.ndarray:
        """(segments,) index: 0 = ALL, i = plan.segments.segmentations[i - 1]."""

    @property
    def rows(self) -> np.ndarray:
        """Rows of each segment."""

    def total(self, term: Term) -> np.ndarray:
        """Σ_i weight_i · value_i (NaN when the data cannot support the term)."""

    def cross(self, a: Term, b: Term) -> np.ndarray:
        """Σ_i z_ia · z_ib, where z = weight · value."""

    def design_cross(self, a: Term, b: Term) -> np.ndarray:
        """Σ_i z_ia · z_ib · (1 − p_i): the design covariance of two estimated totals."""

    def max_weight(self, term: Term) -> np.ndarray:
        """Largest weight of a term's policy."""

    def unsupported_mass(self, policy: str) -> np.ndarray:
        """Share of the policy's mass on actions the logging policy never explored."""

    def policy_labels(self, policy: str) -> np.ndarray:
        """The `policy` column of the results: the name, or each grid point's label (broadcastable)."""


@dataclass
class SegmentTotals:
    """Totals of every segment of every segmentation (ALL first), with memoised terms and cross sums.

    Each cell belongs to one segment of each segmentation: a sparse membership
    matrix (segments × cells) turns per-cell sums into per-segment sums in one
    product, so every estimate is computed once for all segments.

    Most totals and cross sums a run reads are a stratum's, whose coefficients are 0
    on all but a few cells (half of a bench run's 6,500 sums touch under 0.4 % of its
    100 k cells). Those are summed over their nonzero cells alone (`_sparse_sum`), in
    the same order as the membership product, so the sums are the same to the bit.
    """

    plan: Plan
    cells: pl.DataFrame
    labels: tuple[str, ...] = field(init=False)
    segmentation: np.ndarray = field(init=False)  # (segments,) index: 0 = ALL, i = plan.segments.segmentations[i - 1]
    member: sparse.csr_matrix = field(init=False)
    _indices: list[tuple[int, np.ndarray]] = field(init=False)  # per segmentation: (first segment, cell -> segment)
    keys: Cells = field(init=False)
    _coef: dict[Term | Stratum, np.ndarray] = field(init=False, default_factory=dict)
    _total: dict[Term, np.ndarray] = field(init=False, default_factory=dict)
    _cross: dict[tuple[Term, Term], np.ndarray] = field(init=False, default_factory=dict)
    _design: dict[tuple[Term, Term], np.ndarray] = field(init=False, default_factory=dict)
    _columns: dict[str, np.ndarray] = field(init=False, default_factory=dict)
    _nonzero: dict[Term | Stratum, Support] = field(init=False, default_factory=dict)
    _finite: dict[str, bool] = field(init=False, default_factory=dict)
    _segment_of: np.ndarray = field(init=False)  # (cells, segmentations + 1): each cell's segments, ALL first
    _groups: list[tuple[np.ndarray, np.ndarray]] = field(init=False, default_factory=list)  # see `_grouped`
    _rows: np.ndarray | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        n = self.cells.height
        labels, segmentation, self._indices = [ALL], [0], [(0, np.zeros(n, dtype=np.int64))]
        for index in range(len(self.plan.segments.segmentations)):
            column = self.cells[segment_key(index)].to_numpy().astype(str)
            uniques, inverse = np.unique(column, return_inverse=True)
            self._indices.append((len(labels), inverse + len(labels)))
            labels += uniques.tolist()
            segmentation += [index + 1] * len(uniques)
        self.labels, self.segmentation = tuple(labels), np.asarray(segmentation)
        rows, columns = self.memberships()
        self._segment_of = np.ascontiguousarray(rows.reshape(len(self._indices), n).T)
        self.member = sparse.csr_matrix((np.ones(len(rows)), (rows, columns)), shape=(len(labels), n))
        codes = {p.name: self.cells[code_key(p.name)].to_numpy() for p in self.plan.coded}
        self.keys = Cells(action=self.cells[ACTION_KEY].to_numpy().astype(np.int64), codes=codes)

    def memberships(self) -> tuple[np.ndarray, np.ndarray]:
        """(segment, cell) index pairs: each cell once per segmentation, ALL included."""
        segment = np.concatenate([segments for _, segments in self._indices])
        return segment, np.tile(np.arange(self.cells.height), len(self._indices))

    def by_segment(self, per_cell: np.ndarray) -> np.ndarray:
        """Σ over the cells of each segment."""
        return self.member @ per_cell

    def column(self, name: str) -> np.ndarray:
        """A cell column as numpy (memoised: the estimators ask for the same ones often)."""
        if name not in self._columns:
            self._columns[name] = self.cells[name].to_numpy()
        return self._columns[name]

    @property
    def rows(self) -> np.ndarray:
        """Rows of each segment (memoised and read-only: every metric reads it)."""
        if self._rows is None:
            self._rows = self.by_segment(self.column(ROWS))
            self._rows.flags.writeable = False
        return self._rows

    def coef(self, term: Term) -> np.ndarray:
        """Per-cell coefficient of the term's basis (memoised per stratum: many values share one)."""
        key: Term | Stratum = term if term.stratum is None else term.stratum
        if key not in self._coef:
            self._coef[key] = coefficients(term, self.plan, self.keys)
        return self._coef[key]

    def nonzero(self, term: Term) -> Support:
        """Where the term's coefficient is not 0 (cells ascending, None when dense), and whether it is finite.

        A coefficient of 0 times finite factors adds ±0 to a segment's sum, which leaves it unchanged
        (a sum that starts at +0 is never −0): those cells can be skipped, provided every other factor
        of the product is finite there.
        """
        key: Term | Stratum = term if term.stratum is None else term.stratum
        if key not in self._nonzero:
            coef = self.coef(term)
            cells = np.flatnonzero(coef)
            self._nonzero[key] = Support(cells=cells if cells.size <= SPARSE_SHARE * coef.size else None,
                                         finite=bool(np.isfinite(coef).all()))
        return self._nonzero[key]

    def _finite_column(self, name: str) -> np.ndarray | None:
        """A cell column when every value is finite (so 0 times it is 0), else None."""
        if name not in self._finite:
            self._finite[name] = bool(np.isfinite(self.column(name)).all())
        return self.column(name) if self._finite[name] else None

    def _sparse_sum(self, cells: np.ndarray, values: np.ndarray) -> np.ndarray:
        """`by_segment` of a per-cell vector that is 0 outside `cells` (ascending), from `values` on them alone.

        The same sums to the bit: each segment adds its cells' values in ascending cell order from +0, as the
        membership product does (`np.bincount` adds its weights in input order, and the input runs cell by
        cell, each cell's segments side by side).
        """
        segments = self._segment_of[cells].ravel()
        return np.bincount(segments, weights=np.repeat(values, len(self._indices)), minlength=len(self.labels))

    def _weighted(self, terms: tuple[Term, ...], name: str) -> np.ndarray:
        """Per segment Σ over cells of Π coef(term) · column `name`: over the terms' common nonzero cells when sparse."""
        supports = [self.nonzero(t) for t in terms]
        column = self._finite_column(name)
        sparse = [s.cells for s in supports if s.cells is not None]
        if column is None or not sparse or not all(s.finite for s in supports):
            return self.by_segment(_product([self.coef(t) for t in terms]) * self.column(name))
        cells = min(sparse, key=len)  # the other terms' zeros there add ±0 too: no need to leave them out
        return self._sparse_sum(cells, _product([self.coef(t)[cells] for t in terms]) * column[cells])

    def total(self, term: Term) -> np.ndarray:
        """Σ_i weight_i · value_i per segment (NaN when the data cannot support the term)."""
        if term not in self._total:
            basis = term_basis(term, self.plan)
            if basis == DIRECT:
                self._total[term] = self.by_segment(self._direct(term))
            elif basis is None:
                self._total[term] = np.full(len(self.labels), np.nan)
            else:
                self._total[term] = self._weighted((term,), linear_column(basis, term.value))
        return self._total[term]

    def _direct(self, term: Term) -> np.ndarray:
        """Per cell Σ_i Σ_a π(a|x_i) m̂(x_i, a) for a DR direct-method term (see simulator.model.direct)."""
        value = term.value.removeprefix(DM)
        plan = self.plan
        if term.weighting is Weighting.ALLOWED:
            return self.column(direct_column(ALLOW, value))
        planned = plan.policy(term.policy)
        if not planned.coded:
            return self.column(row_direct_column(term.policy, term.weighting, value))
        assert planned.table is not None
        code = self.keys.codes[term.policy]
        if term.weighting is Weighting.BLOCKED:
            return planned.table[code, plan.actions.index(BLOCK)] * self.column(direct_column(ALLOW, value))
        return sum(planned.table[code, i] * self.column(direct_column(a, value)) for i, a in enumerate(plan.actions))

    def cross(self, a: Term, b: Term) -> np.ndarray:
        """Σ_i z_ia · z_ib per segment, where z = weight · value."""
        key = pair(a, b)
        if key not in self._cross:
            ba, bb = term_basis(a, self.plan), term_basis(b, self.plan)
            if ba is None or bb is None:
                self._cross[key] = np.full(len(self.labels), np.nan)
            elif DIRECT in (ba, bb):  # DR: the direct method's per-row predictions (simulator.estimate.direct_cross)
                self._cross[key] = direct_cross(self, a, b)
            else:
                self._cross[key] = self._weighted((a, b), quadratic_column(ba, bb, product(a.value, b.value)))
        return self._cross[key]

    def design_cross(self, a: Term, b: Term) -> np.ndarray:
        """Σ_i z_ia · z_ib · (1 − p_i) per segment: the design covariance of two estimated totals.

        Zero when either term is the logging policy's own (observed, so known exactly).
        """
        key = pair(a, b)
        if key not in self._design:
            ba, bb = term_basis(a, self.plan), term_basis(b, self.plan)
            if ba is None or bb is None:
                self._design[key] = np.full(len(self.labels), np.nan)
            elif ONE in (ba, bb) or DIRECT in (ba, bb):  # observed, or fixed given the rows
                self._design[key] = np.zeros(len(self.labels))
            else:
                self._design[key] = self._weighted((a, b), design_column(ba, bb, product(a.value, b.value)))
        return self._design[key]

    def max_weight(self, term: Term) -> np.ndarray:
        """Largest weight of a term's policy in each segment."""
        basis = term_basis(term, self.plan)
        out = np.zeros(len(self.labels))
        if basis is None:
            return np.full(len(self.labels), np.nan)
        if self.cells.is_empty():  # no cell, no run to reduce: ALL's largest weight stays 0
            return out
        per_cell = np.abs(self.coef(term)) * self.column(max_column(basis))
        # a maximum is the same in any order: reduce each segment's cells as one run (np.maximum.at is ~20x slower)
        grouped = np.concatenate([np.maximum.reduceat(per_cell[order], starts) for order, starts in self._grouped()])
        return np.maximum(out, grouped)  # from 0, as a running maximum over the cells

    def _grouped(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per segmentation (ALL first): the cells ordered by segment, and where each segment's run starts."""
        if not self._groups:
            for first, segment in self._indices:
                order = np.argsort(segment, kind="stable")
                counts = np.bincount(segment - first)  # every segment has a cell: its label came from one
                self._groups.append((order, np.cumsum(counts) - counts))
        return self._groups

    def unsupported_mass(self, policy: str) -> np.ndarray:
        """Share of the policy's mass, per segment, on actions the logging policy never explored."""
        return unsupported_mass(policy, self)

    def policy_labels(self, policy: str) -> np.ndarray:
        """The policy's name."""
        return np.asarray(policy, dtype=object)
