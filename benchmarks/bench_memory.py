"""Peak memory of the Ray engine: a worker is bounded by its shard, the driver by the statistics.

Runs the `bench_run.py` config on the Ray engine (2 CPUs) and prints the peak
resident memory of the driver process and of every worker that ran a shard
(each task reports its process's peak RSS), with the rows of the data. Run it
on two sizes and compare: neither peak should grow with the number of rows.

    .venv/bin/python benchmarks/bench_memory.py /tmp/bench10m/transactions
    .venv/bin/python benchmarks/bench_memory.py /tmp/bench50m/transactions
    .venv/bin/python benchmarks/bench_memory.py /tmp/bench10m/transactions --bootstrap 200  # replicates too

With `--bootstrap B` a worker also holds its shard's replicate totals (Σ segments × terms × B floats,
simulator/stats/bootstrap.py) and the chunk being summed; the driver, the merged replicates.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import config_table  # noqa: E402

from simulator.config import parse_config  # noqa: E402
from simulator.data.load import latest_timestamp, open_source, scan_dataset  # noqa: E402
from simulator.data.shard_checks import fold_checks  # noqa: E402
from simulator.engine.shards import Job, OrderedMerge, plan_shards, run_shard  # noqa: E402
from simulator.plan.changes import with_changes  # noqa: E402
from simulator.plan.moments import needed_sums  # noqa: E402
from simulator.plan.compiled import compile_plan  # noqa: E402
from simulator.engine.ray_engine import cluster  # noqa: E402


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def shard_with_peak(shard, job):  # type: ignore[no-untyped-def]
    """run_shard, plus this worker process's peak RSS (MiB) after it."""
    return run_shard(shard, job), peak_mib(), os.getpid()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--bootstrap", type=int, default=0, help="replicates (0: analytic intervals)")
    args = parser.parse_args()
    config = parse_config(config_table(args.bootstrap))
    schema = config.data.schema()
    source = open_source(args.data, schema)
    scan = scan_dataset(source, schema)
    names = scan.collect_schema().names()
    plan = compile_plan(config, scan, as_of=latest_timestamp(source, schema))
    plan = with_changes(plan, names, schema.resolved_scores(names), config.segments)  # as `run`: decision changes
    folded = fold_checks(source, schema, as_of=plan.as_of, label_maturity_days=config.data.label_maturity_days)
    job = Job(plan=plan, needs=needed_sums(plan), schema=schema, source=source,
              checks=None if folded is None else folded.shard)  # as `run`: the shards validate their rows
    shards = plan_shards(source)
    import ray

    began = time.perf_counter()
    with cluster(None, 2):
        task = ray.remote(max_retries=3)(shard_with_peak)
        job_ref = ray.put(job)
        refs = {task.remote(s, job_ref): s for s in shards}
        merge, workers = OrderedMerge(shards, job.checks), {}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            shard = refs.pop(done[0])
            result, worker_peak, pid = ray.get(done[0])
            merge.add(shard.id, result.stats, result.checked)
            workers[pid] = max(workers.get(pid, 0.0), worker_peak)
        total = merge.result()
    rows = sum(s.rows for s in shards)
    print(f"rows {rows:,} in {len(shards)} shards (largest {max(s.rows for s in shards):,} rows); {time.perf_counter() - began:.1f} s")
    print(f"driver peak RSS {peak_mib():,.0f} MiB; merged statistics {total.cells.estimated_size('mb'):.1f} MB in {total.cells.height:,} cells")
    print("worker peak RSS (MiB): " + ", ".join(f"{v:,.0f}" for v in sorted(workers.values())))


if __name__ == "__main__":
    main()
