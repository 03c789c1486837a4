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
import pyarrow.parquet as pq

from simulator.errors import PolicysimError
from simulator.load import dataset_files
from simulator.moments import Needs
from simulator.plan import Plan
from simulator.schema import Schema
from simulator.stats import Stats, merge_all, shard_stats


@dataclass(frozen=True, slots=True)
class Shard:
    """A unit of work: a run of consecutive row groups of one Parquet file."""

    id: int
    path: Path
    offset: int  # first row within the file
    rows: int


@dataclass(frozen=True, slots=True)
class Job:
    """Everything a shard task needs besides its shard: small and picklable."""

    plan: Plan
    needs: Needs
    schema: Schema
    hive: bool


DEFAULT_SHARD_ROWS = 1_000_000


def plan_shards(path: Path, shard_rows: int = DEFAULT_SHARD_ROWS) -> list[Shard]:
    """Split the dataset into shards of whole row groups, about `shard_rows` rows each.

    Read from the Parquet footers only; a file's row groups are never split, so
    each task reads whole row groups of one file.
    """
    pieces: list[tuple[Path, int, int]] = []
    for file in dataset_files(path):
        metadata = pq.ParquetFile(file).metadata
        offset, start = 0, 0
        for index in range(metadata.num_row_groups):
            offset += metadata.row_group(index).num_rows
            if offset - start >= shard_rows or index == metadata.num_row_groups - 1:
                pieces.append((file, start, offset - start))
                start = offset
    pieces = [p for p in pieces if p[2] > 0]
    return [Shard(id=i, path=file, offset=start, rows=rows) for i, (file, start, rows) in enumerate(pieces)]


def read_shard(shard: Shard, job: Job) -> pl.DataFrame:
    """The plan's columns of one shard, with canonical names."""
    to_canonical = {source: canonical for canonical, source in job.schema.rename.items() if source != canonical}
    from_canonical = {v: k for k, v in to_canonical.items()}
    wanted = [from_canonical.get(c, c) for c in sorted(job.plan.columns)]
    frame = pl.scan_parquet(shard.path, hive_partitioning=job.hive).select(wanted).slice(shard.offset, shard.rows).collect()
    return frame.rename(to_canonical, strict=False)


def run_shard(shard: Shard, job: Job) -> Stats:
    """Statistics of one shard: a pure function of (shard, job)."""
    return shard_stats(read_shard(shard, job), job.plan, job.needs)


def merge_in_order(results: dict[int, Stats], shards: Sequence[Shard]) -> Stats:
    """Merge exactly one result per shard, in shard-id order."""
    missing = sorted({s.id for s in shards} - set(results))
    if missing:
        raise PolicysimError(f"internal: no result for shards {missing}")
    return merge_all([results[shard.id] for shard in sorted(shards, key=lambda s: s.id)])


def run_local(shards: Sequence[Shard], job: Job, on_shard: Callable[[Shard], None] | None = None) -> Stats:
    """Run every shard in this process."""
    results = {}
    for shard in shards:
        results[shard.id] = run_shard(shard, job)
        if on_shard is not None:
            on_shard(shard)
    return merge_in_order(results, shards)
