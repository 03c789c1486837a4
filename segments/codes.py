"""Per-shard segment codes: which segment of each segmentation every row is in.

This is the hot path: it runs on every shard, over every row. Each segment
column is coded once (`segments.columns`), whatever the number of
segmentations using it; a segmentation is then the cross of its columns'
codes, compacted so that only segments present in the shard get a code.
Everything is a handful of vectorised passes; nothing loops over rows. A
time window (`segments.windows`) is a column derived from `created_at` here,
on the shard, and coded like any other.

Codes are shard-local: two shards may number the same segment differently, and
the engine merges them by label. Within one `SegmentCodes`, labels are unique
and every row has exactly one code, so segments partition the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from segments.columns import ColumnCodes, column_codes
from segments.labels import join_parts
from segments.plan import SegmentPlan
from segments.windows import source_columns, window_codes, window_column
from simulator.errors import UnknownName

# Key spaces up to max(this, 4 × rows) are compacted by counting; larger ones by sorting.
_MIN_COUNTED_KEYS = 1 << 16


@dataclass(frozen=True, slots=True)
class SegmentCodes:
    """The segment of every row for one segmentation.

    `codes` is `(n,)` int32 in `[0, len(labels))`; `labels[code]` is that
    segment's label, e.g. `card_country=FR|card_brand=visa`. Only segments
    with rows in the frame have a code, and no two codes share a label.
    """

    codes: np.ndarray
    labels: tuple[str, ...]


def segment_codes(frame: pl.DataFrame, plan: SegmentPlan) -> list[SegmentCodes]:
    """The codes of every segmentation of `plan`, in order, for the rows of `frame`."""
    names = list(dict.fromkeys(column for columns in plan.segmentations for column in columns))
    window = None if plan.time is None else window_column(plan.time)
    missing = [name for name in source_columns(names) if name not in frame.columns]
    if missing:
        raise UnknownName("segment column", sorted(missing)[0], frame.columns)
    coded = {
        name: window_codes(frame, plan.time) if name == window and plan.time is not None
        else column_codes(frame[name], edges=plan.bands.get(name), kept=plan.top_values.get(name))
        for name in names
    }
    return [_segmentation_codes(columns, [coded[column] for column in columns]) for columns in plan.segmentations]


def _segmentation_codes(columns: Sequence[str], coded: Sequence[ColumnCodes]) -> SegmentCodes:
    """The cross of coded columns as compact segment codes with their labels."""
    codes, combos = _cross(coded)
    labels = [
        join_parts([(name, column.values[value]) for name, column, value in zip(columns, coded, combo, strict=True)])
        for combo in combos
    ]
    return _merge_equal_labels(codes.astype(np.int32, copy=False), labels)


def _cross(coded: Sequence[ColumnCodes]) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    """Compact codes of the combinations of column codes present, and each code's combination.

    Columns are crossed one at a time and compacted after each, so the key
    space stays below (segments so far) × (codes of the next column), however
    many columns are crossed: no overflow, and counting stays cheap.
    """
    first = coded[0]
    if first.dense:
        codes, combos = first.codes, [(value,) for value in range(len(first.values))]
    else:
        codes, present = _compact(first.codes, len(first.values))
        combos = [(value,) for value in present.tolist()]
    for column in coded[1:]:
        radix = len(column.values)
        dtype = np.int32 if len(combos) * radix <= np.iinfo(np.int32).max else np.int64
        key = codes.astype(dtype) * dtype(radix) + column.codes
        codes, present = _compact(key, len(combos) * radix)
        combos = [(*combos[k // radix], k % radix) for k in present.tolist()]
    return codes, combos


def _compact(key: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Renumber `key` (integers in `[0, size)`) as 0..m-1 in key order; also return the m keys present.

    Counting is linear but needs `size` slots; a huge, sparse key space (a
    cross of wide columns) is sorted instead.
    """
    if size > max(4 * len(key), _MIN_COUNTED_KEYS):
        present, codes = np.unique(key, return_inverse=True)
        return codes.astype(np.int32, copy=False), present
    present = np.flatnonzero(np.bincount(key, minlength=size))
    if len(present) == size:
        return key, present
    renumber = np.zeros(size, dtype=np.int32)
    renumber[present] = np.arange(len(present), dtype=np.int32)
    return renumber[key], present


def _merge_equal_labels(codes: np.ndarray, labels: Sequence[str]) -> SegmentCodes:
    """Give one code to segments whose labels are equal, so labels stay unique.

    Different values can write the same label (a string "null" and a null, a
    kept value "other" and the other bucket); the engine merges shards by
    label, so they are one segment anyway.
    """
    first: dict[str, int] = {}
    renumber = [first.setdefault(label, len(first)) for label in labels]
    if len(first) == len(labels):
        return SegmentCodes(codes, tuple(labels))
    return SegmentCodes(np.asarray(renumber, dtype=np.int32)[codes], tuple(first))
