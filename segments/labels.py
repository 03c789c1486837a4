"""Segment labels (SPEC §9): how a segment is written, and the order reports list them in.

A label is `ALL` or `col=value` parts joined by `|` in the order of the `by`
entry, e.g. `card_country=FR|card_brand=visa`. Labels are the only key that
crosses shards: every shard numbers its segments its own way and the engine
merges them by label, so the text of a value must depend on the value alone
(never on the shard, the row order or the column's chunking). Every path that
writes a value goes through `format_value` or `band_value` for that reason.

Values are written as: strings as they are, integers in decimal, booleans
`true`/`false`, floats in their shortest round-trip form (`50`, `0.5`,
`1e-07`, `NaN`, `inf`), a null `null`. A band is a half-open interval
`[50,200)`, with `(-inf,0)` below the first edge and `[1000,inf)` from the
last. Values outside a top-k column's kept set are `other`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from segments.plan import SegmentPlan

ALL = "ALL"
NULL = "null"
OTHER = "other"
NAN = "NaN"
PART_SEPARATOR = "|"
VALUE_SEPARATOR = "="

SortKey = tuple[int, tuple[tuple[int, float, str], ...]]


def format_number(number: float) -> str:
    """Shortest text that reads back as the same float: `50` not `50.0`, `0.5`, `1e-07`.

    Two different floats never share a text (unlike `%g`), so two band edges
    or two float segment values cannot collapse into one label. `-0.0` is `0`.
    """
    if math.isnan(number):
        return NAN
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if number == 0:
        return "0"
    text = repr(float(number))
    return text.removesuffix(".0")


def format_value(value: object) -> str:
    """The text of one segment value, as it appears after `col=` in a label."""
    if value is None:
        return NULL
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, float):
        return format_number(value)
    return str(value)  # str as it is, int in decimal, Decimal, dates, ...


def band_value(edges: Sequence[float], index: int) -> str:
    """The text of band `index` of `edges`: 0 is below the first edge, `len(edges)` from the last."""
    if not 0 <= index <= len(edges):
        raise IndexError(f"band {index} does not exist for {len(edges)} edges")
    low = "(-inf" if index == 0 else f"[{format_number(edges[index - 1])}"
    high = "inf)" if index == len(edges) else f"{format_number(edges[index])})"
    return f"{low},{high}"


def band_values(edges: Sequence[float]) -> tuple[str, ...]:
    """The text of every band of `edges`, in edge order (`len(edges) + 1` bands)."""
    return tuple(band_value(edges, index) for index in range(len(edges) + 1))


def band_label(column: str, edges: Sequence[float], index: int) -> str:
    """The label of band `index` of a banded column, e.g. `amount=[50,200)`."""
    return join_parts(((column, band_value(edges, index)),))


def join_parts(parts: Sequence[tuple[str, str]]) -> str:
    """A label from (column, value text) parts, in the order of the `by` entry."""
    return PART_SEPARATOR.join(f"{column}{VALUE_SEPARATOR}{value}" for column, value in parts)


def segment_sort_key(label: str, plan: SegmentPlan) -> SortKey:
    """A key that lists segments in a stable, human order: `sorted(labels, key=...)`.

    `ALL` first, then segmentations in config order; within one, column by
    column: bands in edge order (then `NaN`, `null`), other values with
    numbers numerically before text alphabetically, then `null`, then `other`.
    Raises `ValueError` for a label no segmentation of `plan` can produce.
    """
    if label == ALL:
        return (0, ())
    index, values = _parse(label, plan)
    columns = plan.segmentations[index]
    return (index + 1, tuple(_value_key(column, value, plan) for column, value in zip(columns, values, strict=True)))


def _parse(label: str, plan: SegmentPlan) -> tuple[int, tuple[str, ...]]:
    """The segmentation that wrote `label` and its value texts.

    When several match (`a=x|b=y` reads as `a` with value `x|b=y` too), the
    segmentation with the most columns wins: a value containing `|b=` is far
    less likely than the cross it would imitate.
    """
    best: tuple[int, tuple[str, ...]] | None = None
    for index, columns in enumerate(plan.segmentations):
        values = _split(label, columns)
        if values is not None and (best is None or len(values) > len(best[1])):
            best = (index, values)
    if best is None:
        raise ValueError(f"segment label {label!r} matches no segmentation of the plan {list(plan.segmentations)}")
    return best


def _split(label: str, columns: Sequence[str]) -> tuple[str, ...] | None:
    """The value texts of `label` read as the parts of `columns`, or None if it is not one."""
    head = f"{columns[0]}{VALUE_SEPARATOR}"
    if not label.startswith(head):
        return None
    rest, values = label[len(head) :], []
    for column in columns[1:]:
        value, found, rest = rest.partition(f"{PART_SEPARATOR}{column}{VALUE_SEPARATOR}")
        if not found:
            return None
        values.append(value)
    return (*values, rest)


def _value_key(column: str, value: str, plan: SegmentPlan) -> tuple[int, float, str]:
    """Where one value text sorts among the values of its column."""
    edges = plan.bands.get(column)
    if edges is not None:
        order = (*band_values(edges), NAN, NULL)
        return (0, float(order.index(value)), "") if value in order else (1, 0.0, value)
    if value == NULL:
        return (2, 0.0, "")
    if value == OTHER and column in plan.top_values:
        return (3, 0.0, "")
    number = _finite_number(value)
    return (0, number, value) if number is not None else (1, 0.0, value)


def _finite_number(text: str) -> float | None:
    """The number a value text spells (`5411`, `0.5`), or None for text and NaN/inf."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
