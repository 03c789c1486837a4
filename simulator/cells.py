"""Grouping a shard's rows into statistics cells.

A cell is a finest segment (the cross of every segmentation's value) and a
weight class (the logged action, the code of every coded policy and the
logging policy's support pattern). Within a cell every coded policy's weight
is a constant times a per-row basis, so sums over a cell are all the
estimators need (see `simulator.moments`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_COMPACT_ABOVE = 1 << 40  # compact mixed-radix keys before they can overflow int64


@dataclass(frozen=True, slots=True)
class Grouping:
    """Dense group ids of rows and one representative row per group.

    `ids` is `(n,)` int64 in `[0, size)`; `first[g]` is a row of group g; groups
    are numbered in the order of their key, so the numbering is deterministic.
    """

    ids: np.ndarray
    first: np.ndarray
    size: int


def group_rows(components: Sequence[tuple[np.ndarray, int]], rows: int) -> Grouping:
    """Group `rows` rows by several small integer keys, each given with its cardinality."""
    n = rows
    key = np.zeros(n, dtype=np.int64)
    radix = 1
    for values, cardinality in components:
        if radix * max(cardinality, 1) > _COMPACT_ABOVE:
            uniques, key = np.unique(key, return_inverse=True)
            radix = max(len(uniques), 1)
        key = key * max(cardinality, 1) + values.astype(np.int64, copy=False)
        radix *= max(cardinality, 1)
    uniques, first, ids = np.unique(key, return_index=True, return_inverse=True)
    return Grouping(ids=ids.astype(np.int64, copy=False), first=first, size=len(uniques))


def group_sum(grouping: Grouping, weights: np.ndarray) -> np.ndarray:
    """Σ of `weights` per group."""
    return np.bincount(grouping.ids, weights=weights, minlength=grouping.size)


def group_max(grouping: Grouping, values: np.ndarray) -> np.ndarray:
    """Max of `values` per group (values are non-negative, empty groups get 0)."""
    out = np.zeros(grouping.size, dtype=np.float64)
    np.maximum.at(out, grouping.ids, values)
    return out
