"""Running the statistics stage over shards: one pure function per shard, merged in order.

`run_shard(shard, job)` reads only the columns the plan needs from one shard
and returns its `Stats`; engines differ only in where they call it. Results
are merged in shard-id order so reruns are bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from simulator.data.load import dataset_files, in_utc
from simulator.plan.moments import Needs
from simulator.plan.compiled import Plan
from simulator.schema import Schema
from simulator.stats.bootstrap import Replicates
from simulator.stats.shard import Stats, merge_all, shard_stats


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
    return in_utc(frame.rename(to_canonical, strict=False))


def run_shard(shard: Shard, job: Job) -> Stats:
    """Statistics of one shard: a pure function of (shard, job)."""
    frame = read_shard(shard, job)
    if job.plan.rows is not None:
        frame = frame.filter(job.plan.rows)
    return shard_stats(frame, job.plan, job.needs)


class OrderedMerge:
    """Accept exactly one result per shard and merge in shard-id order, whatever the arrival order.

    Results that arrive early wait; in-order ones are merged in fixed batches of
    `BATCH` shards (one ordered numpy pass each, see `merge_all`), so the driver
    holds O(BATCH + out-of-order) shard results, and the summation order, hence
    the result to the bit, does not depend on timing.
    """

    BATCH = 16

    def __init__(self, shards: Sequence[Shard]) -> None:
        self._ids = sorted(s.id for s in shards)
        self._next = 0
        self._early: dict[int, Stats] = {}
        self._done: list[Stats] = []
        self._total = Stats.empty()
        self._replicates: Replicates | None = None

    def add(self, shard_id: int, stats: Stats) -> None:
        if shard_id not in self._ids or shard_id in self._early or shard_id in self._ids[: self._next]:
            raise RuntimeError(f"unexpected or repeated result for shard {shard_id}")  # a bug, not bad input
        self._early[shard_id] = stats
        while self._next < len(self._ids) and self._ids[self._next] in self._early:
            part = self._early.pop(self._ids[self._next])
            if part.replicates is not None:
                self._replicates = part.replicates if self._replicates is None else self._replicates.merge(part.replicates)
            self._done.append(replace(part, replicates=None))
            self._next += 1
            if len(self._done) >= self.BATCH:
                self._total, self._done = merge_all([self._total, *self._done]), []

    def result(self) -> Stats:
        if self._next != len(self._ids):
            raise RuntimeError(f"no result for shards {self._ids[self._next:]}")  # a bug, not bad input
        return replace(merge_all([self._total, *self._done]), replicates=self._replicates)


def run_local(shards: Sequence[Shard], job: Job, on_shard: Callable[[Shard], None] | None = None) -> Stats:
    """Run every shard in this process."""
    merge = OrderedMerge(shards)
    for shard in shards:
        merge.add(shard.id, run_shard(shard, job))
        if on_shard is not None:
            on_shard(shard)
    return merge.result()
