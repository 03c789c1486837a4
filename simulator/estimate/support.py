"""Support diagnostics: how much of a policy's probability mass the logging policy never explored.

IPW can only re-weight rows the logging policy could have produced. Mass a
policy puts on an action the logging policy never takes for a row is invisible
to every estimator, so estimates that need it are flagged, not reported.

- Exact, when the data has `logging_prob_<action>` for every action: the share
  of the policy's mass on (row, action) pairs with logging probability 0.
- From the data, otherwise: a row logged with propensity 1 explored no other
  action, so mass on any other action there is unsupported; and so is mass on
  an action never logged in the segment. Together a lower bound of the truth
  (a row with propensity < 1 explored some other action, not necessarily all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.stats.shard import ROWS, SUPPORT_KEY, mass_column

if TYPE_CHECKING:  # SegmentTotals answers unsupported_mass through this module
    from simulator.estimate.totals import SegmentTotals


def _masses(policy: str, totals: SegmentTotals, unsupported: bool) -> np.ndarray:
    """(segments, actions) Σ over rows of π(action|x) (optionally only where unexplored)."""
    plan = totals.plan
    planned = plan.policy(policy)
    rows = totals.column(ROWS)
    out = np.zeros((len(totals.labels), len(plan.actions)))
    for index, action in enumerate(plan.actions):
        if planned.coded:
            assert planned.table is not None
            per_cell = rows * planned.table[totals.keys.codes[policy], index]
            if unsupported:
                per_cell = per_cell * ((totals.column(SUPPORT_KEY) >> index) & 1)
        else:
            per_cell = totals.column(mass_column(policy, action, unsupported))
        out[:, index] = totals.by_segment(per_cell)
    return out


def unsupported_mass(policy: str, totals: SegmentTotals) -> np.ndarray:
    """Share of the policy's mass, per segment, on actions the logging policy never explored."""
    plan = totals.plan
    if plan.policy(policy).logging:
        return np.zeros(len(totals.labels))
    n = totals.rows
    lacking = _masses(policy, totals, unsupported=True)
    if not plan.logging_probs:
        logged = np.column_stack(
            [totals.by_segment(totals.column(ROWS) * (totals.keys.action == a)) for a in range(len(plan.actions))]
        )
        lacking = np.where(logged == 0, _masses(policy, totals, unsupported=False), lacking)
    lacking = lacking.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, lacking / np.where(n > 0, n, 1), 0.0)
