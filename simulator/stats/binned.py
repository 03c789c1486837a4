"""Bootstrap replicates of a sweep's grid: per (segment, score bin, baseline code, logged action) sums.

`simulator.stats.bootstrap` keeps, per segment, the replicate totals of each term of
each policy. A grid has thousands of points, so its coding keeps instead, per
segment, score bin, code of the baseline (when the estimator stratifies by the
baseline's action, else one code) and logged action, the replicate sums of every
(basis, value column) moment its terms use; the driver turns them into every point's
replicate totals by the same prefix sums over bins as the point estimates
(`simulator.estimate.grid_totals`), a block of segments and points at a time, so memory stays
bounded while every point gets the replicates `run` would give it.

Size: segments × bins × baseline codes × actions × moments × replicates floats, kept only where
rows exist (most high-score bins of small segments hold one logged action).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
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
    """Per segmentation (0 = ALL): occupied keys `segment · width + (bin · outer + code) · actions + action`, and sums.

    `sums[s]` is `(len(keys[s]), replicates, len(moments))`; `labels[s]` names the segments.
    """

    moments: tuple[tuple[str, str], ...]
    width: int  # bins × outer × actions
    outer: int  # codes of the outer (baseline) coding; 1 without one
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
        return BinnedReplicates(self.moments, self.width, self.outer, tuple(labels), tuple(keys), tuple(sums))

    def _relabel(self, keys: np.ndarray, new_index: list[int]) -> np.ndarray:
        return np.asarray(new_index, dtype=np.int64)[keys // self.width] * self.width + keys % self.width


class BinnedAccumulator:
    """Builds one shard's `BinnedReplicates` from blocks of per-cell replicate sums.

    It takes the per-cell replicate sums of `binned.moments` that
    `simulator.stats.bootstrap.replicate_sums` hands to its sink, a chunk of cell pieces at a time.
    """

    def __init__(self, plan: Plan, binned: Binned, grouping: Grouping, cell_codes: Mapping[str, np.ndarray],
                 cell_action: np.ndarray, segs: Sequence[SegmentCodes]) -> None:
        self.moments = binned.moments
        table = plan.policy(binned.coding).table
        if table is None:
            raise ValueError(f"binned replicate sums need a coded policy, and {binned.coding!r} is not one")
        outer_table = None if binned.outer is None else plan.policy(binned.outer).table
        self.outer = 1 if outer_table is None else len(outer_table)
        outer_code = np.zeros_like(cell_action) if binned.outer is None else cell_codes[binned.outer]
        actions = len(plan.actions)
        self.width = len(table) * self.outer * actions
        within = (cell_codes[binned.coding].astype(np.int64) * self.outer + outer_code) * actions + cell_action
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
        self.sums = [np.zeros((len(k), len(self.moments), plan.bootstrap)) for k in self.keys]  # (keys, moments, B)

    def add(self, cells: np.ndarray, totals: np.ndarray) -> None:
        """Add replicate sums `(len(cells), moments, replicates)` over rows of `cells` (a cell may come in parts)."""
        flat = totals.reshape(len(cells), -1)
        for keys, inverse, sums in zip(self.keys, self.inverse, self.sums, strict=True):
            member = sparse.csr_matrix((np.ones(len(cells)), (inverse[cells], np.arange(len(cells)))),
                                       shape=(len(keys), len(cells)))
            sums += (member @ flat).reshape(sums.shape)

    def result(self) -> BinnedReplicates:
        """The sums in `BinnedReplicates`' layout, `(keys, replicates, moments)`."""
        sums = tuple(np.ascontiguousarray(s.transpose(0, 2, 1)) for s in self.sums)
        return BinnedReplicates(self.moments, self.width, self.outer, tuple(self.labels), tuple(self.keys), sums)


@dataclass(frozen=True, slots=True)
class Block:
    """Cumulative replicate sums of a block of segments: `(moments, outer, actions, segments, bins + 1, replicates)`.

    Laid out so that one moment, outer code and logged action is a contiguous
    `(segments, bins + 1, replicates)` array: gathering a point's bins then copies whole rows of replicates.
    """

    segments: slice
    cum: np.ndarray
    moments: dict[tuple[str, str], int]

    def range_sum(self, moment: tuple[str, str], ranges: tuple[np.ndarray, np.ndarray], points: np.ndarray,
                  outer: np.ndarray | None = None) -> np.ndarray:
        """(segments, points, replicates): Σ over each point's bins (per logged action) of one moment.

        `outer` weights each outer code (a stratum's baseline membership); None: every code counts 1.
        """
        lo, hi = ranges
        per_code = self.cum[self.moments[moment]]
        out = np.zeros((per_code.shape[2], len(points), per_code.shape[4]))
        for code, per_action in enumerate(per_code):
            weight = 1.0 if outer is None else float(outer[code])
            if weight == 0.0:
                continue
            out += weight * _bins_sum(per_action, lo, hi, points)
        return out


def _bins_sum(per_action: np.ndarray, lo: np.ndarray, hi: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(segments, points, replicates): Σ over each point's bins [lo, hi) per logged action of `(actions, segments, bins + 1, B)`."""
    out = np.zeros((per_action.shape[1], len(points), per_action.shape[3]))
    last = per_action.shape[2] - 1
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
    bins = binned.width // (actions * binned.outer)
    position = {(s, label): i for i, (s, label) in enumerate(zip(segmentation.tolist(), labels, strict=True))}
    glob_keys, glob_sums = [], []
    for s, (names, keys, sums) in enumerate(zip(binned.labels, binned.keys, binned.sums, strict=True)):
        where = np.asarray([position[(s, name)] for name in names], dtype=np.int64)
        glob_keys.append(where[keys // binned.width] * binned.width + keys % binned.width)
        glob_sums.append(sums)
    keys = np.concatenate(glob_keys)
    order = np.argsort(keys, kind="stable")
    keys, sums = keys[order], np.concatenate(glob_sums)[order]
    replicates, moments = sums.shape[1], sums.shape[2]
    per_segment = 2 * (bins + 1) * binned.outer * actions * replicates * moments * 8
    step = max(1, budget // per_segment)
    index = {m: i for i, m in enumerate(binned.moments)}
    for start in range(0, len(labels), step):
        stop = min(len(labels), start + step)
        a, b = np.searchsorted(keys, [start * binned.width, stop * binned.width])
        dense = np.zeros(((stop - start) * binned.width, replicates, moments))
        dense[keys[a:b] - start * binned.width] = sums[a:b]
        dense = dense.reshape(stop - start, bins, binned.outer, actions, replicates, moments).transpose(5, 2, 3, 0, 1, 4)
        cum = np.zeros((moments, binned.outer, actions, stop - start, bins + 1, replicates))
        np.cumsum(dense, axis=4, out=cum[:, :, :, :, 1:])
        yield Block(segments=slice(start, stop), cum=cum, moments=index)
