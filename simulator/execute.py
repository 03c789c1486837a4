"""Running the statistics stage over shards: one pure function per shard, merged in order.

`run_shard(shard, job)` reads only the columns the plan needs from one shard
and returns its `Stats`; engines differ only in where they call it. Results
are merged in shard-id order so reruns are bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from simulator.errors import PolicysimError
from simulator.load import dataset_files
from simulator.moments import Needs
from simulator.plan import Plan
from simulator.schema import Schema
from simulator.stats import Stats, shard_stats


@dataclass(frozen=True, slots=True)
class Shard:
    """A unit of work: one Parquet file (later: a range of its row groups)."""

    id: int
    path: Path
    rows: int


@dataclass(frozen=True, slots=True)
class Job:
    """Everything a shard task needs besides its shard: small and picklable."""

    plan: Plan
    needs: Needs
    schema: Schema
    hive: bool


def plan_shards(path: Path) -> list[Shard]:
    """One shard per Parquet file of the dataset, in a stable order."""
    files = dataset_files(path)
    return [Shard(id=i, path=f, rows=pl.scan_parquet(f).select(pl.len()).collect().item()) for i, f in enumerate(files)]


def read_shard(shard: Shard, job: Job) -> pl.DataFrame:
    """The plan's columns of one shard, with canonical names."""
    to_canonical = {source: canonical for canonical, source in job.schema.rename.items() if source != canonical}
    from_canonical = {v: k for k, v in to_canonical.items()}
    wanted = [from_canonical.get(c, c) for c in sorted(job.plan.columns)]
    frame = pl.scan_parquet(shard.path, hive_partitioning=job.hive).select(wanted).collect()
    return frame.rename(to_canonical, strict=False)


def run_shard(shard: Shard, job: Job) -> Stats:
    """Statistics of one shard: a pure function of (shard, job)."""
    return shard_stats(read_shard(shard, job), job.plan, job.needs)


def merge_in_order(results: dict[int, Stats], shards: Sequence[Shard]) -> Stats:
    """Merge exactly one result per shard, in shard-id order."""
    missing = sorted({s.id for s in shards} - set(results))
    if missing:
        raise PolicysimError(f"internal: no result for shards {missing}")
    total = Stats.empty()
    for shard in sorted(shards, key=lambda s: s.id):
        total = total.merge(results[shard.id])
    return total


def run_local(shards: Sequence[Shard], job: Job, on_shard: Callable[[Shard], None] | None = None) -> Stats:
    """Run every shard in this process."""
    results = {}
    for shard in shards:
        results[shard.id] = run_shard(shard, job)
        if on_shard is not None:
            on_shard(shard)
    return merge_in_order(results, shards)
