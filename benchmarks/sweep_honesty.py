"""Is a sweep's recommendation reported honestly? Measured over fresh populations (issue #13).

Each replication draws new payments from the generator's fixed world
(`simulator/synthetic/fresh.py`), sweeps a threshold grid with an objective, and
compares what the recommendation reports for the chosen point with that
point's superpopulation truth (the value on future traffic of the same size):

- the reported `net_value` delta against the truth: mean standardised error
  (reported − truth) / se, with se from the reported interval, and the median
  ratio reported / truth;
- whether the reported delta interval covers the truth;
- whether the fraud constraint truly holds for the chosen point.

For `[sweep] holdout = "time"` (chosen on the earlier half, reported on the
later half) against `"none"` (chosen and reported on the same rows).

    .venv/bin/python benchmarks/sweep_honesty.py --rows 30000 --reps 60
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
import simulator.synthetic.fresh as fp  # noqa: E402

from simulator import Execution, parse_config, parse_objective, sweep_frame  # noqa: E402

CHALLENGE = (0.02, 0.05, 0.1, 0.2)
BLOCK = (0.2, 0.3, 0.4, 0.5, 0.6, 0.8)
LOCAL = Execution(engine="local")


def grid_names() -> dict[tuple[float, float], str]:
    return {(c, b): f"grid_{c}_{b}" for c in CHALLENGE for b in BLOCK if c < b}


def config(holdout: str, seed: int):  # noqa: ANN201
    return parse_config({
        "data": {"as_of": fp.as_of(), "immature_labels": "exclude"},  # the truth (simulator.synthetic.fresh) censors at 90 days
        "estimation": {"bootstrap": 0, "seed": seed, "min_ess": 0},
        "sweep": {"score": "fraud_score", "challenge_above": list(CHALLENGE), "block_above": list(BLOCK),
                  "holdout": holdout},
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--reps", type=int, default=60)
    parser.add_argument("--objective", default="net_value; fraud_rate_bps<=45")
    parser.add_argument("--holdouts", default="time,none")
    parser.add_argument("--big", type=int, default=4_000_000, help="rows of the truth population")
    args = parser.parse_args()
    objective = parse_objective(args.objective)
    limit = objective.constraints[0].max if objective.constraints else None
    names = grid_names()
    fp.POLICIES.update({name: thresholds for thresholds, name in names.items()})  # a truth for every grid point
    truth = fp.truth_table(fp.superpopulation_means(args.big), args.rows)
    start, records = time.perf_counter(), []
    for k in range(args.reps):
        log, _ = fp.fresh_population(args.rows, 2_000_000 + k)
        for holdout in args.holdouts.split(","):
            chosen = sweep_frame(config(holdout, k), log, objective=objective, execution=LOCAL).choice.recommendation
            if chosen.point is None:
                records.append({"holdout": holdout, "rep": k, "feasible": False})
                continue
            name = names[(chosen.challenge_above, chosen.block_above)]  # this grid sets both thresholds
            true_delta = truth[(name, objective.metric)] - truth[(fp.BASELINE, objective.metric)]
            se = (chosen.delta_ci_high - chosen.delta_ci_low) / (2 * 1.959964)
            error = chosen.delta - true_delta
            claimed = True if chosen.holdout is None else bool(chosen.holdout["constraints_hold"])
            records.append({
                "holdout": holdout, "rep": k, "feasible": True, "point": name, "reported": chosen.delta,
                "truth": true_delta, "claimed_hold": claimed,
                # the baseline's own thresholds report a delta of exactly 0 with no width: no error to standardise
                "z": error / se if se > 0 else (0.0 if abs(error) < 1e-9 else np.sign(error) * np.inf),
                "covered": chosen.delta_ci_low <= true_delta <= chosen.delta_ci_high,
                "constraint_truly_holds": None if limit is None else truth[(name, "fraud_rate_bps")] <= limit,
            })
    frame = pl.DataFrame(records)
    infeasible = dict(frame.filter(~pl.col("feasible")).group_by("holdout").len().iter_rows())
    found = frame.filter("feasible")
    if found.is_empty():  # no population had a point whose constraints hold on the interval
        print(f"{args.reps} fresh populations of {args.rows:,} rows, objective {args.objective!r}, "
              f"{time.perf_counter() - start:.0f} s: no recommendation in any population; infeasible: {infeasible}")
        return
    summary = found.group_by("holdout", maintain_order=True).agg(
        pl.len().alias("recommended"),
        pl.col("z").mean().alias("mean_standardised_error"),
        pl.col("reported").mean().alias("mean_reported_delta"),
        pl.col("truth").mean().alias("mean_true_delta"),
        pl.col("covered").mean().alias("delta_interval_covers"),
        pl.col("constraint_truly_holds").mean().alias("constraint_truly_holds"),
        pl.col("claimed_hold").mean().alias("claimed_to_hold"),
        pl.col("constraint_truly_holds").filter(pl.col("claimed_hold")).mean().alias("truly_holds_when_claimed"),
        pl.col("point").n_unique().alias("distinct_points"),
    )
    print(f"{args.reps} fresh populations of {args.rows:,} rows, objective {args.objective!r}, "
          f"{time.perf_counter() - start:.0f} s; infeasible: {infeasible}")
    with pl.Config(tbl_cols=-1, tbl_width_chars=200, float_precision=3):
        print(summary)


if __name__ == "__main__":
    main()
