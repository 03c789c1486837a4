"""Per-shard cost and result size of `run`, and the driver's merge: the inputs of the cluster projection (docs/cluster.md).

Runs the `bench_run.py` config shard by shard in this process, as a Ray task would
(read, in-shard validation, statistics), and prints for each shard its seconds by
stage and the size of what it returns (statistics cells, example payments, the
validation's id hashes), then the driver's merge seconds, the merged cells and
the finalize seconds, and the statistics' inner stages summed over the shards
(`bench_run.STAGES`, wall and CPU seconds per 1 M rows; CPU moves less with other
sessions' load). Peak memory of this process is printed too (one shard at a
time, plus the merged statistics). `--tree DIR` runs an older checkout's code.

    .venv/bin/python benchmarks/bench_shards.py /tmp/bench10m/transactions
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
if "--tree" in sys.argv:  # another checkout's modules first (before they are imported below)
    sys.path.insert(0, str(Path(sys.argv[sys.argv.index("--tree") + 1]).resolve()))
from bench_run import STAGES, config_table, timed_stages  # noqa: E402

from simulator.config import parse_config  # noqa: E402
from simulator.data.load import latest_timestamp, open_source, scan_dataset  # noqa: E402
from simulator.data.shard_checks import fold_checks  # noqa: E402
from simulator.engine.shards import Job, OrderedMerge, plan_shards, read_shard, shard_checks  # noqa: E402
from simulator.estimate.changes import finalize_changes  # noqa: E402
from simulator.estimate.results import finalize  # noqa: E402
from simulator.plan.changes import with_changes  # noqa: E402
from simulator.plan.compiled import compile_plan  # noqa: E402
from simulator.plan.moments import needed_sums  # noqa: E402
from simulator.stats.shard import shard_stats  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--bootstrap", type=int, default=0)
    parser.add_argument("--tree", type=Path, help="run another checkout's code (put first on the path)")
    args = parser.parse_args()
    with timed_stages(cpu=True) as seconds:
        rows = shards_and_driver(args)
    print("inside the statistics, summed over shards, per 1 M rows (wall / CPU seconds):")
    for label, _, _ in STAGES:
        if label in seconds and not label.startswith(("read", "shard validation", "validation pass", "plan", "totals",
                                                      "finalize", "changes finalize", "examples finalize", "write",
                                                      "  report")):
            wall, cpu = seconds[label], seconds[label + " cpu"]
            print(f"  {label:<30} {wall / rows * 1e6:6.3f} / {cpu / rows * 1e6:6.3f}")


def shards_and_driver(args: argparse.Namespace) -> int:
    """Every shard one at a time, then the driver's merge and finalize; returns the rows."""
    config = parse_config(config_table(args.bootstrap))
    schema = config.data.schema()
    source = open_source(str(args.data.resolve()), schema)
    scan = scan_dataset(source, schema)
    names = scan.collect_schema().names()
    plan = compile_plan(config, scan, as_of=latest_timestamp(source, schema))
    plan = with_changes(plan, names, schema.resolved_scores(names), config.segments)
    folded = fold_checks(source, schema, as_of=plan.as_of, label_maturity_days=config.data.label_maturity_days)
    assert folded is not None
    job = Job(plan=plan, needs=needed_sums(plan), schema=schema, source=source, checks=folded.shard)
    shards = plan_shards(source)
    merge = OrderedMerge(shards, job.checks)
    totals = {"read": 0.0, "checks": 0.0, "stats": 0.0, "merge": 0.0}
    rows = 0
    print("shard  rows       read   checks  stats (CPU)    cells   cells MB  examples MB  hashes MB")
    for shard in shards:
        t0 = time.perf_counter()
        frame = read_shard(shard, job)
        t1 = time.perf_counter()
        checked = shard_checks(frame, folded.shard)
        t2, c2 = time.perf_counter(), time.process_time()
        stats = shard_stats(frame.select(sorted(plan.columns)), plan, job.needs)
        t3, c3 = time.perf_counter(), time.process_time()
        merge.add(shard.id, stats, checked)
        t4 = time.perf_counter()
        for key, seconds in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            totals[key] += seconds
        rows += shard.rows
        examples = 0.0 if stats.examples is None else stats.examples.frame.estimated_size("mb")
        print(f"{shard.id:5d}  {shard.rows:9,}  {t1 - t0:5.2f}  {t2 - t1:6.2f}  {t3 - t2:5.2f} ({c3 - c2:4.2f})  "
              f"{stats.cells.height:6,}  "
              f"{stats.cells.estimated_size('mb'):8.1f}  {examples:11.1f}  {checked.id_hashes.nbytes / 1e6:9.1f}")
    t = time.perf_counter()
    merged = merge.result()
    totals["merge"] += time.perf_counter() - t
    t = time.perf_counter()
    merge.checked.finish(folded)
    checks_finish = time.perf_counter() - t
    t = time.perf_counter()
    results = finalize(merged, plan, config.estimation)
    finalized = time.perf_counter() - t
    t = time.perf_counter()
    finalize_changes(merged, plan, config.estimation, results)
    changes = time.perf_counter() - t
    per_m = {k: v / rows * 1e6 for k, v in totals.items()}
    print(f"{rows:,} rows in {len(shards)} shards; per 1 M rows: " + ", ".join(f"{k} {v:.3f} s" for k, v in per_m.items()))
    print(f"driver: merged {merged.cells.height:,} cells ({merged.cells.estimated_size('mb'):.1f} MB, "
          f"{merged.cells.width} columns); checks finish {checks_finish:.2f} s; finalize {finalized:.2f} s; "
          f"changes {changes:.2f} s")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    return rows


if __name__ == "__main__":
    main()
