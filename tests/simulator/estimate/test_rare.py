"""The rare-event floor of parts that share rows (`simulator.estimate.rare`): hand-computed gaps.

A candidate's estimate is its baseline's stratum A (the rows production allows) plus the change on the
rows inside it where the candidate acts differently, B. The floor must count B's rows once: A without
B takes A's floor minus B's, and B takes (f_A + f_B)² times its own — nothing where the change removes
B's rows from the estimate.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.estimate.rare import PartDiagnostics, _gaps
from simulator.estimate.strata import HajekPart
from simulator.model.value import Weighting
from simulator.plan.moments import Term
from simulator.plan.strata import Stratum

OWN = Stratum((("production", 0),), logged=0, weighted=False)  # rows production allows, explored with allow
PAIR = Stratum((("production", 0), ("candidate", 1)), logged=0, weighted=False)  # ... which the candidate challenges


def _part(stratum: Stratum, value: str = "fraud_loss") -> HajekPart:
    term = Term("", Weighting.TARGET, value, stratum)
    return HajekPart(size=term, main=term, norm=term, explored=term, authorized=term, events=term, amount=term,
                     action=0, value=value)


def _diagnostics(floor: float, within: float, events: float) -> PartDiagnostics:
    one = np.ones(1)
    return PartDiagnostics(within=within * one, floor=floor * one, explored=100 * one, events=events * one,
                           ess=100 * one, unseen=np.zeros(1, dtype=bool))


def _groups(f_own: float, f_pair: float, value: str = "fraud_loss") -> dict[object, list]:
    return {(OWN, 0): [(np.array([f_own]), _part(OWN), _diagnostics(10.0, 4.0, 50.0))],
            (PAIR, 0): [(np.array([f_pair]), _part(PAIR, value), _diagnostics(3.0, 2.0, 20.0))]}


def test_a_change_that_removes_the_inner_rows_floors_the_rest_of_the_stratum_once() -> None:
    """f = 1 and −1: A without B's floor 10 − 3 = 7 against its spread 4 − 2 = 2 adds 5 (both whole added 6 + 1)."""
    gaps, events = _gaps(_groups(1.0, -1.0), totals=None)  # type: ignore[arg-type]  # single parts: no cross sums
    assert gaps[(OWN, 0)][0] == pytest.approx(5.0)
    assert gaps[(PAIR, 0)][0] == 0.0
    assert events[(OWN, 0)][0] == pytest.approx(30.0)  # the explored frauds of A without B


def test_an_inner_part_that_stays_in_the_estimate_keeps_its_floor_with_the_combined_factor() -> None:
    gaps, _ = _gaps(_groups(1.0, 0.5), totals=None)  # type: ignore[arg-type]
    assert gaps[(OWN, 0)][0] == pytest.approx(5.0)
    assert gaps[(PAIR, 0)][0] == pytest.approx(1.5**2 * (3.0 - 2.0))


def test_parts_of_other_values_or_absent_parts_do_not_nest() -> None:
    gaps, _ = _gaps(_groups(1.0, -1.0, value="fraud_volume"), totals=None)  # type: ignore[arg-type]
    assert gaps[(OWN, 0)][0] == pytest.approx(6.0) and gaps[(PAIR, 0)][0] == pytest.approx(1.0)
    gaps, _ = _gaps(_groups(1.0, 0.0), totals=None)  # type: ignore[arg-type]  # B not in this segment's estimate
    assert gaps[(OWN, 0)][0] == pytest.approx(6.0)
