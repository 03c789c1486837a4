"""Seeded Poisson bootstrap whose replicates do not depend on sharding.

Row i's weight in replicate r is a Poisson(1) draw b_ir determined by a hash of
its `transaction_id`, the seed and r alone, so any split of the rows into shards
or workers yields the same replicate totals. A shard returns, per segment and
per term (`simulator.plan.moments.Term`), B replicate sums; the driver adds them
across shards and turns them into percentile intervals.

- superpopulation: the classic Poisson bootstrap, replicate total Σ_i b_ir z_i;
- finite (design-based, the default): a multiplier bootstrap of the logging
  draw, replicate total T̂ + Σ_i (b_ir − 1)·√(1 − p_i)·z_i, whose variance
  Σ z²(1 − p) is the design variance of `simulator.estimate.estimators`; the logging
  policy's observed totals do not vary.

Weights are drawn once per row and shared by every policy, segment and metric:
rows are summed per cell in pieces of a few rows (`M_pᵀ · W_p`, moments ×
replicates, one stacked product per piece size). Each chunk of piece sums is
summed per (segment, weight class) of every segmentation and weighted by the
classes' coefficients in one sparse product, so a shard holds its result
(Σ segments × terms × replicates) and one chunk, never the cross of the
segmentations (see `replicate_sums`).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Protocol
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
from scipy import sparse

from segments.labels import ALL
from segments.codes import SegmentCodes
from simulator.stats.cells import Grouping, group_rows
from simulator.stats.binned import BinnedReplicates
from simulator.plan.moments import DIRECT, INV_P, ONE, Cells, Term, coefficients, metric_terms, term_basis
from simulator.plan.compiled import Plan
from simulator.schema import TRANSACTION_ID

_LUT_BITS = 16


@cache
def poisson_lut() -> np.ndarray:
    """Inverse CDF of Poisson(1) on a 2^16 grid of mid-points: weight = LUT[top 16 bits of a hash].

    Built on first use: scipy.stats costs ~0.5 s to import, which every command would pay at start-up.
    """
    from scipy import stats

    return stats.poisson.ppf((np.arange(1 << _LUT_BITS) + 0.5) / (1 << _LUT_BITS), 1.0).astype(np.float64)

_MIX = np.uint64(0xBF58476D1CE4E5B9)


def row_keys(transaction_id: pl.Series, seed: int) -> np.ndarray:
    """A 64-bit key per row from its id and the seed (stable for a pinned polars version)."""
    return transaction_id.cast(pl.String).hash(seed=seed % (1 << 64)).to_numpy().astype(np.uint64, copy=False)


_PER_HASH = 64 // _LUT_BITS  # replicates drawn from one 64-bit hash


def replicate_multipliers(replicates: int) -> np.ndarray:
    """One odd 64-bit multiplier per group of four replicates, fixed for all time (not seed-dependent)."""
    groups = -(-replicates // _PER_HASH)
    raw = np.random.Generator(np.random.PCG64(20261128)).integers(0, 1 << 63, size=groups, dtype=np.uint64)
    return (raw << np.uint64(1)) | np.uint64(1)


def replicate_weights(keys: np.ndarray, multipliers: np.ndarray, replicates: int) -> np.ndarray:
    """`(n, replicates)` Poisson(1) weights, a pure function of each row's key and the replicate.

    Each (row, group) key is mixed once (multiply, xor-shift, multiply, xor-shift) and its
    four 16-bit quarters index the Poisson inverse-CDF table: four replicates per hash.
    """
    with np.errstate(over="ignore"):
        x = keys[:, None] * multipliers[None, :]
        x ^= x >> np.uint64(31)
        x *= _MIX
        x ^= x >> np.uint64(29)
    return poisson_lut()[x.view(np.uint16)[:, :replicates]]


def bootstrap_terms(plan: Plan) -> tuple[Term, ...]:
    """Every term any reported policy's estimate needs, in a fixed order (unsupported ones left out)."""
    terms = {t for p in plan.policies for _, ts in metric_terms(p.name, plan) for t in ts} | set(plan.strata_terms)
    return tuple(sorted((t for t in terms if term_basis(t, plan) not in (None, DIRECT)), key=lambda t: t.key))


@dataclass(frozen=True, slots=True)
class Replicates:
    """Replicate totals: for segmentation s (0 = ALL), `values[s][segment, term, replicate]`."""

    terms: tuple[Term, ...]
    labels: tuple[tuple[str, ...], ...]
    values: tuple[np.ndarray, ...]
    binned: BinnedReplicates | None = None  # sums per code of a coding, when the plan asks (`Plan.binned`)

    def merge(self, other: Replicates) -> Replicates:
        """Totals over both row sets, aligned by segment label."""
        labels, values = [], []
        for la, va, lb, vb in zip(self.labels, self.values, other.labels, other.values, strict=True):
            if la == lb:  # the same segments (most shards): one sum, no scatter through temporaries
                total = np.add(va, vb)
                total += 0.0  # as the scatter into zeros below: a sum of two −0.0 is +0.0 (the same to the bit)
                labels.append(la)
                values.append(total)
                continue
            union = tuple(sorted(set(la) | set(lb)))
            index = {label: i for i, label in enumerate(union)}
            total = np.zeros((len(union), *va.shape[1:]))
            total[[index[x] for x in la]] += va
            total[[index[x] for x in lb]] += vb
            labels.append(union)
            values.append(total)
        binned = None if self.binned is None or other.binned is None else self.binned.merge(other.binned)
        return Replicates(terms=self.terms, labels=tuple(labels), values=tuple(values), binned=binned)


def _term_layout(plan: Plan, terms: Sequence[Term]) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The distinct (basis, value column) moments of `terms`, sorted, and each term's moment index."""
    moments = sorted({(term_basis(t, plan) or "", t.value) for t in terms})
    index = {m: i for i, m in enumerate(moments)}
    return moments, np.array([index[(term_basis(t, plan) or "", t.value)] for t in terms], dtype=np.int64)


class CellSink(Protocol):
    """Takes per-cell replicate sums of some (basis, value column) moments, part by part."""

    moments: tuple[tuple[str, str], ...]

    def add(self, cells: np.ndarray, totals: np.ndarray) -> None:
        """Replicate sums `(len(cells), len(moments), replicates)` over some rows of each of `cells`.

        A cell's rows can come in several parts (ids repeat within and across calls); its parts add up.
        """


_BLOCK_ELEMENTS = 1 << 24  # piece totals (pieces × moments × replicates) held at once: 128 MiB of float64
_ROW_ELEMENTS = 1 << 23  # replicate weights (rows × replicates) drawn at once: 64 MiB of float64
# OpenBLAS runs a product on one thread while m·n·k ≤ 2^18. A threaded product hands off to a second
# thread, which on a loaded machine costs milliseconds: cell-sized products ran at 0.3-0.4 GFMA/s with
# two threads against 5.9 on one (2-core machine, load ~6). Rows are summed in pieces below the limit.
_SINGLE_THREAD_PRODUCT = 1 << 18
_MAX_PIECE = 64  # rows per piece at most, whatever the limit allows


def replicate_sums(
    batch: pl.DataFrame,
    plan: Plan,
    grouping: Grouping,
    cells: Cells,
    basis: dict[str, np.ndarray],
    values: dict[str, np.ndarray],
    segs: Sequence[SegmentCodes],
    sink: CellSink | None = None,
) -> Replicates:
    """Replicate totals per segment and term for one shard; `sink` also sees per-cell sums of its moments.

    Rows are summed per cell in pieces of a few rows (`_pieces`), a chunk of pieces at a time, and each
    chunk's sums go straight to every segmentation's segments (`_Target.add`). Nothing is kept per finest
    segment (the cross of the segmentations): memory is the result, Σ segments × terms × replicates
    floats, plus one chunk.
    """
    terms = bootstrap_terms(plan)
    moments, moment_of = _term_layout(plan, terms)
    extra = () if sink is None else sink.moments
    moments += sorted(set(extra) - set(moments))
    extra_of = np.array([moments.index(m) for m in extra], dtype=np.int64)
    matrix = _moment_matrix(plan, moments, basis, values, batch.height)
    weights = _WeightClasses.build(plan, terms, moment_of, len(moments), cells)
    targets = [_Target.build(np.zeros(grouping.size, dtype=np.int64), (ALL,), weights, plan.bootstrap)]
    targets = _nest(targets + [_Target.build(seg.codes[grouping.first], seg.labels, weights, plan.bootstrap) for seg in segs])
    sequence = sorted(range(len(targets)), key=lambda i: (-len(targets[i].labels), i))
    draw = _Draw(row_keys(batch[TRANSACTION_ID], plan.seed), replicate_multipliers(plan.bootstrap), plan)
    order = np.argsort(grouping.ids, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(grouping.ids, minlength=grouping.size))])
    largest = max(1, min(_MAX_PIECE, _SINGLE_THREAD_PRODUCT // (len(moments) * plan.bootstrap)))
    pieces = _pieces(bounds, largest)
    for chunk in _chunks(pieces, len(moments) * plan.bootstrap, plan.bootstrap):
        cell, totals = _piece_totals(pieces, chunk, order, matrix, draw)
        if sink is not None:
            sink.add(cell, totals[:, extra_of])
        _add_chunk(targets, sequence, cell, weights.of_cell[cell], totals)
    return Replicates(terms=terms, labels=tuple(t.labels for t in targets), values=tuple(t.values for t in targets))


def _moment_matrix(plan: Plan, moments: Sequence[tuple[str, str]], basis: dict[str, np.ndarray],
                   values: dict[str, np.ndarray], rows: int) -> np.ndarray:
    """(rows, moments): each row's basis × value column; in the design bootstrap, × √(1 − p) (0 for basis ONE)."""
    matrix = np.empty((rows, len(moments)))
    spread = np.sqrt(np.clip(1.0 - 1.0 / basis[INV_P], 0.0, None)) if plan.finite else None
    for j, (b, v) in enumerate(moments):
        matrix[:, j] = basis[b] * values[v]
        if spread is not None:  # design multiplier bootstrap: (b − 1)·√(1 − p)·z; observed totals are exact
            matrix[:, j] *= spread if b != ONE else 0.0
    return matrix


@dataclass(frozen=True, slots=True)
class _WeightClasses:
    """Cells grouped by their coefficients: a term's weight in cell c is `coefficient[class[c], term] · basis`.

    A cell is a finest segment × weight class (logged action, support, policy codes), yet few distinct
    coefficient rows occur (57 for the benchmark's 10 policies and 1,329 terms, against 20 k cells), so
    a segment's replicate totals are Σ over its classes of coefficient × (Σ of the class's cell sums).
    Per class, the non-zero coefficients as a compressed row: `start[k]:start[k + 1]` indexes `term`, `value`.
    """

    of_cell: np.ndarray  # (cells,) class of each cell
    count: int
    start: np.ndarray  # (count + 1,)
    term: np.ndarray  # term index of each non-zero coefficient
    value: np.ndarray
    moment_of: np.ndarray  # (terms,) each term's moment
    moments: int

    @staticmethod
    def build(plan: Plan, terms: Sequence[Term], moment_of: np.ndarray, moments: int, cells: Cells) -> _WeightClasses:
        """The classes of `cells`' coefficients for `terms` (terms differing only in value share a weight)."""
        weights = sorted({replace(t, value=ONE) for t in terms}, key=lambda t: t.key)
        slot = {w: i for i, w in enumerate(weights)}
        weight_of = np.array([slot[replace(t, value=ONE)] for t in terms], dtype=np.int64)
        # coefficients read only the logged action and the policy codes: compute them once per combination
        keys = [(cells.action, len(plan.actions))] + [(code, int(code.max(initial=0)) + 1) for code in cells.codes.values()]
        combination = group_rows(keys, len(cells.action))
        first = Cells(action=cells.action[combination.first], codes={k: v[combination.first] for k, v in cells.codes.items()})
        per_combination = np.column_stack([coefficients(w, plan, first) for w in weights])  # (combinations, weights)
        rows, of_combination = np.unique(per_combination, axis=0, return_inverse=True)
        of_cell = of_combination.reshape(-1)[combination.ids]
        per_term = rows[:, weight_of]
        nonzero = per_term != 0.0  # a 0 coefficient adds nothing: most are (deterministic policies, strata)
        start = np.concatenate([[0], np.cumsum(nonzero.sum(axis=1))])
        return _WeightClasses(of_cell=of_cell, count=len(rows), start=start, term=np.nonzero(nonzero)[1],
                              value=per_term[nonzero], moment_of=moment_of, moments=moments)

    def combination(self, pair_segment: np.ndarray, pair_class: np.ndarray, segments: int) -> sparse.csr_matrix:
        """`(segments × terms, pairs × moments)`: row (s, t) takes coefficient × the (pair, moment of t) sums of s's pairs."""
        counts = self.start[pair_class + 1] - self.start[pair_class]
        pair = np.repeat(np.arange(len(pair_class)), counts)
        at = np.repeat(self.start[pair_class] - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
        term = self.term[at]
        terms = len(self.moment_of)
        return sparse.csr_matrix((self.value[at], (pair_segment[pair] * terms + term, pair * self.moments + self.moment_of[term])),
                                 shape=(segments * terms, len(pair_class) * self.moments))


@dataclass(frozen=True, slots=True)
class _Target:
    """One segmentation's replicate totals, `values[segment, term, replicate]`, segments sorted by label.

    With a `parent` (another target whose segments each lie in one of this one's), the target sums
    the parent's per-(segment, class) sums of the chunk instead of the pieces: far fewer rows.
    """

    labels: tuple[str, ...]
    slot_of_cell: np.ndarray  # (cells,) the cell's segment, an index into labels
    weights: _WeightClasses
    values: np.ndarray
    parent: int | None = None  # index of the refining target
    slot_of_parent: np.ndarray | None = None  # (parent's segments,) the segment of this target each lies in

    @staticmethod
    def build(code_of_cell: np.ndarray, labels: Sequence[str], weights: _WeightClasses, replicates: int) -> _Target:
        present = sorted(np.unique(code_of_cell).tolist(), key=lambda c: labels[c])
        slot = np.full(len(labels), -1, dtype=np.int64)
        slot[present] = np.arange(len(present))
        values = np.zeros((len(present), len(weights.moment_of), replicates))
        return _Target(tuple(labels[c] for c in present), slot[code_of_cell], weights, values)

    def add(self, slot: np.ndarray, cls: np.ndarray, sums: np.ndarray) -> _PairSums:
        """Add sums `(n, moments, replicates)` of rows in segment `slot`, class `cls`: summed per pair, then weighted."""
        pairs, pair_of = np.unique(slot * self.weights.count + cls, return_inverse=True)
        member = sparse.csr_matrix((np.ones(len(slot)), (pair_of, np.arange(len(slot)))), shape=(len(pairs), len(slot)))
        per_pair = (member @ sums.reshape(len(slot), -1)).reshape(len(pairs), *sums.shape[1:])
        segments, pair_segment = np.unique(pairs // self.weights.count, return_inverse=True)
        combine = self.weights.combination(pair_segment, pairs % self.weights.count, len(segments))
        self._weigh(segments, combine, per_pair.reshape(-1, sums.shape[2]))
        return _PairSums(slot=pairs // self.weights.count, cls=pairs % self.weights.count, sums=per_pair)

    def _weigh(self, segments: np.ndarray, combine: sparse.csr_matrix, per_pair: np.ndarray) -> None:
        """Add `combine @ per_pair` to `values[segments]`, a block of segments at a time (≤ one chunk of floats)."""
        terms = self.values.shape[1]
        step = max(1, _BLOCK_ELEMENTS // (terms * self.values.shape[2]))
        for lo in range(0, len(segments), step):
            block = segments[lo : lo + step]
            part = (combine[lo * terms : (lo + len(block)) * terms] @ per_pair).reshape(len(block), *self.values.shape[1:])
            if block[-1] - block[0] + 1 == len(block):  # consecutive: add in place
                self.values[block[0] : block[-1] + 1] += part
            else:
                self.values[block] += part


@dataclass(frozen=True, slots=True)
class _PairSums:
    """A chunk's sums per (segment, class) of one target: what a coarser target sums instead of the pieces."""

    slot: np.ndarray
    cls: np.ndarray
    sums: np.ndarray  # (pairs, moments, replicates)


def _nest(targets: list[_Target]) -> list[_Target]:
    """Give each target the coarsest other target that refines it, if any (ALL: any segmentation).

    Only a target with more segments (or as many and an earlier index) can be a parent, so there are
    no cycles, and processing targets by segments, most first, sees every parent before its children.
    """
    out = []
    for i, target in enumerate(targets):
        size = len(target.labels)
        best: tuple[int, np.ndarray] | None = None
        for j, other in enumerate(targets):
            bigger = len(other.labels) > size or (len(other.labels) == size and j < i)
            if not bigger or (best is not None and len(other.labels) >= len(targets[best[0]].labels)):
                continue
            lookup = np.zeros(len(other.labels), dtype=np.int64)
            lookup[other.slot_of_cell] = target.slot_of_cell
            if np.array_equal(lookup[other.slot_of_cell], target.slot_of_cell):
                best = (j, lookup)
        out.append(target if best is None else replace(target, parent=best[0], slot_of_parent=best[1]))
    return out


def _add_chunk(targets: list[_Target], order: Sequence[int], cell: np.ndarray, cls: np.ndarray, totals: np.ndarray) -> None:
    """Add one chunk's piece sums to every target, in `order` (parents first), children from their parent's pairs."""
    kept: dict[int, _PairSums] = {}
    parents = {t.parent for t in targets if t.parent is not None}
    for i in order:
        target = targets[i]
        if target.parent is None:
            pairs = target.add(target.slot_of_cell[cell], cls, totals)
        else:
            source = kept[target.parent]
            assert target.slot_of_parent is not None  # set with the parent (internal invariant)
            pairs = target.add(target.slot_of_parent[source.slot], source.cls, source.sums)
        if i in parents:
            kept[i] = pairs


@dataclass(frozen=True, slots=True)
class _Draw:
    """Replicate weights of any rows of the shard (minus 1 in the design bootstrap, which centres them)."""

    keys: np.ndarray
    multipliers: np.ndarray
    plan: Plan

    def weights(self, rows: np.ndarray) -> np.ndarray:
        """`(len(rows), replicates)` weights of `rows` (indices into the shard)."""
        drawn = replicate_weights(self.keys[rows], self.multipliers, self.plan.bootstrap)
        if self.plan.finite:
            drawn -= 1.0
        return drawn


@dataclass(frozen=True, slots=True)
class _Pieces:
    """Every cell's rows cut into pieces of at most `largest` consecutive rows (of the rows sorted by cell)."""

    cell: np.ndarray
    start: np.ndarray  # position of the piece's first row in the sorted rows
    size: np.ndarray


def _pieces(bounds: np.ndarray, largest: int) -> _Pieces:
    """Pieces of the cells whose sorted rows are `bounds[c]:bounds[c + 1]`, in cell order."""
    sizes = np.diff(bounds)
    count = -(-sizes // largest)
    cell = np.repeat(np.arange(len(sizes)), count)
    within = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
    start = bounds[cell] + within * largest
    return _Pieces(cell=cell, start=start, size=np.minimum(largest, bounds[cell + 1] - start))


def _chunks(pieces: _Pieces, per_piece: int, per_row: int) -> list[slice]:
    """Consecutive pieces whose sums (`per_piece` floats each) and weights (`per_row` per row) fit the budgets."""
    rows = np.concatenate([[0], np.cumsum(pieces.size)])
    out, lo = [], 0
    most = max(1, _BLOCK_ELEMENTS // per_piece)
    while lo < len(pieces.cell):
        hi = min(lo + most, int(np.searchsorted(rows, rows[lo] + max(1, _ROW_ELEMENTS // per_row), side="right")) - 1)
        hi = max(hi, lo + 1)
        out.append(slice(lo, hi))
        lo = hi
    return out


def _piece_totals(pieces: _Pieces, chunk: slice, order: np.ndarray, matrix: np.ndarray, draw: _Draw
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The chunk's pieces' cells and `(pieces, moments, replicates)` sums of weight × moment over their rows.

    Pieces of one size make one stacked product (`matmul` of `(k, moments, size) @ (k, size, replicates)`);
    pieces come back sorted by size, so each size is one slice of the result.
    """
    by_size = np.argsort(pieces.size[chunk], kind="stable")
    size, start = pieces.size[chunk][by_size], pieces.start[chunk][by_size]
    totals = np.empty((len(size), matrix.shape[1], draw.plan.bootstrap))
    edges = np.flatnonzero(np.diff(size)) + 1
    for lo, hi in zip(np.concatenate([[0], edges]), np.concatenate([edges, [len(size)]]), strict=True):
        width = int(size[lo])
        rows = order[start[lo:hi, None] + np.arange(width)]  # (k, width) rows of the shard
        moment = matrix[rows]  # (k, width, moments)
        weight = draw.weights(rows.reshape(-1)).reshape(hi - lo, width, -1)
        if width == 1:  # an outer product: matmul's inner dimension 1 takes a slow path
            np.multiply(moment[:, 0, :, None], weight[:, 0, None, :], out=totals[lo:hi])
        else:
            np.matmul(moment.transpose(0, 2, 1), weight, out=totals[lo:hi])
    return pieces.cell[chunk][by_size], totals
