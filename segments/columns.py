"""Coding one segment column: every row's value (or band, or top-k bucket) as a small integer.

`segments.codes` crosses these into segmentations; this module does the work
that touches every row of a column, once per column however many
segmentations use it. Each type gets the fastest exact method measured on
10 M rows (2 cores):

- strings: distinct values, then a direct-address table on a few bits of each
  row's hash (exact, see `_string_codes`); per row ~3x cheaper than a hash join;
- top-k strings: one hash join against the kept values (no distinct pass);
- integers with a narrow range: offsets from the minimum, counted;
- booleans: the value itself;
- banded numbers: a compare per edge, summed (edges compared exactly);
- anything else (dates, floats, decimals): a hash join against the distinct values.

Codes follow a readable order (sorted values, bands in edge order, then NaN,
then null, or kept values, `other`, null). Except for booleans, many-edged
bands and top-k columns, only values present in the shard get a code
("dense"), which spares the caller a compaction pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from segments.labels import NAN, NULL, OTHER, band_values, format_value

# Fixed so that the hashes of a column's distinct values and of its rows agree.
_HASH_SEED = 0
# A string column whose distinct values no hash-bit window this wide tells apart
# (hundreds of values) is coded by a hash join instead.
_MAX_SLOT_BITS = 16
# Integer columns whose range is at most max(rows, this) wide are coded by offset.
_MIN_DIRECT_SPAN = 1 << 16
# Up to this many edges, a compare per edge beats a binary search per row.
_MAX_COMPARE_EDGES = 8


@dataclass(frozen=True, slots=True)
class ColumnCodes:
    """One column coded: `codes` `(n,)` non-negative integers indexing `values` (value texts).

    `dense` says every code in `[0, len(values))` occurs; otherwise some values
    may be unused and the caller compacts.
    """

    codes: np.ndarray
    values: tuple[str, ...]
    dense: bool


def column_codes(
    series: pl.Series, *, edges: Sequence[float] | None = None, kept: frozenset[str] | None = None
) -> ColumnCodes:
    """A column coded as its bands (with `edges`), its top-k buckets (with `kept`), or its values."""
    if edges is not None:
        return _band_codes(series, edges)
    if kept is not None and _is_text(series.dtype):
        return _kept_text_codes(series.cast(pl.String), kept)
    coded = _value_codes(series)
    return coded if kept is None else _keep_top(coded, kept)


def _is_text(dtype: pl.DataType) -> bool:
    """Whether a column's value texts are its values (strings, categories)."""
    return dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))


def _value_codes(series: pl.Series) -> ColumnCodes:
    """A column coded by value, with the fastest exact method for its type."""
    dtype = series.dtype
    if dtype == pl.Boolean:
        codes = series.cast(pl.UInt8).fill_null(2).to_numpy()
        return ColumnCodes(codes, ("false", "true", NULL), dense=False)
    if dtype.is_integer():
        return _integer_codes(series)
    if _is_text(dtype):
        return _string_codes(series.cast(pl.String))  # by text: category ids differ across shards
    return _lookup_codes(series, _distinct(series))


def _distinct(series: pl.Series) -> pl.Series:
    """The distinct non-null values, sorted so codes follow a readable order."""
    return series.unique().drop_nulls().sort()


def _value_texts(series: pl.Series, distinct: pl.Series) -> tuple[str, ...]:
    """The texts of `distinct`, then `null` if `series` has nulls (which take the next code)."""
    return (*map(format_value, distinct.to_list()), *((NULL,) if series.null_count() else ()))


def _lookup_codes(series: pl.Series, distinct: pl.Series) -> ColumnCodes:
    """Codes by a hash join of the rows against their distinct values."""
    size = len(distinct)
    codes = series.replace_strict(
        distinct, np.arange(size, dtype=np.int32), default=size, return_dtype=pl.Int32
    ).to_numpy()  # every non-null value is in `distinct`, so only nulls take the default
    return ColumnCodes(codes, _value_texts(series, distinct), dense=True)


def _string_codes(series: pl.Series) -> ColumnCodes:
    """Codes of a string column by a direct-address table on bits of each row's hash.

    Exact, not probabilistic: every row's value is one of `distinct`, and the
    table is used only when the chosen bits of the distinct values' hashes all
    differ, so equal bits mean equal values. Falls back to a hash join when no
    narrow window separates them.
    """
    distinct = _distinct(series)
    table = _slot_table(distinct.hash(seed=_HASH_SEED).to_numpy())
    if table is None:
        return _lookup_codes(series, distinct)
    shift, mask, lookup = table
    hashes = series.hash(seed=_HASH_SEED).to_numpy()
    slots = hashes & mask if shift == 0 else (hashes >> shift) & mask
    codes = lookup[slots.view(np.int64)]  # slots < 2**16, so the int64 view holds the same numbers
    if series.null_count():
        codes[series.is_null().to_numpy()] = len(distinct)
    return ColumnCodes(codes, _value_texts(series, distinct), dense=True)


def _slot_table(hashes: np.ndarray) -> tuple[np.uint64, np.uint64, np.ndarray] | None:
    """A bit window that tells `hashes` apart, and the index in `hashes` of each window value.

    Returns (shift, mask, lookup) with `lookup[(hash >> shift) & mask]` the
    index of `hash`, or None when no window of at most `_MAX_SLOT_BITS` bits
    separates them (too many values, or equal hashes).
    """
    count = len(hashes)
    smallest = max(8, 2 * math.ceil(math.log2(count + 1)))  # birthday bound: a collision is unlikely
    for width in range(smallest, _MAX_SLOT_BITS + 1):
        mask = np.uint64((1 << width) - 1)
        for shift in range(0, 64 - width + 1, 4):
            slots = (hashes >> np.uint64(shift)) & mask
            if len(np.unique(slots)) == count:
                lookup = np.zeros(1 << width, dtype=np.int32)
                lookup[slots.astype(np.int64)] = np.arange(count, dtype=np.int32)
                return np.uint64(shift), mask, lookup
    return None


def _integer_codes(series: pl.Series) -> ColumnCodes:
    """Codes of an integer column as offsets from its minimum, when its range is narrow.

    Only the values present get a code, so a few ids spread over thousands stay
    a few codes. A wide range falls back to a hash join.
    """
    low, high = series.min(), series.max()
    if low is None:  # every value is null
        return ColumnCodes(np.zeros(len(series), dtype=np.int32), (NULL,), dense=len(series) > 0)
    span = int(high) - int(low) + 1
    if span > max(len(series), _MIN_DIRECT_SPAN) or high > np.iinfo(np.int64).max:
        return _lookup_codes(series, _distinct(series))
    # int64 before subtracting: in a narrow type (int8) the offsets could overflow
    offsets = series.fill_null(low).to_numpy().astype(np.int64) - int(low)
    if series.null_count():
        offsets[series.is_null().to_numpy()] = span
    present = np.flatnonzero(np.bincount(offsets, minlength=span + 1))
    renumber = np.zeros(span + 1, dtype=np.int32)
    renumber[present] = np.arange(len(present), dtype=np.int32)
    values = tuple(NULL if offset == span else format_value(int(low) + offset) for offset in present.tolist())
    return ColumnCodes(renumber[offsets], values, dense=True)


def _band_codes(series: pl.Series, edges: Sequence[float]) -> ColumnCodes:
    """Codes of a banded column: its present bands in edge order, then NaN, then null.

    A value equal to an edge belongs to the band that starts there: edges are
    compared exactly, never through floor arithmetic.
    """
    values = series.cast(pl.Float64).to_numpy()  # nulls become NaN here; told apart below
    nan = np.isnan(values)
    nulls = series.null_count()
    nans = int(np.count_nonzero(nan)) - nulls
    if len(edges) > _MAX_COMPARE_EDGES:
        index = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")
        texts, dense = list(band_values(edges)), False
    else:
        index, texts = _present_band_index(values, edges, len(values) - nans - nulls)
        dense = True
    if nans and nulls:
        index[nan] = len(texts)
        index[series.is_null().to_numpy()] = len(texts) + 1
    elif nans or nulls:
        index[nan] = len(texts)  # `nan` marks exactly the NaNs, or exactly the nulls
    texts += [text for text, count in ((NAN, nans), (NULL, nulls)) if count]
    return ColumnCodes(index, tuple(texts), dense=dense)


def _present_band_index(values: np.ndarray, edges: Sequence[float], numbers: int) -> tuple[np.ndarray, list[str]]:
    """Each value's band, numbered among the bands present only; and those bands' texts.

    A value in band i is at or above edges 0..i-1, so its index among present
    bands is the count of present bands k < i: the sum, over edges it passes,
    of whether the band below that edge is present. `values >= edge` is False
    for NaN, so `numbers` (the non-NaN values) anchors the counts.
    """
    passed = [values >= edge for edge in edges]
    at_or_above = [numbers, *(int(np.count_nonzero(mask)) for mask in passed), 0]
    present = [at_or_above[band] > at_or_above[band + 1] for band in range(len(edges) + 1)]
    index = np.zeros(len(values), dtype=np.int8)
    for mask, below in zip(passed, present[:-1], strict=True):  # edge k closes band k
        if below:
            index += mask
    return index, [text for text, keep in zip(band_values(edges), present, strict=True) if keep]


def _kept_text_codes(series: pl.Series, kept: frozenset[str]) -> ColumnCodes:
    """Codes of a top-k string column straight from the kept values: one hash join, no distinct pass.

    A wide column (thousands of merchants) is what top-k is for, and finding
    its distinct values costs more than the join itself.
    """
    order = sorted(kept)
    codes = series.replace_strict(
        order, np.arange(len(order), dtype=np.int32), default=len(order), return_dtype=pl.Int32
    ).to_numpy(writable=True)
    if series.null_count():
        codes[series.is_null().to_numpy()] = len(order) + 1  # nulls took the default; null is not other
    return ColumnCodes(codes, (*order, OTHER, NULL), dense=False)


def _keep_top(coded: ColumnCodes, kept: frozenset[str]) -> ColumnCodes:
    """Fold every value outside `kept` into `other`; null stays its own segment."""
    present = sorted(value for value in coded.values if value in kept and value != NULL)
    folded = any(value not in kept and value != NULL for value in coded.values)
    values = (*present, *((OTHER,) if folded else ()), *((NULL,) if NULL in coded.values else ()))
    position = {value: index for index, value in enumerate(values)}
    remap = np.array(
        [position[value] if value in position else position[OTHER] for value in coded.values], dtype=np.int32
    )
    # a kept value spelt "other" would share its text with the bucket: not dense then
    return ColumnCodes(remap[coded.codes], values, dense=coded.dense and len(set(values)) == len(values))
