"""A 50 × 36 threshold grid (1,800 policies) with the example segments: binned sweep vs one by one vs one policy.

Measured in one run on the same data and engine:

- `single`: `run` of one threshold policy (the baseline every ratio uses);
- `sweep`: the whole grid as one binned family (`policysim sweep`);
- `one by one`: a sample of grid points, each evaluated alone with `run`, the mean
  time extrapolated to every point of the grid.

Targets (issue #5): sweep < 3 × single, and at least 100 × faster than one by one.
Prints seconds and ratios; with `--bootstrap B` also the same with replicates.

    .venv/bin/policysim generate --rows 10000000 --files 8 --out /tmp/bench10m
    .venv/bin/python benchmarks/bench_sweep.py /tmp/bench10m/transactions --engine local
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from simulator.config import parse_config
from simulator.engine.execution import Engine, Execution
from simulator.workflows.run import run
from simulator.workflows.sweep import sweep

SEGMENTS = {
    "by": [["card_country"], ["card_country", "card_brand"], ["amount"]],
    "bands": {"amount": {"edges": [0, 10, 50, 200, 1000]}},
}
GRID = {"score": "fraud_score", "block_above": {"start": 0.5, "stop": 0.99, "num": 50},
        "challenge_above": {"start": 0.2, "stop": 0.9, "num": 36}}  # the SPEC §11 example grid


def config(bootstrap: int, policies: list[dict[str, Any]] | None = None) -> Any:
    return parse_config({"segments": SEGMENTS, "estimation": {"bootstrap": bootstrap, "seed": 7},
                         "policies": policies or [], "sweep": GRID})


def timed(label: str, work: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    out = work()
    seconds = time.perf_counter() - start
    print(f"  {label:<34} {seconds:8.2f} s", flush=True)
    return seconds, out


def measure(path: Path, engine: Engine, bootstrap: int, sample: int) -> None:
    print(f"bootstrap = {bootstrap}, engine = {engine}")
    execution = Execution(engine=engine)
    point = {"name": "one", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.4, "block_above": 0.7}
    single, _ = timed("single policy run", lambda: run(config(bootstrap, [point]), path, execution=execution))
    whole, result = timed("sweep (binned, whole grid)", lambda: sweep(config(bootstrap), path, execution=execution))
    points = result.points
    rng = np.random.default_rng(0)
    alone = []
    for index in rng.choice(points.height, size=sample, replace=False):
        row = points.row(int(index), named=True)
        policy = {"name": "alone", "kind": "threshold", "score": "fraud_score",
                  "challenge_above": row["challenge_above"], "block_above": row["block_above"]}
        seconds, _ = timed(f"point {index} alone", lambda policy=policy: run(config(bootstrap, [policy]), path, execution=execution))
        alone.append(seconds)
    one_by_one = float(np.mean(alone)) * points.height
    timings = result.timings
    print(f"  grid points: {points.height:,} ({result.skipped} combinations skipped); segments: "
          f"{result.table.filter(result.table['point'] == 0)['segment'].n_unique():,}; rows: {result.stats.rows:,}")
    print("  sweep phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()))
    print(f"  one by one, extrapolated from {sample}: {one_by_one:,.0f} s")
    replicates = result.stats.replicates
    if replicates is not None and replicates.binned is not None:
        binned = replicates.binned
        print(f"  binned replicate sums: {sum(s.nbytes for s in binned.sums) / 2**20:,.0f} MiB "
              f"({sum(len(k) for k in binned.keys):,} segment x bin x action keys)")
    print(f"  peak RSS of this process so far: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    print(f"  sweep / single run:  {whole / single:5.2f}x   (target < 3x)")
    print(f"  one by one / sweep:  {one_by_one / whole:5.0f}x   (target >= 100x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--engine", default="local", choices=["local", "ray"])
    parser.add_argument("--bootstrap", type=int, default=0, help="also measure with this many replicates")
    parser.add_argument("--sample", type=int, default=3, help="grid points timed one by one")
    args = parser.parse_args()
    measure(args.data, args.engine, 0, args.sample)
    if args.bootstrap:
        measure(args.data, args.engine, args.bootstrap, args.sample)


if __name__ == "__main__":
    main()
