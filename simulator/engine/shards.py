"""Running the statistics stage over shards: one pure function per shard, merged in order.

`run_shard(shard, job)` reads only the columns the plan needs from one shard
and returns its `Stats`; engines differ only in where they call it. Results
are merged in shard-id order so reruns are bit-identical. A job with `checks`
also validates its rows in the same read (`simulator.data.shard_checks`): the
shard returns its checks beside its statistics, and computes statistics only
when its rows are sound.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, replace

import polars as pl

from simulator.data.load import Source, read_rows
from simulator.data.readers import csv_rows, parquet_row_groups
from simulator.data.shard_checks import CheckedShard, CheckMerge, ShardChecks, check_shard
from simulator.data.storage import CSV
from simulator.plan.moments import Needs
from simulator.plan.compiled import Plan
from simulator.schema import Schema
from simulator.stats.bootstrap import Replicates
from simulator.stats.shard import Stats, merge_all, shard_stats


@dataclass(frozen=True, slots=True)
class Shard:
    """A unit of work: consecutive rows of one file (whole row groups of a Parquet file)."""

    id: int
    path: str  # a local path or an object-storage URI
    offset: int  # first row within the file
    rows: int


@dataclass(frozen=True, slots=True)
class Job:
    """Everything a shard task needs besides its shard: small and picklable."""

    plan: Plan
    needs: Needs
    schema: Schema
    source: Source  # the dataset's format, hive flag and column types (every task reads alike)
    checks: ShardChecks | None = None  # validate the rows in the same read (`simulator.data.shard_checks`)


@dataclass(frozen=True, slots=True)
class ShardResult:
    """What a shard task returns: its statistics and, when the job checks its rows, their checks.

    A shard whose rows break a check has empty statistics: bad input never produces numbers.
    """

    stats: Stats
    checked: CheckedShard | None = None


DEFAULT_SHARD_ROWS = 1_000_000


def plan_shards(source: Source, shard_rows: int = DEFAULT_SHARD_ROWS) -> list[Shard]:
    """Split the dataset into shards of about `shard_rows` rows, each within one file.

    Parquet files are cut at row-group boundaries, read from their footers only
    (a row group is never split, so each task reads whole row groups); a CSV
    file is counted once and cut anywhere.
    """
    pieces: list[tuple[str, int, int]] = []
    for file in source.files:
        if source.format == CSV:
            total = csv_rows(file, source.types)
            pieces += [(file, start, min(shard_rows, total - start)) for start in range(0, total, shard_rows)]
            continue
        groups = parquet_row_groups(file)
        offset, start = 0, 0
        for index, rows in enumerate(groups):
            offset += rows
            if offset - start >= shard_rows or index == len(groups) - 1:
                pieces.append((file, start, offset - start))
                start = offset
    pieces = [p for p in pieces if p[2] > 0]
    return [Shard(id=i, path=file, offset=start, rows=rows) for i, (file, start, rows) in enumerate(pieces)]


def read_shard(shard: Shard, job: Job) -> pl.DataFrame:
    """The plan's columns of one shard (and those its checks read), canonical (`simulator.data.load.read_rows`)."""
    columns = job.plan.columns | (job.checks.columns if job.checks is not None else frozenset())
    return read_rows(job.source, shard.path, offset=shard.offset, rows=shard.rows, columns=sorted(columns),
                     schema=job.schema)


def shard_checks(frame: pl.DataFrame, checks: ShardChecks) -> CheckedShard:
    """The checks of one shard's rows (`simulator.data.shard_checks.check_shard`)."""
    return check_shard(frame, checks)


def run_shard(shard: Shard, job: Job) -> ShardResult:
    """Statistics of one shard, and the checks of its rows when the job asks: a pure function of (shard, job)."""
    frame = read_shard(shard, job)
    checked = None
    if job.checks is not None:
        checked = shard_checks(frame, job.checks)
        if not checked.sound:
            return ShardResult(Stats.empty(), checked)
        frame = frame.select(sorted(job.plan.columns))  # the statistics see what they would have read alone
    if job.plan.rows is not None:
        frame = frame.filter(job.plan.rows)
    return ShardResult(shard_stats(frame, job.plan, job.needs), checked)


class OrderedMerge:
    """Accept exactly one result per shard and merge in shard-id order, whatever the arrival order.

    Results that arrive early wait; in-order ones are merged in fixed batches of
    `BATCH` shards (one ordered numpy pass each, see `merge_all`), so the driver
    holds O(BATCH + out-of-order) shard results, and the summation order, hence
    the result to the bit, does not depend on timing.
    """

    BATCH = 16

    def __init__(self, shards: Sequence[Shard], checks: ShardChecks | None = None) -> None:
        self._ids = sorted(s.id for s in shards)
        self._next = 0
        self._early: dict[int, tuple[Stats, CheckedShard | None]] = {}
        self._done: list[Stats] = []
        self._total = Stats.empty()
        self._replicates: Replicates | None = None
        self.checked = None if checks is None else CheckMerge(checks)  # every shard's checks, merged in order

    @property
    def expecting(self) -> int | None:
        """The shard id the merge takes next (None when every shard is in)."""
        return self._ids[self._next] if self._next < len(self._ids) else None

    def add(self, shard_id: int, stats: Stats, checked: CheckedShard | None = None) -> None:
        if shard_id not in self._ids or shard_id in self._early or shard_id in self._ids[: self._next]:
            raise RuntimeError(f"unexpected or repeated result for shard {shard_id}")  # a bug, not bad input
        if (checked is None) != (self.checked is None):
            raise RuntimeError(f"shard {shard_id}: checks {'missing' if checked is None else 'not asked for'}")
        self._early[shard_id] = (stats, checked)
        while self._next < len(self._ids) and self._ids[self._next] in self._early:
            part, part_checked = self._early.pop(self._ids[self._next])
            if self.checked is not None and part_checked is not None:
                self.checked.add(part_checked)
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


SHARD_BYTES_PER_ROW = 2048  # a shard's peak working memory per row, with room: measured ~0.8 KiB analytic and
# ~1.9 KiB with `bootstrap = 200` on the 10 M bench's 1 M-row shards (benchmarks/README.md, "Memory")


def local_workers(shards: int, rows: int) -> int:
    """Threads the local engine runs `shards` shards of at most `rows` rows on: one per CPU this process may use, at
    most one per shard, and no more than the available memory holds (twice a shard's peak each: one running, one
    finished and waiting for the in-order merge).

    A shard's heavy work (Parquet decoding, polars expressions, numpy, the compiled kernel) runs without the GIL,
    so shards overlap on threads without the cost of starting processes or shipping results.
    """
    import psutil

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    memory = psutil.virtual_memory().available // max(1, 2 * rows * SHARD_BYTES_PER_ROW)
    return max(1, min(cpus, shards, memory))


def run_local(shards: Sequence[Shard], job: Job, on_shard: Callable[[Shard], None] | None = None) -> OrderedMerge:
    """Run every shard in this process, on `local_workers` threads; the merge holds the statistics (`result()`)
    and the checks (`checked`), added in shard order whatever the order shards finish in, so results are
    identical to one shard at a time.

    At most twice as many shards as threads are in flight (taken by a thread and not yet merged), so memory stays
    bounded by the shard size. The first error, or Ctrl-C, is raised here at once and no further shard starts; a
    shard already running finishes on its thread, which does not hold up the interpreter's exit (a daemon).
    """
    merge = OrderedMerge(shards, job.checks)
    workers = local_workers(len(shards), max((shard.rows for shard in shards), default=0))
    if workers == 1:
        for shard in shards:
            _merged(merge, shard, run_shard(shard, job), on_shard)
        return merge
    threads = ShardThreads(shards, job, workers)
    try:
        for shard, future in zip(shards, threads.futures, strict=True):
            done = _waited(future)
            threads.merged()
            _merged(merge, shard, done, on_shard)
    except BaseException:
        threads.stop()
        raise
    threads.join()
    return merge


def _waited(future: Future[ShardResult]) -> ShardResult:
    """The shard's result, waiting in short steps: a signal (Ctrl-C) that the kernel hands to another thread of the
    process does not wake a blocked wait, but is raised here at the next step. (Not `result(timeout=)` in a loop:
    a shard's own TimeoutError, from object storage say, would read as "not yet" forever.)"""
    while not wait([future], timeout=0.2).done:
        pass
    return future.result()


def _merged(merge: OrderedMerge, shard: Shard, done: ShardResult, on_shard: Callable[[Shard], None] | None) -> None:
    """Add a finished shard to the merge and tell the caller."""
    merge.add(shard.id, done.stats, done.checked)
    if on_shard is not None:
        on_shard(shard)


class ShardThreads:
    """Daemon threads that take shards in order, each while fewer than `2 · workers` are taken and not merged.

    Not a `ThreadPoolExecutor`: its threads are joined at the interpreter's exit, so Ctrl-C during a long shard
    (a slow custom policy, a bootstrap) would wait for it to finish.
    """

    def __init__(self, shards: Sequence[Shard], job: Job, workers: int) -> None:
        self.futures: list[Future[ShardResult]] = [Future() for _ in shards]
        self._todo = iter(list(zip(shards, self.futures, strict=True)))
        self._take = threading.Lock()
        self._slots = threading.Semaphore(2 * workers)  # released once per merged shard
        self._stopped = threading.Event()
        self._job = job
        self._threads = [threading.Thread(target=self._work, name=f"policysim-shard-{k}", daemon=True)
                         for k in range(workers)]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while True:
            self._slots.acquire()
            with self._take:
                item = None if self._stopped.is_set() else next(self._todo, None)
            if item is None:
                return
            shard, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(run_shard(shard, self._job))
            except BaseException as error:  # the caller raises it, in order
                future.set_exception(error)

    def merged(self) -> None:
        """One shard left the window: a thread may take the next."""
        self._slots.release()

    def stop(self) -> None:
        """No shard starts after this; threads waiting for a slot wake and leave."""
        self._stopped.set()
        for future in self.futures:
            future.cancel()
        for _ in self._threads:
            self._slots.release()

    def join(self) -> None:
        """Wait for the threads, all of whose shards are merged."""
        self.stop()
        for thread in self._threads:
            thread.join()
