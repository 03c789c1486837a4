"""Cross sums of the DR direct-method totals from the parts of `simulator.plan.direct_terms`.

Σ_i z_ia · z_ib for a pair of terms at least one of which is a `dm:` term:
each side is a sum of parts (per-cell coefficient × a value under a basis), so
the cross sum is Σ over pairs of parts of coefficient_a · coefficient_b ·
Σ_cell Q|basis_a|basis_b|value_a*value_b, summed per segment.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from simulator.plan.compiled import Plan
from simulator.plan.direct_terms import direct_parts, part_coefficients
from simulator.plan.moments import DIRECT, ONE, Cells, Term, product, quadratic_column, term_basis


class CellTotals(Protocol):
    """What the cross sums read from `simulator.estimate.totals.SegmentTotals`."""

    plan: Plan
    keys: Cells

    def coef(self, term: Term) -> np.ndarray: ...

    def column(self, name: str) -> np.ndarray: ...

    def by_segment(self, per_cell: np.ndarray) -> np.ndarray: ...


Part = tuple[np.ndarray, str, str]  # per-cell coefficient, basis, value


def cell_parts(totals: CellTotals, term: Term) -> list[Part]:
    """A term's total per cell as parts: the term itself, or a `dm:` term's predictions per action."""
    basis = term_basis(term, totals.plan)
    if basis != DIRECT:
        assert basis is not None  # unsupported terms are NaN before this (internal invariant)
        return [(totals.coef(term), basis, term.value)]
    return [(part_coefficients(p, totals.plan, totals.keys), ONE, p.value) for p in direct_parts(term, totals.plan)]


def direct_cross(totals: CellTotals, a: Term, b: Term) -> np.ndarray:
    """Σ_i z_ia · z_ib per segment when a or b is a DR direct-method term."""
    per_cell = np.zeros(totals.keys.action.shape[0])
    for coef_a, basis_a, value_a in cell_parts(totals, a):
        for coef_b, basis_b, value_b in cell_parts(totals, b):
            per_cell = per_cell + coef_a * coef_b * totals.column(quadratic_column(basis_a, basis_b, product(value_a, value_b)))
    return totals.by_segment(per_cell)
