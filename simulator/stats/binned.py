"""Bootstrap replicates of a sweep's grid: per (segment, score bin, logged action) sums.

`simulator.stats.bootstrap` keeps, per segment, the replicate totals of each term of
each policy. A grid has thousands of points, so its coding keeps instead, per
segment, score bin and logged action, the replicate sums of every value column
its terms use (basis 1/propensity); the driver turns them into every point's
replicate totals by the same prefix sums over bins as the point estimates
(`simulator.estimate.grid_totals`), a block of segments and points at a time, so memory stays
bounded while every point gets the replicates `run` would give it.

Size: segments × bins × actions × values × replicates floats, kept only where
rows exist (most high-score bins of small segments hold one logged action).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from segments.labels import ALL
from segments.codes import SegmentCodes
from simulator.stats.cells import Grouping
from simulator.plan.compiled import Binned, Plan

BLOCK_BYTES = 256 << 20  # dense replicate sums held at once on the driver


@dataclass(frozen=True, slots=True)
class BinnedReplicates:
    """Per segmentation (0 = ALL): occupied keys `segment · width + bin · actions + action` and their sums.

    `sums[s]` is `(len(keys[s]), replicates, len(values))`; `labels[s]` names the segments.
    """

    values: tuple[str, ...]
    width: int  # bins × actions
    labels: tuple[tuple[str, ...], ...]
    keys: tuple[np.ndarray, ...]
    sums: tuple[np.ndarray, ...]

    def merge(self, other: BinnedReplicates) -> BinnedReplicates:
        """Sums over both row sets, aligned by segment label and key."""
        labels, keys, sums = [], [], []
        for la, ka, sa, lb, kb, sb in zip(self.labels, self.keys, self.sums, other.labels, other.keys, other.sums,
                                          strict=True):
            union = tuple(sorted(set(la) | set(lb)))
            index = {label: i for i, label in enumerate(union)}
            moved = [self._relabel(k, [index[x] for x in old]) for k, old in ((ka, la), (kb, lb))]
            merged_keys = np.union1d(*moved)
            total = np.zeros((len(merged_keys), *sa.shape[1:]))
            for side, part in zip(moved, (sa, sb), strict=True):  # keys are unique within each side
                total[np.searchsorted(merged_keys, side)] += part
            labels.append(union)
            keys.append(merged_keys)
            sums.append(total)
        return BinnedReplicates(self.values, self.width, tuple(labels), tuple(keys), tuple(sums))

    def _relabel(self, keys: np.ndarray, new_index: list[int]) -> np.ndarray:
        return np.asarray(new_index, dtype=np.int64)[keys // self.width] * self.width + keys % self.width


class BinnedAccumulator:
    """Builds one shard's `BinnedReplicates` from blocks of per-cell replicate sums.

    It takes the per-cell replicate sums of `binned.values` (basis 1/propensity) that
    `simulator.stats.bootstrap.replicate_sums` hands to its sink, block by block.
    """

    def __init__(self, plan: Plan, binned: Binned, grouping: Grouping, cell_bin: np.ndarray, cell_action: np.ndarray,
                 segs: Sequence[SegmentCodes]) -> None:
        self.values = binned.values
        table = plan.policy(binned.coding).table
        if table is None:
            raise ValueError(f"binned replicate sums need a coded policy, and {binned.coding!r} is not one")
        actions = len(plan.actions)
        self.width = len(table) * actions
        within = cell_bin.astype(np.int64) * actions + cell_action
        self.labels: list[tuple[str, ...]] = [(ALL,)]
        targets = [within]
        for seg in segs:
            code = seg.codes[grouping.first]
            present = sorted(np.unique(code).tolist(), key=lambda c: seg.labels[c])
            slot = np.full(len(seg.labels), -1, dtype=np.int64)
            slot[present] = np.arange(len(present))
            self.labels.append(tuple(seg.labels[c] for c in present))
            targets.append(slot[code] * self.width + within)
        self.keys, self.inverse = [], []
        for target in targets:
            keys, inverse = np.unique(target, return_inverse=True)
            self.keys.append(keys)
            self.inverse.append(inverse)
        self.sums = [np.zeros((len(k), plan.bootstrap, len(self.values))) for k in self.keys]

    def add(self, lo: int, hi: int, totals: np.ndarray) -> None:
        """Add cells `lo:hi`'s replicate sums `(hi − lo, replicates, values)`."""
        flat = totals.reshape(hi - lo, -1)
        for keys, inverse, sums in zip(self.keys, self.inverse, self.sums, strict=True):
            member = sparse.csr_matrix((np.ones(hi - lo), (inverse[lo:hi], np.arange(hi - lo))), shape=(len(keys), hi - lo))
            sums += (member @ flat).reshape(sums.shape)

    def result(self) -> BinnedReplicates:
        return BinnedReplicates(self.values, self.width, tuple(self.labels), tuple(self.keys), tuple(self.sums))


@dataclass(frozen=True, slots=True)
class Block:
    """Cumulative replicate sums of a block of segments: `(values, actions, segments, bins + 1, replicates)`.

    Laid out so that one value and logged action is a contiguous `(segments, bins + 1, replicates)`
    array: gathering a point's bins then copies whole rows of replicates.
    """

    segments: slice
    cum: np.ndarray
    values: dict[str, int]

    def range_sum(self, value: str, ranges: tuple[np.ndarray, np.ndarray], points: np.ndarray) -> np.ndarray:
        """(segments, points, replicates): Σ over each point's bins (per logged action) of one value column."""
        lo, hi = ranges
        per_action = self.cum[self.values[value]]
        out = np.zeros((per_action.shape[1], len(points), per_action.shape[3]))
        last = per_action.shape[3] - 1
        for action, cum in enumerate(per_action):
            start, stop = lo[points, action], hi[points, action]
            used = stop > start  # empty ranges add nothing
            if not used.any():
                continue
            if not used.all():
                out[:, used] += cum[:, stop[used]] - cum[:, start[used]]
                continue
            out += cum[:, last][:, None] if (stop == last).all() else cum[:, stop]  # a range to the end: the total
            if (start > 0).any():  # a range from bin 0 starts at a cumulative sum of 0
                out -= cum[:, start]
        return out


def blocks(binned: BinnedReplicates, labels: tuple[str, ...], segmentation: np.ndarray, actions: int,
           budget: int = BLOCK_BYTES) -> Iterator[Block]:
    """Dense cumulative sums for consecutive blocks of the driver's segments (ALL first)."""
    bins = binned.width // actions
    position = {(s, label): i for i, (s, label) in enumerate(zip(segmentation.tolist(), labels, strict=True))}
    glob_keys, glob_sums = [], []
    for s, (names, keys, sums) in enumerate(zip(binned.labels, binned.keys, binned.sums, strict=True)):
        where = np.asarray([position[(s, name)] for name in names], dtype=np.int64)
        glob_keys.append(where[keys // binned.width] * binned.width + keys % binned.width)
        glob_sums.append(sums)
    keys = np.concatenate(glob_keys)
    order = np.argsort(keys, kind="stable")
    keys, sums = keys[order], np.concatenate(glob_sums)[order]
    replicates, values = sums.shape[1], sums.shape[2]
    per_segment = 2 * (bins + 1) * actions * replicates * values * 8
    step = max(1, budget // per_segment)
    index = {v: i for i, v in enumerate(binned.values)}
    for start in range(0, len(labels), step):
        stop = min(len(labels), start + step)
        a, b = np.searchsorted(keys, [start * binned.width, stop * binned.width])
        dense = np.zeros(((stop - start) * binned.width, replicates, values))
        dense[keys[a:b] - start * binned.width] = sums[a:b]
        dense = dense.reshape(stop - start, bins, actions, replicates, values).transpose(4, 2, 0, 1, 3)
        cum = np.zeros((values, actions, stop - start, bins + 1, replicates))
        np.cumsum(dense, axis=3, out=cum[:, :, :, 1:])
        yield Block(segments=slice(start, stop), cum=cum, values=index)
