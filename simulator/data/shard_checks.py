"""Validation in the shards' own read: each shard checks and summarises its rows, the driver merges (SPEC §2, §7).

`run` validated the whole dataset in one pass of its own (`check_dataset`), on the
driver, then read it again for the statistics. With `fold_checks`, each shard task
evaluates the same checks and summary aggregations on the rows it has read anyway
(`check_shard`), computes statistics only when its rows are sound, and returns a
small `CheckedShard`; the driver merges them in shard order (`CheckMerge`) into
the same problems, messages and `DataSummary` as `check_dataset`, and raises
`InvalidData` before anything is finalized. Bad input still never produces
numbers: a shard with a broken rule computes none.

How shards combine: counts add; a check's example is the first offending row of
the first shard that has one (file order, as the one-pass validator reports
it); minima, maxima, sums and means combine (`simulator.data.summary`); the
distinct values of segment columns are unioned (a column with more than
`MAX_DISTINCT` values in one shard is counted by one query of that column
alone); transaction ids are compared through their 64-bit hashes, sorted in
each shard and merged on the driver (8 bytes a row), and only when two hashes
agree does the exact comparison of `check_dataset` run.

Not folded (`fold_checks` returns None, and the caller validates first, as
before): a dataset with schema problems (missing or mistyped columns: the
one-pass validator reports them with every value problem it can still check),
and the propensity audit of a declared logging policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from simulator.data.load import Source, scan_dataset
from simulator.data.logging_policy import DECLARED
from simulator.data.problems import Check, duplicated_ids, example_expr, problems_found
from simulator.data.summary import (
    DataSummary,
    SummaryMerge,
    merge_summary_parts,
    segment_columns,
    shard_summary_exprs,
    summarise,
)
from simulator.data.validate import Origin, describe_problems, origin_of, schema_problems, value_checks
from simulator.errors import InvalidData
from simulator.schema import TRANSACTION_ID, Schema

MAX_DISTINCT = 100_000  # a segment column with more distinct values in one shard is counted by a query of its own


@dataclass(frozen=True, slots=True)
class ShardChecks:
    """What every shard checks and summarises of its own rows: small and picklable, shipped with the job.

    `columns` are the canonical columns the checks and the summary read (a shard reads
    them with the plan's); `segments` the columns whose distinct values are counted.
    """

    columns: frozenset[str]
    checks: tuple[Check, ...]
    summary: dict[str, tuple[pl.Expr, SummaryMerge]]
    segments: tuple[str, ...]
    has_id: bool


@dataclass(frozen=True, slots=True)
class FoldedChecks:
    """The driver's side of a validation folded into the shard pass: what to ship, and what finishing needs."""

    source: Source
    schema: Schema
    columns: pl.Schema  # the dataset's canonical columns and types
    origin: Origin
    label_maturity_days: int
    shard: ShardChecks


@dataclass(frozen=True, slots=True, eq=False)
class CheckedShard:
    """One shard's checks: rows, how many break each check and the first that does, summary values, ids' hashes.

    `distinct[name]` is None when the shard alone has more than `MAX_DISTINCT` values.
    """

    rows: int
    counts: tuple[int, ...]
    examples: dict[int, dict[str, Any]]
    summary: dict[str, Any]
    distinct: dict[str, frozenset[Any] | None]
    id_hashes: np.ndarray  # (rows,) uint64, sorted

    @property
    def sound(self) -> bool:
        """No row of the shard breaks a check (duplicated ids aside: they do not make its statistics wrong)."""
        return not any(self.counts)


def fold_checks(source: Source, schema: Schema, *, as_of: datetime, label_maturity_days: int) -> FoldedChecks | None:
    """The checks and summary of `check_dataset`, to run in the shards; None when they cannot be folded.

    `as_of` is the run's as-of date (the plan's): the shards count the immature rows against it.
    """
    frame = scan_dataset(source, schema, audit=True)
    columns = frame.collect_schema()
    if DECLARED in columns:  # the propensity audit ranks segment values over the whole log: the one-pass validator's
        return None
    origin = origin_of(source, schema)
    broken, usable = schema_problems(columns, schema, origin)
    if broken:
        return None
    checks = tuple(value_checks(columns, usable, schema, origin))
    summary = shard_summary_exprs(columns, schema, as_of, label_maturity_days)
    segments = tuple(segment_columns(columns, schema))
    has_id = TRANSACTION_ID in columns
    read: set[str] = set(segments) | ({TRANSACTION_ID} if has_id else set())
    for check in checks:
        for expr in (check.condition, *(shown for _, shown in check.shown)):
            read |= set(expr.meta.root_names())
    for expr, _ in summary.values():
        read |= set(expr.meta.root_names())
    shard = ShardChecks(columns=frozenset(read & set(columns)), checks=checks, summary=summary, segments=segments,
                        has_id=has_id)
    return FoldedChecks(source=source, schema=schema, columns=columns, origin=origin,
                        label_maturity_days=label_maturity_days, shard=shard)


def check_shard(frame: pl.DataFrame, checks: ShardChecks) -> CheckedShard:
    """Every check and summary aggregation of `checks` over one shard's rows (canonical columns).

    One selection counts every check and computes the summary; the examples are looked
    for only where a check has a count, which valid data never has.
    """
    exprs = [pl.len().alias("rows")]
    exprs += [check.condition.fill_null(False).sum().alias(f"_count{i}") for i, check in enumerate(checks.checks)]
    exprs += [expr.alias(name) for name, (expr, _) in checks.summary.items()]
    exprs += [pl.col(name).unique().implode().alias(f"_distinct:{name}") for name in checks.segments]
    values = frame.select(exprs).row(0, named=True)
    counts = tuple(int(values[f"_count{i}"]) for i in range(len(checks.checks)))
    failing = [i for i, count in enumerate(counts) if count]
    examples: dict[int, dict[str, Any]] = {}
    if failing:
        found = frame.select(example_expr(checks.checks[i], checks.has_id).alias(f"_example{i}") for i in failing)
        examples = {i: found.item(0, f"_example{i}") for i in failing}
    distinct: dict[str, frozenset[Any] | None] = {}
    for name in checks.segments:
        present = values[f"_distinct:{name}"]
        distinct[name] = None if len(present) > MAX_DISTINCT else frozenset(present)
    hashes = (np.sort(frame.get_column(TRANSACTION_ID).hash().to_numpy()) if checks.has_id
              else np.empty(0, dtype=np.uint64))
    return CheckedShard(rows=int(values["rows"]), counts=counts, examples=examples,
                        summary={name: values[name] for name in checks.summary}, distinct=distinct, id_hashes=hashes)


@dataclass(slots=True)
class CheckMerge:
    """Every shard's `CheckedShard`, added in shard order; `finish` makes the problems or the summary."""

    checks: ShardChecks
    rows: int = 0
    counts: list[int] = field(default_factory=list)
    examples: dict[int, dict[str, Any]] = field(default_factory=dict)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    distinct: dict[str, set[Any] | None] = field(default_factory=dict)
    hashes: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.checks.checks)
        self.distinct = {name: set() for name in self.checks.segments}

    def add(self, part: CheckedShard) -> None:
        """Add the next shard's checks (shards in order: a check's example is the first shard's that has one)."""
        self.rows += part.rows
        for i, count in enumerate(part.counts):
            self.counts[i] += count
        for i, example in part.examples.items():
            self.examples.setdefault(i, example)
        self.summaries.append(part.summary)
        for name, values in part.distinct.items():
            known = self.distinct[name]
            self.distinct[name] = None if known is None or values is None else known | values
        self.hashes.append(part.id_hashes)

    def finish(self, folded: FoldedChecks) -> DataSummary:
        """The dataset's `DataSummary`, or `InvalidData` listing every problem, as `check_dataset` words them."""
        source, schema = folded.source, folded.schema
        duplicates = []
        if self.checks.has_id and _hashes_repeat(self.hashes):
            duplicates = duplicated_ids(scan_dataset(source, schema, [TRANSACTION_ID]))
        problems = problems_found(self.rows, duplicates, self.checks.checks, self.counts, self.examples, schema)
        if problems:
            raise InvalidData(describe_problems(source.location, problems, schema), problems=tuple(problems))
        rules = {name: rule for name, (_, rule) in self.checks.summary.items()}
        values = {"rows": self.rows, **merge_summary_parts(self.summaries, rules)}
        for name, distinct in self.distinct.items():
            values[f"segment:{name}"] = (len(distinct) if distinct is not None
                                         else _distinct_count(source, schema, name))
        return summarise(values, folded.columns, schema, files=len(source.files),
                         label_maturity_days=folded.label_maturity_days, derived=folded.origin.derived)


def _hashes_repeat(parts: list[np.ndarray]) -> bool:
    """Whether a 64-bit id hash occurs twice among every shard's sorted hashes (then ids may repeat)."""
    if not parts:
        return False
    merged = np.sort(np.concatenate(parts))
    return bool((merged[1:] == merged[:-1]).any())


def _distinct_count(source: Source, schema: Schema, name: str) -> int:
    """Distinct values of one column over the whole dataset (null counts as one), by a query of that column alone."""
    scan = scan_dataset(source, schema, [name])
    return int(scan.select(pl.col(name)).unique().select(pl.len()).collect(engine="streaming").item())
