"""Where a paired delta's variance comes from: the rows exploration logs, the rows production logs, the rest.

The exploration planner (`simulator.decide.sizing`, docs/review.md "Before you explore: sizing a test")
scales each part of a delta's variance by how the part would grow with more days of traffic or a larger
exploration share. The stratified SNIPW delta (`simulator.estimate.strata`) is a sum of Hájek means, each
over the rows of one stratum logged with one action, times the stratum's size:

- a Hájek mean read from rows logged with an action production does *not* take there rests on explored
  rows: their number grows with days × exploration share (`explored`);
- a Hájek mean read from rows logged with production's own action (e.g. the challenged payments a
  candidate would block) rests on rows the logging policy takes with probability 1 − e·(K − 1)/K, which
  barely depends on the exploration share (`usual`);
- the rest of the variance (the strata's sizes as draws of future traffic, the dispute-delay curve) grows
  with rows only.

Each Hájek part contributes factor² · max(within, floor): its linearised variance, raised to the rare-event
floor where the floor binds (`simulator.estimate.rare`), exactly as the reported `delta_se` adds them.
Parts over disjoint rows (other strata, other logged actions) have no covariance, so the parts add up.
Estimators without Hájek parts (`ipw`, `dr`, policies that are not coded) put their whole variance in `rest`
here; the planner says so rather than guess.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from simulator.config import Estimation
from simulator.estimate.linearised import finite
from simulator.estimate.rare import part_diagnostics
from simulator.estimate.results import metric_estimates
from simulator.estimate.totals import SegmentTotals
from simulator.plan.compiled import Plan
from simulator.schema import PRODUCTION
from simulator.stats.shard import Stats

SOURCES_SCHEMA: dict[str, type[pl.DataType]] = {
    "segment": pl.String,
    "metric": pl.String,
    "var_explored": pl.Float64,  # Hájek variance of the delta from rows logged with an explored action
    "var_usual": pl.Float64,  # ... from rows logged with production's own action
    "hajek_parts": pl.Int64,  # how many Hájek means the delta rests on (0: no stratified split known)
}


def delta_variance_sources(stats: Stats, plan: Plan, estimation: Estimation, policy: str,
                           metrics: Sequence[str]) -> pl.DataFrame:
    """Per segment (ALL first) and metric, the delta's (policy − baseline) Hájek variance by the rows it rests on.

    Computed on the driver from a run's statistics (no pass over the data). Without production as the
    baseline, which logged action is production's is not known: every Hájek part counts as `explored`.
    """
    totals = SegmentTotals(plan=plan, cells=stats.cells)
    parts = part_diagnostics(totals)
    own = {m.name: m.estimate for m in metric_estimates(policy, totals, estimation.estimator)}
    base = {m.name: m.estimate for m in metric_estimates(plan.baseline, totals, estimation.estimator)}
    frames = []
    for name in metrics:
        delta = own[name].minus(base[name])
        explored = np.zeros(len(totals.labels))
        usual = np.zeros(len(totals.labels))
        count = 0
        for factor, part in delta.parts.values():
            weight = finite(np.asarray(factor, dtype=np.float64))
            if not np.any(weight):
                continue  # cancelled in the pair
            diagnostics = parts(part)  # type: ignore[arg-type]  # parts are HajekParts by construction
            contribution = weight**2 * np.maximum(diagnostics.within, diagnostics.floor)
            if _logged_by_production(part, plan):
                usual = usual + contribution
            else:
                explored = explored + contribution
            count += 1
        frames.append(pl.DataFrame({"segment": list(totals.labels), "metric": name, "var_explored": explored,
                                    "var_usual": usual, "hajek_parts": count}, schema=SOURCES_SCHEMA))
    return pl.concat(frames) if frames else pl.DataFrame(schema=SOURCES_SCHEMA)


def _logged_by_production(part: object, plan: Plan) -> bool:
    """Whether a Hájek part reads rows logged with the action production takes on its stratum."""
    if plan.baseline != PRODUCTION:
        return False
    stratum = part.main.stratum  # type: ignore[attr-defined]
    members = dict(stratum.members)
    return stratum.logged is not None and members.get(PRODUCTION) == stratum.logged
