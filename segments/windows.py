"""Time windows of `created_at` as a segmentation (SPEC §6): `[segments] time = "week"`.

A window is a derived segment column: `created_at_day`, `created_at_week` or
`created_at_month`, whose value is the first day of the row's window in UTC
(a week starts on Monday and is labelled by that Monday). Labels read
`created_at_day=2026-06-03`, `created_at_week=2026-06-01`,
`created_at_month=2026-06`; ISO dates sort as text in time order, so
`segment_sort_key` lists windows chronologically with no special case.

`time` adds the window as one more segmentation (after the `by` entries); a
`by` entry may also name the window column of that unit to cross it with
columns (`by = [["created_at_week", "card_country"]]`). Everything else about
a window is that of any segment: the same codes, merge by label, flags and
`max_segments` limit; a window with few rows is flagged like a small segment.

The window is one polars expression (`window_expr`), used by the driver
(how many segments a window makes) and by every shard (each row's window),
so the two cannot disagree; each shard then codes the window as days since
1970-01-01, an integer column with a narrow range (one counting pass).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Literal, get_args

import polars as pl

from segments.columns import ColumnCodes, column_codes
from segments.labels import NULL
from simulator.schema import CREATED_AT

TimeUnit = Literal["day", "week", "month"]
TIME_UNITS: tuple[str, ...] = get_args(TimeUnit)

# polars truncation of a date to the first day of its window; "1w" truncates to Monday
_TRUNCATE = {"week": "1w", "month": "1mo"}
_EPOCH = date(1970, 1, 1)


def window_column(unit: TimeUnit) -> str:
    """The name of the window column of `unit`, as `by` entries and labels write it: `created_at_week`."""
    return f"{CREATED_AT}_{unit}"


WINDOW_COLUMNS: dict[str, TimeUnit] = {window_column(unit): unit for unit in get_args(TimeUnit)}


def window_unit(column: str) -> TimeUnit | None:
    """The unit of a window column name, or None for any other column."""
    return WINDOW_COLUMNS.get(column)


def source_columns(columns: Iterable[str]) -> frozenset[str]:
    """The columns of the data that `columns` are read from: a window column is read from `created_at`."""
    return frozenset(CREATED_AT if column in WINDOW_COLUMNS else column for column in columns)


def window_expr(unit: TimeUnit, dtype: pl.DataType) -> pl.Expr:
    """Each row's window of `created_at` (of type `dtype`) as the date of its first day, in UTC.

    The engine reads timestamps in UTC (`simulator.data.mapping.in_utc`); a
    zoned column is converted here too, so a window never depends on the
    zone the data was written in. A naive timestamp is UTC (SPEC §2).
    """
    stamp = pl.col(CREATED_AT)
    if isinstance(dtype, pl.Datetime) and dtype.time_zone not in (None, "UTC"):
        stamp = stamp.dt.convert_time_zone("UTC")
    day = stamp.dt.date()
    window = day if unit == "day" else day.dt.truncate(_TRUNCATE[unit])
    return window.alias(window_column(unit))


def window_codes(frame: pl.DataFrame, unit: TimeUnit) -> ColumnCodes:
    """The window of every row of `frame`, coded like any segment column, with date labels."""
    first_days = frame.select(window_expr(unit, frame.schema[CREATED_AT])).to_series()
    coded = column_codes(first_days.cast(pl.Int32))  # days since 1970-01-01: a narrow integer range
    return ColumnCodes(coded.codes, tuple(_window_text(value, unit) for value in coded.values), coded.dense)


def _window_text(value: str, unit: TimeUnit) -> str:
    """The label text of a window from its first day's text as days since 1970-01-01: `2026-06-01`, `2026-06`."""
    if value == NULL:
        return NULL
    first_day = (_EPOCH + timedelta(days=int(value))).isoformat()
    return first_day[:7] if unit == "month" else first_day

