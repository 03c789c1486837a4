"""Segment planning: the data-dependent decisions, taken once on the driver.

Shards label their rows independently, so anything that depends on the whole
dataset must be fixed before they start, or two shards would disagree: which
values of a top-k column are kept is decided here, from value counts over the
whole (lazy) dataset, and shipped to every shard in a `SegmentPlan`. The plan
also checks the config against the data's schema, so a misspelt column fails
before any work is scheduled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from segments.labels import format_value
from segments.spec import SegmentSpec
from simulator.errors import InvalidConfig, UnknownName

_VALUE = "value"
_ROWS = "rows"


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """What every shard needs to label its rows identically; small and picklable.

    `segmentations` are the `by` entries in config order (`ALL` is implicit and
    handled by the engine); `bands` the edges of each banded column;
    `top_values` the label texts of the kept values of each top-k column.
    """

    segmentations: tuple[tuple[str, ...], ...]
    bands: Mapping[str, tuple[float, ...]]
    top_values: Mapping[str, frozenset[str]]


def plan_segments(spec: SegmentSpec, data: pl.LazyFrame) -> SegmentPlan:
    """Check `spec` against the schema of `data` and choose the kept values of top-k columns.

    Reads no rows except through one lazy aggregation per top-k column.
    Raises `UnknownName` for a column the data lacks and `InvalidConfig` for a
    column whose type cannot be segmented that way.
    """
    schema = data.collect_schema()
    _check_columns(spec, schema)
    return SegmentPlan(
        segmentations=spec.by,
        bands={column: bands.edges for column, bands in spec.bands.items()},
        top_values=_top_values(spec.top_k, data, schema),
    )


def _check_columns(spec: SegmentSpec, schema: pl.Schema) -> None:
    """Every segment column exists and holds scalars; every banded column is numeric."""
    for index, columns in enumerate(spec.by):
        for column in columns:
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
