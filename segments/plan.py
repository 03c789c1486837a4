"""Segment planning: the data-dependent decisions, taken once on the driver.

Shards label their rows independently, so anything that depends on the whole
dataset must be fixed before they start, or two shards would disagree: which
values of a top-k column are kept is decided here, from value counts over the
whole (lazy) dataset, and shipped to every shard in a `SegmentPlan`. The plan
also checks the config against the data's schema, so a misspelt column fails
before any work is scheduled, and refuses a segmentation that would make more
than `[segments] max_segments` segments (a column of ids or timestamps).
Time windows (`[segments] time`) are segment columns derived from
`created_at` (`segments.windows`); they are counted through the same
expression the shards use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from segments.labels import OTHER, format_value
from segments.spec import SegmentSpec
from segments.windows import WINDOW_COLUMNS, TimeUnit, window_column, window_expr
from simulator.schema import CREATED_AT
from simulator.errors import InvalidConfig, UnknownName

_VALUE = "value"
_ROWS = "rows"


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """What every shard needs to label its rows identically; small and picklable.

    `segmentations` are the `by` entries in config order, then the time window
    (`ALL` is implicit and handled by the engine); `bands` the edges of each
    banded column; `top_values` the label texts of the kept values of each
    top-k column; `time` the unit of the window column (`created_at_<time>`),
    derived from `created_at` on every shard.
    """

    segmentations: tuple[tuple[str, ...], ...]
    bands: Mapping[str, tuple[float, ...]]
    top_values: Mapping[str, frozenset[str]]
    time: TimeUnit | None = None


def plan_segments(spec: SegmentSpec, data: pl.LazyFrame) -> SegmentPlan:
    """Check `spec` against the schema of `data` and choose the kept values of top-k columns.

    Reads no rows except through one lazy aggregation per top-k column.
    Raises `UnknownName` for a column the data lacks and `InvalidConfig` for a
    column whose type cannot be segmented that way.
    """
    schema = data.collect_schema()
    _check_columns(spec, schema)
    plan = SegmentPlan(
        segmentations=spec.segmentations,
        bands={column: bands.edges for column, bands in spec.bands.items()},
        top_values=_top_values(spec.top_k, data, schema),
        time=spec.time,
    )
    check_sizes(spec, plan, data, schema)
    return plan


def check_sizes(spec: SegmentSpec, plan: SegmentPlan, data: pl.LazyFrame, schema: pl.Schema) -> None:
    """Refuse a segmentation with more than `spec.max_segments` segments, before any shard runs.

    One lazy pass counts the distinct values of the columns neither banded nor
    top-k (a band or top-k column has at most its bands or k values, `other` and
    null); a cross whose product of counts exceeds the limit is counted exactly
    in one more pass. `by = [["created_at"]]` would otherwise make a segment per
    row (300,001 of them in 36 s, each too small to estimate anything).
    """
    raw = sorted({c for columns in plan.segmentations for c in columns} - set(plan.bands) - set(plan.top_values))
    counted = dict(zip(raw, (_distinct(data, _column(c, schema).alias(c)) for c in raw), strict=True))
    sizes = {c: counted[c] for c in raw} | {c: len(edges) + 3 for c, edges in plan.bands.items()} \
        | {c: len(kept) + 2 for c, kept in plan.top_values.items()}  # + other, NaN and null
    for index, columns in enumerate(plan.segmentations):
        bound = math.prod(sizes[c] for c in columns)
        if bound <= spec.max_segments:
            continue
        count = bound if len(columns) == 1 else _cross_count(columns, plan, data, schema)
        if count > spec.max_segments:
            where = f"segments.by[{index}]" if index < len(spec.by) else "segments.time"
            raise InvalidConfig(_too_many(where, columns, count, spec.max_segments, sizes, schema))


def _distinct(data: pl.LazyFrame, value: pl.Expr) -> int:
    """How many distinct values an expression takes over the data (null counts as one), in memory bounded by
    their number: a streaming group-by, not `n_unique`, which held ~47 bytes per row of the whole log on the
    driver (2.1 GiB at 40 M rows, benchmarks/README.md "Memory")."""
    return data.select(value).group_by(pl.all()).len().select(pl.len()).collect(engine="streaming").item()


def _column(column: str, schema: pl.Schema) -> pl.Expr:
    """A segment column's values: the column itself, or a time window derived from `created_at`."""
    unit = WINDOW_COLUMNS.get(column)
    return pl.col(column) if unit is None else window_expr(unit, schema[CREATED_AT])


def _cross_count(columns: tuple[str, ...], plan: SegmentPlan, data: pl.LazyFrame, schema: pl.Schema) -> int:
    """How many segments a cross of columns makes in the data: its distinct (band, kept value, value) tuples."""
    parts = []
    for column in columns:
        value = _column(column, schema)
        if column in plan.bands:
            value = value.cut(list(plan.bands[column]), left_closed=True)
        elif column in plan.top_values:
            text = value.cast(pl.String)
            value = pl.when(text.is_in(list(plan.top_values[column]))).then(text).otherwise(pl.lit(OTHER))
        parts.append(value.alias(column))
    return int(_distinct(data, pl.struct(parts).alias("cross")))


def _too_many(where: str, columns: tuple[str, ...], count: int, limit: int, sizes: Mapping[str, int],
              schema: pl.Schema) -> str:
    """Why a segmentation is refused and how to make it coarser, for its widest column's type."""
    widest = max(columns, key=lambda c: sizes[c])
    dtype = schema.get(widest)  # None for a window, which the data does not have
    if widest in WINDOW_COLUMNS:
        fix = f"{widest!r} is a time window: choose a longer one (segments.time = \"week\" or \"month\")"
    elif dtype is not None and dtype.is_temporal():
        fix = (f"{widest!r} is a timestamp, with a segment per instant: segment by windows of it "
               "(segments.time = \"day\", \"week\" or \"month\") or by a coarser column")
    elif dtype is not None and dtype.is_numeric() and dtype != pl.Boolean:
        fix = (f"cut {widest!r} into bands ([segments.bands.{widest}] edges = [...]) "
               f"or keep its largest values (top_k = {{ {widest} = 20 }})")
    else:
        fix = f"keep the largest values of {widest!r} with top_k = {{ {widest} = 20 }} (the rest become {OTHER!r})"
    return (f"{where}: {list(columns)} makes {count:,} segments, more than segments.max_segments "
            f"= {limit:,} ({widest!r} alone has {sizes[widest]:,} values); {fix}, or raise max_segments "
            "(docs/config.md)")


def _check_columns(spec: SegmentSpec, schema: pl.Schema) -> None:
    """Every segment column exists and holds scalars; every banded column is numeric; windows have timestamps."""
    if spec.time is not None:
        _check_windows(spec.time, schema)
    for index, columns in enumerate(spec.by):
        for column in columns:
            if column in WINDOW_COLUMNS:
                continue
            if column not in schema:
                raise UnknownName("segment column", column, schema.names())
            dtype = schema[column]
            if dtype.is_nested() or dtype.is_object():
                raise InvalidConfig(
                    f"segments.by[{index}]: column {column!r} is {dtype}; a segment column holds one scalar per row"
                )
    for column in spec.bands:
        dtype = schema[column]
        if not dtype.is_numeric():
            raise InvalidConfig(
                f"segments.bands.{column}: column {column!r} is {dtype}, not numeric; only numeric columns have bands"
            )


def _check_windows(time: TimeUnit, schema: pl.Schema) -> None:
    """Windows need `created_at` as a timestamp, and no column of the data may already have a window's name."""
    dtype = schema.get(CREATED_AT)
    if dtype is None:
        raise UnknownName("segment column", CREATED_AT, schema.names())
    if not isinstance(dtype, (pl.Datetime, pl.Date)):
        raise InvalidConfig(f"segments.time: windows of {CREATED_AT!r} need a timestamp, but it is {dtype}")
    if window_column(time) in schema:
        raise InvalidConfig(f"segments.time: the data has a column {window_column(time)!r}, the name of the "
                            f"{time} windows; rename that column in the files")


def _top_values(top_k: Mapping[str, int], data: pl.LazyFrame, schema: pl.Schema) -> dict[str, frozenset[str]]:
    """The label texts of the `k` most frequent values of each top-k column.

    One aggregation per column, all run together. Nulls are left out of the
    count: a null is always its own segment (SPEC §9), never folded into `other`.
    """
    queries = [_top_query(data, column, k, schema[column]) for column, k in top_k.items()]
    results = pl.collect_all(queries) if queries else []
    return {
        column: frozenset(format_value(value) for value in result[_VALUE].to_list())
        for column, result in zip(top_k, results, strict=True)
    }


def _top_query(data: pl.LazyFrame, column: str, k: int, dtype: pl.DataType) -> pl.LazyFrame:
    """Value counts of `column`, largest first, ties broken by value so the choice is deterministic."""
    value = pl.col(column)
    if isinstance(dtype, (pl.Categorical, pl.Enum)):
        value = value.cast(pl.String)  # break ties by text, not by category ids that vary by run
    return (
        data.select(value.alias(_VALUE))
        .drop_nulls()
        .group_by(_VALUE)
        .agg(pl.len().alias(_ROWS))
        .sort([_ROWS, _VALUE], descending=[True, False])
        .head(k)
    )
