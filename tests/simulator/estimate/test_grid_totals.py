"""The grid totals answer, for every point of a threshold grid, what `SegmentTotals` answers for that
threshold policy compiled alone: totals, cross sums, design cross sums, largest weights, unsupported mass.

Both are built from the same small random frame (`tests.factories.make_transactions`): the grid as a
sweep builds it (`grid_plan` on the baseline-only plan), the single policy as `run` does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import combinations_with_replacement
from typing import Any

import numpy as np
import polars as pl
import pytest

from simulator.config import parse_config
from simulator.estimate.grid_totals import GridTotals
from simulator.estimate.totals import SegmentTotals
from simulator.plan.compiled import compile_plan
from simulator.plan.grid import ThresholdGrid, grid_plan, threshold_grid
from simulator.plan.moments import (
    DIRECT,
    Term,
    design_column,
    max_column,
    metric_terms,
    needed_sums,
    product,
    quadratic_column,
    term_basis,
)
from simulator.stats.shard import shard_stats
from tests.factories import ACTIONS, make_transactions

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
SEGMENTS = {"by": [["card_country"], ["card_funding", "channel"]]}
RTOL = 1e-9  # prefix sums over bins reassociate the sums; differences are rounding, relative to the scale


def _frame(logging_probs: str) -> pl.DataFrame:
    """400 factory rows; `partial`: rows with fraud_score < 0.2 were logged by a policy that only allows.

    Those rows keep only their logged-allow ones, with propensity 1 and logging_prob (1, 0, 0): a
    policy that challenges or blocks them puts mass where the logging policy never explored.
    `none`: no logging_prob columns (support is then judged from the actions logged per segment).
    """
    frame = make_transactions(n=400, seed=5)
    if logging_probs == "none":
        return frame.drop([f"logging_prob_{a}" for a in ACTIONS])
    if logging_probs == "partial":
        low = pl.col("fraud_score") < 0.2
        frame = frame.filter(~low | (pl.col("action") == "allow")).with_columns(
            propensity=pl.when(low).then(1.0).otherwise(pl.col("propensity")),
            logging_prob_allow=pl.when(low).then(1.0).otherwise(pl.col("logging_prob_allow")),
            logging_prob_challenge=pl.when(low).then(0.0).otherwise(pl.col("logging_prob_challenge")),
            logging_prob_block=pl.when(low).then(0.0).otherwise(pl.col("logging_prob_block")),
        )
    return frame


def _table(estimation: dict[str, Any], policies: list[dict[str, Any]]) -> dict[str, Any]:
    return {"data": {"as_of": AS_OF}, "segments": SEGMENTS, "estimation": {"min_ess": 0.0} | estimation,
            "policies": policies}


def _totals(frame: pl.DataFrame, table: dict[str, Any], grid: ThresholdGrid | None = None):
    plan = compile_plan(parse_config(table), frame.lazy())
    if grid is not None:
        plan = grid_plan(plan, grid, frame.columns)
    stats = shard_stats(frame.select(sorted(plan.columns)), plan, needed_sums(plan))
    base = SegmentTotals(plan=plan, cells=stats.cells)
    return base if grid is None else GridTotals(base=base, grid=grid)


def _same(grid_value: np.ndarray, alone: np.ndarray, what: str) -> None:
    scale = float(np.nanmax(np.abs(alone))) if np.isfinite(alone).any() else 1.0
    np.testing.assert_allclose(grid_value, alone, rtol=RTOL, atol=RTOL * scale, equal_nan=True, err_msg=what)


def _summed(totals: SegmentTotals, kind: str, a: Term, b: Term | None = None) -> bool:
    """Whether the plan's shard sums hold what this question reads (a plan only sums what its estimators use).

    Questions about a term without a basis or with the DR pseudo-basis read no sum (both answer NaN or 0).
    """
    bases = [term_basis(t, totals.plan) for t in (a, b) if t is not None]
    if None in bases or DIRECT in bases:
        return kind != "max"
    if kind == "max":
        return max_column(bases[0]) in totals.cells.columns
    assert b is not None
    column = (quadratic_column if kind == "cross" else design_column)(*bases, product(a.value, b.value))
    return column in totals.cells.columns


def _at(values: np.ndarray, point: int) -> np.ndarray:
    """One point's column of a `(segments, points)` answer; terms of other policies come back `(segments, 1)`."""
    return values[:, point] if values.shape[1] > 1 else values[:, 0]


def _renamed(term: Term, family: str) -> Term:
    return Term(family, term.weighting, term.value) if term.policy == "alone" else term


CASES = {
    # (estimation, logging_prob columns, challenge thresholds, block thresholds)
    "finite-snipw": ({"estimator": "snipw", "population": "finite"}, "all", (0.1, 0.3, 0.5), (0.4, 0.6, 0.9)),
    "superpopulation-ipw": ({"estimator": "ipw", "population": "superpopulation"}, "all", (0.1, 0.3, 0.5),
                            (0.4, 0.6, 0.9)),
    "unexplored-rows": ({"estimator": "snipw", "population": "finite"}, "partial", (0.05, 0.3), (0.1, 0.6)),
    "no-logging-probs": ({"estimator": "ipw", "population": "superpopulation"}, "none", (0.2, 0.5), (0.7, 0.95)),
    "block-only": ({"estimator": "snipw", "population": "finite"}, "all", None, (0.05, 0.5, 0.8)),
    "dr": ({"estimator": "dr", "population": "finite", "dr_bins": 4}, "all", (0.1, 0.4), (0.6, 0.9)),
    # the direct method's cross sums (per-row DR scores), with every action's predictions
    "dr-superpopulation": ({"estimator": "dr", "population": "superpopulation", "dr_bins": 4}, "all", (0.1, 0.4),
                           (0.6, 0.9)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_grid_point_equals_its_threshold_policy_alone(case: str) -> None:
    estimation, logging_probs, challenge, block = CASES[case]
    frame = _frame(logging_probs)
    grid = threshold_grid("fraud_score", challenge, block, ACTIONS, "sweep")
    grid_totals = _totals(frame, _table(estimation, []), grid)
    name = grid_totals.policy
    assert grid.points == (len(challenge or (None,)) * len(block)) - grid.skipped
    compared = 0
    for point in range(grid.points):
        policy = {"name": "alone", "kind": "threshold", "score": "fraud_score", "block_above": float(grid.block[point])}
        if np.isfinite(grid.challenge[point]):
            policy["challenge_above"] = float(grid.challenge[point])
        alone = _totals(frame, _table(estimation, [policy]))
        assert alone.labels == grid_totals.labels
        np.testing.assert_array_equal(alone.rows, grid_totals.rows[:, 0])
        _same(_at(grid_totals.unsupported_mass(name), point), alone.unsupported_mass("alone"),
              f"{case} point {point} unsupported mass")
        baseline = dict(metric_terms("logged", alone.plan))
        for metric, terms in metric_terms("alone", alone.plan):
            used = list(dict.fromkeys((*terms, *baseline[metric])))  # the estimate's terms and the paired baseline's
            for term in used:
                where = f"{case} point {point} {metric} {term}"
                mine = _renamed(term, name)
                _same(_at(grid_totals.total(mine), point), alone.total(term), f"total {where}")
                if _summed(alone, "max", term):
                    _same(_at(grid_totals.max_weight(mine), point), alone.max_weight(term), f"max_weight {where}")
            for a, b in combinations_with_replacement(used, 2):
                where = f"{case} point {point} {metric} {a} × {b}"
                fa, fb = _renamed(a, name), _renamed(b, name)
                if _summed(alone, "cross", a, b):
                    _same(_at(grid_totals.cross(fa, fb), point), alone.cross(a, b), f"cross {where}")
                    compared += 1
                if _summed(alone, "design", a, b):
                    _same(_at(grid_totals.design_cross(fa, fb), point), alone.design_cross(a, b), f"design_cross {where}")
                    compared += 1
    assert compared > 0


def test_the_unexplored_case_really_has_unsupported_mass() -> None:
    # guards the case above: with rows logged only as allow, a point that blocks from 0.1 blocks some of them
    frame = _frame("partial")
    grid = threshold_grid("fraud_score", None, (0.1,), ACTIONS, "sweep")
    grid_totals = _totals(frame, _table({"estimator": "snipw", "population": "finite"}, []), grid)
    assert grid_totals.unsupported_mass(grid_totals.policy)[0, 0] > 0  # segment ALL
