"""Ray engine against the local engine on the same data, and Ray's fixed costs.

Prints, for the same config (10 policies × example segments, analytic):
the local engine's statistics time; the Ray engine's with --num-cpus 1 and 2
(cluster start excluded, reported separately); their throughput ratios; and
the per-task round trip of an empty Ray task. Run on a dataset of 10–20 M rows:

    .venv/bin/policysim generate --rows 20000000 --files 16 --out /tmp/bench20m
    .venv/bin/python benchmarks/bench_ray.py /tmp/bench20m/transactions
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import SEGMENTS, policies  # noqa: E402

from simulator.config import parse_config  # noqa: E402
from simulator.engine.execution import Execution  # noqa: E402
from simulator.engine.ray_engine import cluster  # noqa: E402
from simulator.workflows.run import run  # noqa: E402


def stats_seconds(data: Path, engine: str, cpus: int | None, shard_rows: int) -> tuple[float, float, int]:
    """(statistics seconds, cluster start seconds, shards) of one run."""
    config = parse_config({"segments": SEGMENTS, "policies": policies()})
    shards: list = []
    if engine == "local":
        result = run(config, data, execution=Execution(engine="local", shard_rows=shard_rows, on_plan=shards.extend))
        return result.timings["stats_s"], 0.0, len(shards)
    started = time.perf_counter()
    with cluster(None, cpus):
        start = time.perf_counter() - started
        result = run(config, data, execution=Execution(engine="ray", shard_rows=shard_rows, on_plan=shards.extend))
    return result.timings["stats_s"], start, len(shards)


def task_round_trip(tasks: int = 200) -> float:
    """Seconds per empty task on a 2-CPU local cluster (submit, run, get)."""
    import ray

    with cluster(None, 2):
        noop = ray.remote(lambda: None)
        ray.get([noop.remote() for _ in range(20)])  # warm the workers
        began = time.perf_counter()
        ray.get([noop.remote() for _ in range(tasks)])
        return (time.perf_counter() - began) / tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--shard-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    local, _, shards = stats_seconds(args.data, "local", None, args.shard_rows)
    one, start1, _ = stats_seconds(args.data, "ray", 1, args.shard_rows)
    two, start2, _ = stats_seconds(args.data, "ray", 2, args.shard_rows)
    import polars as pl

    from simulator.data.load import dataset_files

    rows = pl.scan_parquet(dataset_files(args.data)).select(pl.len()).collect().item()
    print(f"rows {rows:,} in {shards} shards of ~{args.shard_rows:,}")
    print(f"local engine       stats {local:6.2f} s  {rows / local / 1e6:5.2f} M rows/s")
    print(f"ray --num-cpus 1   stats {one:6.2f} s  {rows / one / 1e6:5.2f} M rows/s  (cluster start {start1:.1f} s)")
    print(f"ray --num-cpus 2   stats {two:6.2f} s  {rows / two / 1e6:5.2f} M rows/s  (cluster start {start2:.1f} s)")
    print(f"2 CPUs / 1 CPU throughput: {one / two:.2f}x;  ray (2 CPUs) / local time: {two / local:.2f}")
    print(f"empty task round trip: {task_round_trip() * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
