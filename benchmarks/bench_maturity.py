"""Engine speed on 1M rows by `[data] immature_labels` mode: does developing labels slow it down?

Times the engine alone (compile the plan, shard statistics, finalize) on one
in-memory frame, best of `--repeats`, for each mode given. The same script runs
against an older checkout (set PYTHONPATH to it; a mode it does not know is
skipped), so before/after is measured on the same data in the same session.

    .venv/bin/policysim generate --rows 1000000 --files 1 --out /tmp/bench1m
    .venv/bin/python benchmarks/bench_maturity.py /tmp/bench1m --modes exclude,develop
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl

from simulator.config import parse_config
from simulator.data.load import in_utc
from simulator.estimate.results import finalize
from simulator.plan.compiled import compile_plan
from simulator.plan.moments import needed_sums
from simulator.stats.shard import shard_stats

POLICIES = [
    {"name": f"t{i}", "kind": "threshold", "score": "fraud_score", "challenge_above": c, "block_above": b}
    for i, (c, b) in enumerate([(0.02, 0.3), (0.03, 0.35), (0.05, 0.3), (0.05, 0.5), (0.1, 0.6)])
]
SEGMENTS = {"by": [["card_country"], ["card_country", "card_brand"]]}


def engine_seconds(frame: pl.DataFrame, as_of: str, mode: str, bootstrap: int) -> tuple[dict[str, float], int]:
    """Seconds of each phase (plan: compile incl. the curve fit; stats; finalize), and the cells of the statistics."""
    config = parse_config({"data": {"as_of": as_of, "immature_labels": mode}, "policies": POLICIES,
                           "segments": SEGMENTS, "estimation": {"bootstrap": bootstrap}})
    marks = [time.perf_counter()]
    plan = compile_plan(config, frame.lazy())
    marks.append(time.perf_counter())
    stats = shard_stats(frame.select(sorted(plan.columns)), plan, needed_sums(plan))
    marks.append(time.perf_counter())
    finalize(stats, plan, config.estimation)
    marks.append(time.perf_counter())
    seconds = dict(zip(("plan", "stats", "finalize"), np.diff(marks), strict=True))
    return seconds | {"total": marks[-1] - marks[0]}, stats.cells.height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="output folder of `policysim generate`")
    parser.add_argument("--modes", default="exclude,develop")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bootstrap", type=int, default=0)
    args = parser.parse_args()
    as_of = json.loads((args.data / "generation.json").read_text())["as_of"]
    frame = in_utc(pl.read_parquet(args.data / "transactions"))
    modes = args.modes.split(",")
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    cells: dict[str, int] = {}
    for _ in range(args.repeats):  # modes interleaved, so load changes hit them alike
        for mode in list(runs):
            try:
                seconds, cells[mode] = engine_seconds(frame, as_of, mode, args.bootstrap)
            except Exception as error:  # an older checkout without this mode
                print(f"{mode}: skipped ({type(error).__name__}: {str(error).splitlines()[0]})")
                del runs[mode]
                continue
            runs[mode].append(seconds)
    for mode, timings in runs.items():
        best = {k: min(t[k] for t in timings) for k in timings[0]}
        median = float(np.median([t["total"] for t in timings]))
        print(f"{mode}: best total {best['total']:.3f} s (plan {best['plan']:.3f}, stats {best['stats']:.3f}, "
              f"finalize {best['finalize']:.3f}), median total {median:.3f} s over {args.repeats}; "
              f"{cells[mode]:,} cells; {frame.height:,} rows")


if __name__ == "__main__":
    main()
