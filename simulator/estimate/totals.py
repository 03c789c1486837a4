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
        return self.by_segment(self.column(ROWS))

    def coef(self, term: Term) -> np.ndarray:
        """Per-cell coefficient of the term's basis (memoised per stratum: many values share one)."""
        key: Term | Stratum = term if term.stratum is None else term.stratum
        if key not in self._coef:
            self._coef[key] = coefficients(term, self.plan, self.keys)
        return self._coef[key]

    def total(self, term: Term) -> np.ndarray:
        """Σ_i weight_i · value_i per segment (NaN when the data cannot support the term)."""
        if term not in self._total:
            basis = term_basis(term, self.plan)
            if basis == DIRECT:
                self._total[term] = self.by_segment(self._direct(term))
            elif basis is None:
                self._total[term] = np.full(len(self.labels), np.nan)
            else:
                self._total[term] = self.by_segment(self.coef(term) * self.column(linear_column(basis, term.value)))
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
                moment = self.column(quadratic_column(ba, bb, product(a.value, b.value)))
                self._cross[key] = self.by_segment(self.coef(a) * self.coef(b) * moment)
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
                moment = self.column(design_column(ba, bb, product(a.value, b.value)))
                self._design[key] = self.by_segment(self.coef(a) * self.coef(b) * moment)
        return self._design[key]

    def max_weight(self, term: Term) -> np.ndarray:
        """Largest weight of a term's policy in each segment."""
        basis = term_basis(term, self.plan)
        out = np.zeros(len(self.labels))
        if basis is None:
            return np.full(len(self.labels), np.nan)
        per_cell = np.abs(self.coef(term)) * self.column(max_column(basis))
        for _, segment in self._indices:
            np.maximum.at(out, segment, per_cell)
        return out

    def unsupported_mass(self, policy: str) -> np.ndarray:
        """Share of the policy's mass, per segment, on actions the logging policy never explored."""
        return unsupported_mass(policy, self)

    def policy_labels(self, policy: str) -> np.ndarray:
        """The policy's name."""
        return np.asarray(policy, dtype=object)
