"""Compiled loops of a shard's hot path (numba): grouping rows by a packed key, and the per-cell sums.

Why compiled: numpy groups rows by sorting (an argsort, or a value sort with the row
index packed beside the key) and evaluates each of the ~180 sums a plan needs as
half a dozen whole-array passes with a temporary each. Here a hash table (or a
direct table, for narrow keys) numbers the groups in one pass, and the sums are
one loop over the units of each cell with no temporaries.

Every result is the same to the bit as the numpy code it replaces: groups are
numbered in the order of their key, each sum adds its terms in the order of the
units with the same products in the same association as the numpy expressions
(numba's default flags do not reassociate or contract `a * b + c` into a fused
multiply-add), starting from 0.0 as `np.bincount` does. Tests compare both
(tests/simulator/stats/test_kernel.py).

Functions compile on first use and are cached (`cache=True`) in `__pycache__`
beside this module, or, where that is not writable (an installed package), in
numba's user-wide cache directory; `NUMBA_CACHE_DIR` overrides both. Later
processes, Ray workers and CLI runs included, load the machine code instead of
compiling it again. Each distinct signature (dtype, layout, read-only) is
compiled once; editing this file recompiles every function in it. `nogil=True`
lets threads of one process run shards side by side.
"""

from __future__ import annotations

import numpy as np
from simulator.stats.compiled import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: multiply, keep the high bits


@njit(cache=True, nogil=True)
def pack(key: np.ndarray, values: np.ndarray, cardinality: int) -> None:
    """key ← key · cardinality + values, in place: one more component of a mixed-radix key."""
    for i in range(key.shape[0]):
        key[i] = key[i] * cardinality + values[i]


@njit(cache=True, nogil=True)
def _counted_groups(key: np.ndarray, radix: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids in key order and each group's earliest row, through a table of `radix` slots."""
    n = key.shape[0]
    seen = np.full(radix, -1, dtype=np.int64)
    for i in range(n):
        k = key[i]
        if seen[k] < 0:
            seen[k] = i
    size = 0
    for k in range(radix):
        if seen[k] >= 0:
            size += 1
    first = np.empty(size, dtype=np.int64)
    g = 0
    for k in range(radix):
        if seen[k] >= 0:
            first[g] = seen[k]
            seen[k] = g  # the slot now holds the group's id
            g += 1
    ids = np.empty(n, dtype=np.int64)
    for i in range(n):
        ids[i] = seen[key[i]]
    return ids, first


@njit(cache=True, nogil=True)
def _slot(k: int, bits: int) -> int:
    return np.int64((np.uint64(k) * _GOLDEN) >> np.uint64(64 - bits))


@njit(cache=True, nogil=True)
def _insert(key: np.ndarray, start: int, table: np.ndarray, bits: int, keys: np.ndarray, first: np.ndarray,
            ids: np.ndarray, size: int) -> tuple[int, int]:
    """Rows from `start` into the table (slot s: key at 2s, group id + 1 at 2s + 1; 0 is empty).

    Returns (next row, groups) when the table is half full or the rows are done; no array is
    reassigned in this loop, so it runs without reference counting.
    """
    mask = (1 << bits) - 1
    limit = 1 << (bits - 1)
    for i in range(start, key.shape[0]):
        k = key[i]
        h = _slot(k, bits)
        while True:
            g = table[2 * h + 1] - 1
            if g < 0:
                table[2 * h] = k
                table[2 * h + 1] = size + 1
                keys[size] = k
                first[size] = i
                ids[i] = size
                size += 1
                break
            if table[2 * h] == k:
                ids[i] = g
                break
            h = (h + 1) & mask
        if size >= limit:
            return i + 1, size
    return key.shape[0], size


@njit(cache=True, nogil=True)
def _hashed_groups(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids in order of first appearance, each group's key and earliest row (open addressing, linear probing)."""
    n = key.shape[0]
    bits = 12
    table = np.zeros(2 << bits, dtype=np.int64)
    keys = np.empty(1 << (bits - 1), dtype=np.int64)
    first = np.empty(1 << (bits - 1), dtype=np.int64)
    ids = np.empty(n, dtype=np.int64)
    row, size = _insert(key, 0, table, bits, keys, first, ids, 0)
    while row < n:  # half full: double the table and the group arrays, and go on
        bits += 1
        mask = (1 << bits) - 1
        table = np.zeros(2 << bits, dtype=np.int64)
        for g in range(size):
            h = _slot(keys[g], bits)
            while table[2 * h + 1] != 0:
                h = (h + 1) & mask
            table[2 * h] = keys[g]
            table[2 * h + 1] = g + 1
        grown = np.empty(1 << (bits - 1), dtype=np.int64)
        grown[:size] = keys[:size]
        keys = grown
        grown = np.empty(1 << (bits - 1), dtype=np.int64)
        grown[:size] = first[:size]
        first = grown
        row, size = _insert(key, row, table, bits, keys, first, ids, size)
    return ids, keys[:size].copy(), first[:size].copy()


@njit(cache=True, nogil=True)
def _renumber(ids: np.ndarray, rank: np.ndarray) -> None:
    """ids ← rank[ids], in place."""
    for i in range(ids.shape[0]):
        ids[i] = rank[ids[i]]


def dense_groups(key: np.ndarray, radix: int) -> tuple[np.ndarray, np.ndarray]:
    """Group ids of non-negative int64 keys below `radix`, numbered in key order, and each group's earliest row.

    A key space up to a few times the rows is numbered through a direct table (two passes);
    a wider one through a hash table (one pass), whose groups (few: cells and units) are
    then sorted by key and renumbered.
    """
    if len(key) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    if radix <= max(1 << 16, 4 * len(key)):
        return _counted_groups(key, radix)
    ids, keys, first = _hashed_groups(key)
    order = np.argsort(keys)  # distinct keys: no ties
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys))
    _renumber(ids, rank)
    return ids, first[order]


@njit(cache=True, nogil=True)
def _float_groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids in order of first appearance of each distinct float (by bits, -0.0 as 0.0), and the distinct values."""
    normal = values + 0.0  # -0.0 + 0.0 is 0.0
    ids, keys, _ = _hashed_groups(normal.view(np.int64))
    return ids, keys.view(np.float64)


def float_codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense codes of a float column, ordered by value, and how many distinct values (NaN: not expected)."""
    if len(values) == 0:
        return np.empty(0, dtype=np.int64), 0
    ids, distinct = _float_groups(np.ascontiguousarray(values, dtype=np.float64))
    order = np.argsort(distinct, kind="stable")
    rank = np.empty(len(distinct), dtype=np.int64)
    rank[order] = np.arange(len(distinct))
    _renumber(ids, rank)
    return ids, len(distinct)


@njit(cache=True, nogil=True)
def moments(ids: np.ndarray, size: int, amount: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group: rows, Σ amount and Σ amount², added in row order (as three `np.bincount`s)."""
    n = np.zeros(size)
    s1 = np.zeros(size)
    s2 = np.zeros(size)
    for i in range(ids.shape[0]):
        g = ids[i]
        a = amount[i]
        n[g] += 1.0
        s1[g] += a
        s2[g] += a * a
    return n, s1, s2


@njit(cache=True, nogil=True)
def group_max(ids: np.ndarray, size: int, values: np.ndarray) -> np.ndarray:
    """Per group: max(0, values of its rows) (as `np.maximum.at` into zeros)."""
    top = np.zeros(size)
    for i in range(ids.shape[0]):
        v = values[i]
        g = ids[i]
        if v > top[g] or v != v:
            top[g] = v
    return top


# What a unit's `second` is (`cell_sums`): each leaves out the terms that are exactly 0, as `_sums` did.
SECOND_ROWS = 0  # n
SECOND_LINEAR = 1  # c0 n + c1 S1 of one value
SECOND_GIVEN = 2  # a sum over the unit's rows computed elsewhere (row values)
BOTH_FLAT = 3  # a0 b0 n
LEFT_FLAT = 4  # a0 b0 n + (a0 b1) S1
RIGHT_FLAT = 5  # a0 b0 n + (a1 b0) S1
GENERAL = 6  # a0 b0 n + (a0 b1 + a1 b0) S1 + a1 b1 S2
# What a unit's `factor` is: 1, one basis ω_b, a product ω_a ω_b, or ω_a ω_b (1 − p) (a design sum)
FACTOR_ONE = -2
FACTOR_BASIS = -1  # in `factor_left`; the basis is `factor_right`

_BLOCK = 256  # cells summed side by side before they are written out


@njit(cache=True, nogil=True)
def cell_sums(order: np.ndarray, starts: np.ndarray, n: np.ndarray, s1: np.ndarray, s2: np.ndarray,
              c0: np.ndarray, c1: np.ndarray, basis: np.ndarray, unexplored: np.ndarray, given: np.ndarray,
              factor_left: np.ndarray, factor_right: np.ndarray, factor_design: np.ndarray,
              second_kind: np.ndarray, second_left: np.ndarray, second_right: np.ndarray,
              sum_factor: np.ndarray, sum_second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every planned sum per cell: Σ over the cell's units of factor · second; and each basis's maximum per cell.

    Units of cell c are `order[starts[c]:starts[c + 1]]`, in ascending unit order (the order
    `np.bincount` adds them in). Per unit u: `n, s1, s2` its moments (rows, Σ amount, Σ amount²),
    `c0[u, v], c1[u, v]` value v's coefficients (v = c0 + c1·amount), `basis[u, b]` basis ω_b,
    `unexplored[u]` = 1 − propensity, `given[u, k]` sums over its rows computed elsewhere.

    A unit's factors (`factor_*`: ω_b alone when `factor_left` is FACTOR_BASIS, 1 for FACTOR_ONE,
    else ω_a ω_b, times 1 − p when `factor_design`) and its seconds (`second_*`: a `SECOND_*` or
    shape kind with its left and right value, or the `given` column in `second_left`) are computed
    once per unit; sum j adds factor `sum_factor[j]` × second `sum_second[j]`. The products and
    their association are those of the numpy expressions this replaces, so the sums are the same
    to the bit.

    Returns (sums, maxima): (sums, cells) and (bases, cells), each row contiguous; maxima start at 0
    (as `np.maximum.at` into zeros). A block of cells is summed in a small (cells, sums) buffer and
    then written out a sum at a time: writing a cell's ~180 sums straight into rows 300 kB apart
    cost a TLB miss each.
    """
    cells = starts.shape[0] - 1
    count = sum_factor.shape[0]
    bases = basis.shape[1]
    out = np.empty((count, cells))
    top = np.empty((bases, cells))
    acc = np.empty((_BLOCK, count))
    high = np.empty((_BLOCK, bases))
    factor = np.empty(factor_left.shape[0])
    second = np.empty(second_kind.shape[0])
    for block in range(0, cells, _BLOCK):
        width = min(_BLOCK, cells - block)
        acc[:width] = 0.0
        high[:width] = 0.0
        for i in range(width):
            c = block + i
            for t in range(starts[c], starts[c + 1]):
                u = order[t]
                nu, s1u, s2u = n[u], s1[u], s2[u]
                for f in range(factor.shape[0]):
                    a, b = factor_left[f], factor_right[f]
                    if a == FACTOR_ONE:
                        factor[f] = 1.0
                    elif a == FACTOR_BASIS:
                        factor[f] = basis[u, b]
                    elif factor_design[f]:
                        factor[f] = basis[u, a] * basis[u, b] * unexplored[u]
                    else:
                        factor[f] = basis[u, a] * basis[u, b]
                for k in range(second.shape[0]):
                    kind, left, right = second_kind[k], second_left[k], second_right[k]
                    if kind == SECOND_ROWS:
                        second[k] = nu
                    elif kind == SECOND_LINEAR:
                        second[k] = c0[u, left] * nu + c1[u, left] * s1u
                    elif kind == SECOND_GIVEN:
                        second[k] = given[u, left]
                    else:
                        a0, a1 = c0[u, left], c1[u, left]
                        b0, b1 = c0[u, right], c1[u, right]
                        if kind == BOTH_FLAT:
                            second[k] = a0 * b0 * nu
                        elif kind == LEFT_FLAT:
                            second[k] = a0 * b0 * nu + (a0 * b1) * s1u
                        elif kind == RIGHT_FLAT:
                            second[k] = a0 * b0 * nu + (a1 * b0) * s1u
                        else:
                            second[k] = a0 * b0 * nu + (a0 * b1 + a1 * b0) * s1u + a1 * b1 * s2u
                for j in range(count):
                    acc[i, j] += factor[sum_factor[j]] * second[sum_second[j]]
                for b in range(bases):
                    x = basis[u, b]
                    if x > high[i, b] or x != x:
                        high[i, b] = x
        for j in range(count):
            for i in range(width):
                out[j, block + i] = acc[i, j]
        for b in range(bases):
            for i in range(width):
                top[b, block + i] = high[i, b]
    return out, top


@njit(cache=True, nogil=True)
def _offer(heap: np.ndarray, filled: np.ndarray, low: np.ndarray, g: int, x: float) -> None:
    """Keep the `heap.shape[1]` largest values offered to group g (a min-heap per row of `heap`).

    `low[g]` is -inf until the heap is full, then its smallest value: the one test most offers
    need, in an array small enough to stay in cache (the heaps are not).
    """
    if not x > low[g]:
        return
    keep = heap.shape[1]
    m = filled[g]
    if m < keep:  # sift up
        i = m
        while i > 0:
            parent = (i - 1) // 2
            if heap[g, parent] <= x:
                break
            heap[g, i] = heap[g, parent]
            i = parent
        heap[g, i] = x
        filled[g] = m + 1
        if m + 1 == keep:
            low[g] = heap[g, 0]
        return
    i = 0  # replace the smallest, sift down
    while True:
        child = 2 * i + 1
        if child >= keep:
            break
        if child + 1 < keep and heap[g, child + 1] < heap[g, child]:
            child += 1
        if heap[g, child] >= x:
            break
        heap[g, i] = heap[g, child]
        i = child
    heap[g, i] = x
    low[g] = heap[g, 0]


@njit(cache=True, nogil=True)
def _transition(base: np.ndarray, codes: np.ndarray, choice: np.ndarray, actions: int, p: int, i: int) -> int:
    """Row i's transition (baseline action, policy p's action) as one index, or -1 where p keeps the baseline's."""
    target = choice[p, codes[p, i]]
    b = base[i]
    return -1 if target == b else b * actions + target


@njit(cache=True, nogil=True)
def _segment_group(offsets: np.ndarray, labels: np.ndarray, segments: np.ndarray, transition: int, s: int,
                   i: int) -> int:
    """The group of row i's (transition, segment of segmentation s), within its policy's groups."""
    return offsets[s + 1] + transition * labels[s] + segments[s, i]


@njit(cache=True, nogil=True)
def example_candidates(base: np.ndarray, codes: np.ndarray, choice: np.ndarray, segments: np.ndarray,
                       labels: np.ndarray, amount: np.ndarray, keep: int, actions: int) -> np.ndarray:
    """Per policy, the rows whose action changes and whose amount is at least the `keep`-th largest of its group.

    Under policy p a row takes `choice[p, codes[p, row]]`, under the baseline `base[row]`; its
    decision changes where they differ. Its groups are its transition (base, target) and, for
    each segmentation s, (transition, `segments[s, row]`) with `labels[s]` segments. One pass
    over the rows, every policy at once (the baseline, amounts and segments are read once),
    offers each changed row's amount to a min-heap of the `keep` largest per (policy, group);
    a second keeps the rows at or above the smallest of one of their full heaps, or in a group
    of at most `keep` rows: ties at a boundary are all kept, and the caller orders the
    candidates exactly (amount, then transaction id). The set is the one a sort of every group
    by amount gives.

    Returns (policies, 2) bounds into a flat array of rows (ascending within each policy), and that array.
    """
    n = base.shape[0]
    policies = codes.shape[0]
    pairs = actions * actions
    offsets = np.zeros(labels.shape[0] + 2, dtype=np.int64)
    offsets[1] = pairs
    for s in range(labels.shape[0]):
        offsets[s + 2] = offsets[s + 1] + pairs * labels[s]
    groups = offsets[-1]
    heap = np.empty((policies * groups, max(keep, 1)))
    filled = np.zeros(policies * groups, dtype=np.int64)
    low = np.full(policies * groups, -np.inf)  # the threshold: -inf while a group has fewer than `keep` rows
    changed = np.zeros(policies, dtype=np.int64)
    for i in range(n):
        x = amount[i]
        for p in range(policies):
            transition = _transition(base, codes, choice, actions, p, i)
            if transition < 0:
                continue
            changed[p] += 1
            at = p * groups
            _offer(heap, filled, low, at + transition, x)
            for s in range(labels.shape[0]):
                _offer(heap, filled, low, at + _segment_group(offsets, labels, segments, transition, s, i), x)
    threshold = low  # each group's smallest kept amount (-inf: a group of at most `keep` rows)
    bounds = np.zeros((policies, 2), dtype=np.int64)
    for p in range(1, policies):
        bounds[p, 0] = bounds[p - 1, 0] + changed[p - 1]
    for p in range(policies):
        bounds[p, 1] = bounds[p, 0]
    rows = np.empty(changed.sum(), dtype=np.int64)
    for i in range(n):
        x = amount[i]
        for p in range(policies):
            transition = _transition(base, codes, choice, actions, p, i)
            if transition < 0:
                continue
            at = p * groups
            chosen = x >= threshold[at + transition]
            s = 0
            while not chosen and s < labels.shape[0]:
                chosen = x >= threshold[at + _segment_group(offsets, labels, segments, transition, s, i)]
                s += 1
            if chosen:
                rows[bounds[p, 1]] = i
                bounds[p, 1] += 1
    return bounds, rows


@njit(cache=True, nogil=True)
def accumulate(out: np.ndarray, ids: np.ndarray, values: np.ndarray) -> None:
    """out[ids[i]] += values[i] in row order: `np.bincount` over several arrays one after the other."""
    for i in range(ids.shape[0]):
        out[ids[i]] += values[i]


@njit(cache=True, nogil=True)
def accumulate_max(out: np.ndarray, ids: np.ndarray, values: np.ndarray) -> None:
    """out[ids[i]] = max(out[ids[i]], values[i]), NaN winning (as `np.maximum.at`)."""
    for i in range(ids.shape[0]):
        v = values[i]
        g = ids[i]
        if v > out[g] or v != v:
            out[g] = v
