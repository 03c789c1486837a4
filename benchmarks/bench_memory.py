"""Peak memory of the Ray engine: a worker is bounded by its shard, the driver by the statistics.

Runs the `bench_run.py` config on the Ray engine (2 CPUs) and prints the peak
resident memory of the driver process and of every worker that ran a shard
(each task reports its process's peak RSS), with the rows of the data. Run it
on two sizes and compare: neither peak should grow with the number of rows.

    .venv/bin/python benchmarks/bench_memory.py /tmp/bench10m/transactions
    .venv/bin/python benchmarks/bench_memory.py /tmp/bench50m/transactions
    .venv/bin/python benchmarks/bench_memory.py /tmp/bench10m/transactions --bootstrap 200  # replicates too

With `--bootstrap B` a worker also holds its shard's replicate totals (Σ segments × terms × B floats,
simulator/stats/bootstrap.py) and the chunk being summed; the driver, the merged replicates and the one
shard's statistics being merged (`run_ray` fetches them in merge order: early ones wait in the object store).

The shards run through the engine's own `run_ray`; workers' peaks are sampled from /proc (the Ray
processes descended from this one, every 0.2 s), the driver's is its own maximum RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import config_table  # noqa: E402

from simulator.config import parse_config  # noqa: E402
from simulator.data.load import latest_timestamp, open_source, scan_dataset  # noqa: E402
from simulator.data.shard_checks import fold_checks  # noqa: E402
from simulator.engine.shards import Job, plan_shards  # noqa: E402
from simulator.plan.changes import with_changes  # noqa: E402
from simulator.plan.moments import needed_sums  # noqa: E402
from simulator.plan.compiled import compile_plan  # noqa: E402
from simulator.engine.ray_engine import cluster, run_ray  # noqa: E402


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class WorkerPeaks:
    """The peak RSS (MiB) of every Ray worker process descended from this one, sampled in a thread."""

    def __init__(self, every: float = 0.2) -> None:
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(every,), daemon=True)

    def _sample(self, every: float) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            for child in me.children(recursive=True):
                try:
                    if child.name().startswith("ray::"):
                        rss = child.memory_info().rss / 2**20
                        self.peaks[child.pid] = max(self.peaks.get(child.pid, 0.0), rss)
                except psutil.Error:
                    continue
            time.sleep(every)

    def __enter__(self) -> WorkerPeaks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


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

    began = time.perf_counter()
    with cluster(None, 2), WorkerPeaks() as workers:
        total = run_ray(shards, job).result()
    rows = sum(s.rows for s in shards)
    busy = [v for v in workers.peaks.values() if v > 200]  # workers that ran a shard (idle ones hold ~100 MiB)
    print(f"rows {rows:,} in {len(shards)} shards (largest {max(s.rows for s in shards):,} rows); {time.perf_counter() - began:.1f} s")
    print(f"driver peak RSS {peak_mib():,.0f} MiB; merged statistics {total.cells.estimated_size('mb'):.1f} MB in {total.cells.height:,} cells")
    print("worker peak RSS (MiB): " + ", ".join(f"{v:,.0f}" for v in sorted(busy)))


if __name__ == "__main__":
    main()
