"""Grouping a shard's rows into statistics cells.

A cell is a finest segment (the cross of every segmentation's value) and a
weight class (the logged action, the code of every coded policy and the
logging policy's support pattern). Within a cell every coded policy's weight
is a constant times a per-row basis, so sums over a cell are all the
estimators need (see `simulator.plan.moments`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_DENSE_LIMIT = 1 << 20  # keys below this are compacted with a dense table instead of a sort


@dataclass(frozen=True, slots=True)
class Grouping:
    """Dense group ids of rows and one representative row per group.

    `ids` is `(n,)` int64 in `[0, size)`; `first[g]` is a row of group g; groups
    are numbered in the order of their key, so the numbering is deterministic.
    """

    ids: np.ndarray
    first: np.ndarray
    size: int


def _compact(key: np.ndarray, radix: int) -> tuple[np.ndarray, int]:
    """Renumber keys in [0, radix) densely, keeping their order (O(n + radix), no sort)."""
    if radix <= _DENSE_LIMIT:
        present = np.bincount(key, minlength=radix) > 0
        remap = np.cumsum(present) - 1
        return remap[key], int(present.sum())
    uniques, inverse = np.unique(key, return_inverse=True)
    return inverse.astype(np.int64, copy=False), len(uniques)


def group_rows(components: Sequence[tuple[np.ndarray, int]], rows: int) -> Grouping:
    """Group `rows` rows by several small integer keys, each given with its cardinality.

    The first component is the most significant, so groups sharing it are contiguous.
    """
    key = np.zeros(rows, dtype=np.int64)
    radix = 1
    for values, cardinality in components:
        cardinality = max(cardinality, 1)
        if radix * cardinality > _DENSE_LIMIT:
            key, radix = _compact(key, radix)
        key = key * cardinality + values.astype(np.int64, copy=False)
        radix *= cardinality
    ids, size = _compact(key, radix)
    first = np.empty(size, dtype=np.int64)
    first[ids[::-1]] = np.arange(rows - 1, -1, -1)  # the earliest row of each group wins
    return Grouping(ids=ids, first=first, size=size)


def group_sum(grouping: Grouping, weights: np.ndarray) -> np.ndarray:
    """Σ of `weights` per group."""
    return np.bincount(grouping.ids, weights=weights, minlength=grouping.size)
