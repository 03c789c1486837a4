"""How the shard work itself scales to two processes, without Ray (the ceiling for the Ray engine).

Runs the same 8 shards of `bench_run.py`'s config in one worker process, then
split over two (spawned, single-threaded like Ray tasks), and prints the speedup.

    .venv/bin/python benchmarks/bench_scaling.py /tmp/bench10m/transactions
"""

from __future__ import annotations

import os
import sys
import time
from multiprocessing import get_context
from pathlib import Path

for _name in ("POLARS_MAX_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[_name] = "1"  # as the Ray engine sets for its tasks
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def setup(path: Path):  # type: ignore[no-untyped-def]
    from bench_run import SEGMENTS, policies

    from simulator.config import parse_config
    from simulator.engine.shards import Job, plan_shards
    from simulator.data.load import open_source, scan_dataset
    from simulator.plan.moments import needed_sums
    from simulator.plan.compiled import compile_plan

    config = parse_config({"segments": SEGMENTS, "policies": policies()})
    source = open_source(path, config.data.schema())
    plan = compile_plan(config, scan_dataset(source, config.data.schema()))
    job = Job(plan=plan, needs=needed_sums(plan), schema=config.data.schema(), source=source)
    return job, plan_shards(source)[:8]


def work(args) -> float:  # type: ignore[no-untyped-def]
    """Seconds to run the given shards, after one warm-up shard (imports, caches)."""
    from simulator.engine.shards import run_shard

    job, shards = args
    run_shard(shards[0], job)
    began = time.perf_counter()
    for shard in shards:
        run_shard(shard, job)
    return time.perf_counter() - began


def main() -> None:
    job, shards = setup(Path(sys.argv[1]))
    context = get_context("spawn")  # polars is not fork-safe
    with context.Pool(1) as pool:
        one = pool.map(work, [(job, shards)])[0]
    with context.Pool(2) as pool:
        two = max(pool.map(work, [(job, shards[0::2]), (job, shards[1::2])]))
    print(f"{len(shards)} shards: 1 process {one:.2f} s, 2 processes {two:.2f} s, speedup {one / two:.2f}x")


if __name__ == "__main__":
    main()
