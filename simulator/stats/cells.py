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

from simulator.stats.kernel import dense_groups, pack

_PACKED = {np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64)}
_KEY_LIMIT = 1 << 62  # a packed key stays below this; wider key spaces are renumbered densely first


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
    """Group `rows` rows by several small integer keys, each given with its cardinality.

    The first component is the most significant, so groups sharing it are contiguous. The
    components are packed into one mixed-radix int64 key (`kernel.pack`, one pass each),
    renumbered densely (`kernel.dense_groups`: a direct table for narrow keys, else a hash
    table, one pass) only when the next component would overflow it; groups are numbered in
    the order of the packed key, which is the lexicographic order of the components.
    """
    key = np.zeros(rows, dtype=np.int64)
    radix = 1
    for values, cardinality in components:
        cardinality = max(cardinality, 1)
        if radix * cardinality > _KEY_LIMIT:
            key, first = dense_groups(key, radix)
            radix = len(first)
        if values.dtype not in _PACKED:  # bool, unsigned: the kernel adds signed integers
            values = values.astype(np.int64)
        pack(key, values, cardinality)  # codes are small and non-negative
        radix *= cardinality
    ids, first = dense_groups(key, radix)
    return Grouping(ids=ids, first=first, size=len(first))


def group_sum(grouping: Grouping, weights: np.ndarray) -> np.ndarray:
    """Σ of `weights` per group."""
    return np.bincount(grouping.ids, weights=weights, minlength=grouping.size)
