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
rows are summed per cell with one matrix product (`W_cᵀ · M_c`, replicates ×
moments), and cell totals are combined with the policies' cell coefficients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
from scipy import sparse
from scipy import stats as sps

from segments.labels import ALL
from segments.codes import SegmentCodes
from simulator.stats.cells import Grouping
from simulator.stats.binned import BinnedReplicates
from simulator.plan.moments import DIRECT, INV_P, ONE, Cells, Term, coefficients, metric_terms, term_basis
from simulator.plan.compiled import Plan
from simulator.schema import TRANSACTION_ID

_LUT_BITS = 16
# Inverse CDF of Poisson(1) on a 2^16 grid of mid-points: weight = LUT[top 16 bits of a hash].
POISSON_LUT = sps.poisson.ppf((np.arange(1 << _LUT_BITS) + 0.5) / (1 << _LUT_BITS), 1.0).astype(np.float64)
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
    return POISSON_LUT[x.view(np.uint16)[:, :replicates]]


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
    moments = sorted({(term_basis(t, plan) or "", t.value) for t in terms})
    index = {m: i for i, m in enumerate(moments)}
    return moments, np.array([index[(term_basis(t, plan) or "", t.value)] for t in terms])


class CellSink(Protocol):
    """Takes the per-cell replicate sums of some (basis, value column) moments, block by block."""

    moments: tuple[tuple[str, str], ...]

    def add(self, lo: int, hi: int, totals: np.ndarray) -> None:
        """Cells `lo:hi`'s replicate sums, `(hi − lo, replicates, len(moments))`."""


def replicate_sums(
    batch: pl.DataFrame,
    plan: Plan,
    grouping: Grouping,
    cells: Cells,
    basis: dict[str, np.ndarray],
    values: dict[str, np.ndarray],
    finest: Grouping,
    segs: Sequence[SegmentCodes],
    sink: CellSink | None = None,
) -> Replicates:
    """Replicate totals per segment and term for one shard; `sink` also sees per-cell sums of its values."""
    terms = bootstrap_terms(plan)
    moments, moment_of = _term_layout(plan, terms)
    extra = () if sink is None else sink.moments
    moments += sorted(set(extra) - set(moments))
    extra_of = np.array([moments.index(m) for m in extra], dtype=np.int64)
    matrix = np.empty((batch.height, len(moments)))
    spread = np.sqrt(np.clip(1.0 - 1.0 / basis[INV_P], 0.0, None)) if plan.finite else None
    for j, (b, v) in enumerate(moments):
        matrix[:, j] = basis[b] * values[v]
        if spread is not None:  # design multiplier bootstrap: (b − 1)·√(1 − p)·z; observed totals are exact
            matrix[:, j] *= spread if b != ONE else 0.0
    weights = sorted({replace(t, value="one") for t in terms}, key=lambda t: t.key)  # terms differing only in value
    slot = {w: i for i, w in enumerate(weights)}
    weight_of = np.array([slot[replace(t, value="one")] for t in terms])
    coef = np.column_stack([coefficients(w, plan, cells) for w in weights])  # (cells, weights)
    keys = row_keys(batch[TRANSACTION_ID], plan.seed)
    multipliers = replicate_multipliers(plan.bootstrap)
    order = np.argsort(grouping.ids, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(grouping.ids, minlength=grouping.size))])
    cell_finest = finest.ids[grouping.first]  # non-decreasing: cells are numbered finest-segment first
    per_finest = np.zeros((finest.size, len(terms), plan.bootstrap))
    step = max(1, _BLOCK_ELEMENTS // (plan.bootstrap * len(moments)))
    for lo in range(0, grouping.size, step):
        hi = min(grouping.size, lo + step)
        rows = order[bounds[lo] : bounds[hi]]
        totals = _cell_totals(rows, bounds[lo : hi + 1] - bounds[lo], keys, multipliers, matrix, plan)
        if sink is not None:
            sink.add(lo, hi, totals[:, :, extra_of])
        runs = np.concatenate([np.flatnonzero(np.diff(cell_finest[lo:hi], prepend=-1)), [hi - lo]])
        for a, b in zip(runs[:-1], runs[1:], strict=True):
            # Σ over the finest segment's cells of coefficient × cell total, for every weight at once
            combined = (coef[lo + a : lo + b].T @ totals[a:b].reshape(b - a, -1)).reshape(len(weights), plan.bootstrap, -1)
            per_finest[cell_finest[lo + a]] += combined[weight_of, :, moment_of]
    return _by_segment(per_finest, finest, segs, terms)


_BLOCK_ELEMENTS = 1 << 24  # cells × replicates × moments held at once (128 MiB of float64)


def _cell_totals(
    rows: np.ndarray, bounds: np.ndarray, keys: np.ndarray, multipliers: np.ndarray, matrix: np.ndarray, plan: Plan
) -> np.ndarray:
    """(cells, B, moments) Σ over each cell's rows of replicate weight (minus 1 when centred) × moment."""
    weights = replicate_weights(keys[rows], multipliers, plan.bootstrap)  # (rows, B), drawn once per row
    if plan.finite:
        weights -= 1.0
    block = matrix[rows]
    out = np.empty((len(bounds) - 1, plan.bootstrap, matrix.shape[1]))
    for cell in range(len(bounds) - 1):
        a, b = bounds[cell], bounds[cell + 1]
        out[cell] = weights[a:b].T @ block[a:b]
    return out


def _by_segment(per_finest: np.ndarray, finest: Grouping, segs: Sequence[SegmentCodes], terms: tuple[Term, ...]) -> Replicates:
    flat = per_finest.reshape(finest.size, -1)
    labels: list[tuple[str, ...]] = [(ALL,)]
    values: list[np.ndarray] = [flat.sum(axis=0).reshape(1, *per_finest.shape[1:])]
    for seg in segs:
        code_of_finest = seg.codes[finest.first]
        present = np.unique(code_of_finest)
        order = sorted(present.tolist(), key=lambda c: seg.labels[c])
        slot = np.full(len(seg.labels), -1)
        slot[order] = np.arange(len(order))
        member = sparse.csr_matrix(
            (np.ones(finest.size), (slot[code_of_finest], np.arange(finest.size))), shape=(len(order), finest.size)
        )
        labels.append(tuple(seg.labels[c] for c in order))
        values.append(np.asarray(member @ flat).reshape(len(order), *per_finest.shape[1:]))
    return Replicates(terms=terms, labels=tuple(labels), values=tuple(values))
