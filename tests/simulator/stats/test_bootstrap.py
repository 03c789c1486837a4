"""Replicate totals of the Poisson bootstrap (`simulator.stats.bootstrap`): definition, memory, chunking.

The shard here has three segmentations whose cross has almost one finest segment per row, the case
where keeping totals per finest segment (the earlier layout) needed the cross × terms × replicates.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import polars as pl
import pytest

import simulator.stats.bootstrap as bootstrap
import simulator.stats.shard as shard
from segments.codes import SegmentCodes
from segments.labels import ALL
from simulator.config import parse_config
from simulator.plan.compiled import Plan, compile_plan
from simulator.plan.moments import INV_P, ONE, Cells, coefficients, needed_sums, term_basis
from simulator.schema import TRANSACTION_ID
from simulator.stats.bootstrap import Replicates, bootstrap_terms, replicate_multipliers, replicate_weights, row_keys
from simulator.stats.cells import Grouping, group_rows
from tests.factories import make_transactions

ROWS = 3000
_rng = np.random.default_rng(11)
FRAME = make_transactions(
    n=ROWS, seed=7,
    card_country=[f"C{i:02d}" for i in _rng.integers(0, 40, ROWS)],  # 40 × 30 × 12 segments: ~2,900 finest
    mcc=[f"{5000 + i}" for i in _rng.integers(0, 30, ROWS)],
)
EDGES = [0, 5, 10, 15, 20, 30, 40, 60, 80, 120, 200, 500]
POLICIES = [
    {"name": "strict", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.05, "block_above": 0.3},
    {"name": "explore", "kind": "epsilon", "epsilon": 0.1,
     "base": {"kind": "threshold", "score": "fraud_score", "block_above": 0.5}},
]


def _plan(population: str = "superpopulation", replicates: int = 12) -> Plan:
    config = parse_config({
        "segments": {"by": [["card_country"], ["mcc"], ["amount"]], "bands": {"amount": {"edges": EDGES}}},
        "estimation": {"bootstrap": replicates, "seed": 4, "population": population},
        "policies": POLICIES,
    })
    return compile_plan(config, FRAME.lazy())


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What `shard_stats` hands to `replicate_sums` for one shard."""

    batch: pl.DataFrame
    plan: Plan
    grouping: Grouping
    cells: Cells
    basis: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    segs: Sequence[SegmentCodes]

    def run(self) -> Replicates:
        return bootstrap.replicate_sums(self.batch, self.plan, self.grouping, self.cells, self.basis, self.values, self.segs)


def _inputs(plan: Plan, monkeypatch: pytest.MonkeyPatch) -> _Inputs:
    """`replicate_sums`' arguments for FRAME, caught on their way from `shard_stats`."""
    caught: list[_Inputs] = []

    def catch(*args: object, sink: object = None) -> Replicates:
        caught.append(_Inputs(*args))  # type: ignore[arg-type]
        return bootstrap.replicate_sums(*args, sink=sink)  # type: ignore[arg-type]

    monkeypatch.setattr(shard, "replicate_sums", catch)
    shard.shard_stats(FRAME, plan, needed_sums(plan))
    monkeypatch.undo()
    return caught[0]


def _per_row(inputs: _Inputs) -> list[np.ndarray]:
    """The definition, row by row: Σ over a segment's rows of (weight − 1 if finite) × coefficient × basis × value."""
    plan, batch = inputs.plan, inputs.batch
    weights = replicate_weights(row_keys(batch[TRANSACTION_ID], plan.seed), replicate_multipliers(plan.bootstrap),
                                plan.bootstrap)
    if plan.finite:
        weights -= 1.0
    spread = np.sqrt(np.clip(1.0 - 1.0 / inputs.basis[INV_P], 0.0, None))
    columns = []
    for term in bootstrap_terms(plan):
        coefficient = coefficients(replace(term, value=ONE), plan, inputs.cells)[inputs.grouping.ids]
        basis = term_basis(term, plan)
        column = coefficient * inputs.basis[basis] * inputs.values[term.value]
        if plan.finite:
            column = column * (spread if basis != ONE else 0.0)
        columns.append(column)
    per_term = np.column_stack(columns)  # (rows, terms)
    out = []
    for codes, labels in [(np.zeros(batch.height, dtype=np.int64), (ALL,))] + [(s.codes, s.labels) for s in inputs.segs]:
        present = sorted(np.unique(codes).tolist(), key=lambda c: labels[c])
        out.append(np.stack([per_term[codes == c].T @ weights[codes == c] for c in present]))
    return out


def _assert_close(got: Replicates, expected: Sequence[np.ndarray]) -> None:
    for values, reference in zip(got.values, expected, strict=True):
        assert values.shape == reference.shape
        # sums are reassociated (cells, pieces, pairs): rounding relative to the largest total
        np.testing.assert_allclose(values, reference, rtol=0, atol=1e-12 * np.abs(reference).max())


@pytest.mark.parametrize("population", ["superpopulation", "finite"])
def test_replicate_totals_equal_the_per_row_definition(population: str, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = _inputs(_plan(population), monkeypatch)
    got = inputs.run()
    assert [len(labels) for labels in got.labels] == [1] + [len(np.unique(s.codes)) for s in inputs.segs]
    _assert_close(got, _per_row(inputs))


@pytest.mark.parametrize(("block", "rows", "piece"), [(1 << 12, 1 << 8, 3), (1 << 14, 1 << 20, 1), (1 << 30, 1 << 10, 64)])
def test_chunks_and_pieces_do_not_change_the_totals(block: int, rows: int, piece: int,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Cells cut into pieces of a few rows, pieces into chunks that split cells: the same totals."""
    inputs = _inputs(_plan("finite"), monkeypatch)
    whole = inputs.run()
    monkeypatch.setattr(bootstrap, "_BLOCK_ELEMENTS", block)
    monkeypatch.setattr(bootstrap, "_ROW_ELEMENTS", rows)
    monkeypatch.setattr(bootstrap, "_MAX_PIECE", piece)
    chunked = inputs.run()
    assert chunked.labels == whole.labels
    _assert_close(chunked, whole.values)


def test_memory_follows_the_segments_not_their_cross(monkeypatch: pytest.MonkeyPatch) -> None:
    """Peak allocation stays near the result (Σ segments × terms × B), far below the cross's finest segments × terms × B."""
    inputs = _inputs(_plan(replicates=40), monkeypatch)
    monkeypatch.setattr(bootstrap, "_BLOCK_ELEMENTS", 1 << 16)
    monkeypatch.setattr(bootstrap, "_ROW_ELEMENTS", 1 << 14)
    first = inputs.grouping.first
    finest = group_rows([(s.codes[first], len(s.labels)) for s in inputs.segs], len(first)).size
    terms, replicates = len(bootstrap_terms(inputs.plan)), inputs.plan.bootstrap
    segments = 1 + sum(len(s.labels) for s in inputs.segs)
    result_bytes = segments * terms * replicates * 8
    per_finest_bytes = finest * terms * replicates * 8
    tracemalloc.start()
    try:
        got = inputs.run()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(v.nbytes for v in got.values) == result_bytes
    # the result, the (rows × moments) matrix, the coefficients and a few chunks of 2^16 floats
    bound = 2 * result_bytes + 4 * ROWS * 64 * 8 + (16 << 20)
    assert per_finest_bytes > 4 * bound, "the case must tell per-segment from per-finest accumulation"
    assert peak < bound, f"peak {peak / 2**20:.1f} MiB; result {result_bytes / 2**20:.1f} MiB"


def test_merging_replicates_of_the_same_segments_matches_the_aligned_sum_to_the_bit() -> None:
    """Two shards with the same segments add directly (no scatter through temporaries): the same bits as aligning
    both into zeros, −0.0 included."""
    rng = np.random.default_rng(5)
    a, b, c = (rng.normal(size=(4, 3, 6)) for _ in range(3))
    a[0, 0, 0] = b[0, 0, 0] = -0.0
    same = (("DE", "FR", "GB", "US"),)
    other = (("BR", "FR", "GB", "US"),)
    merged = Replicates(terms=(), labels=same, values=(a,)).merge(Replicates(terms=(), labels=same, values=(b,)))
    aligned = np.zeros_like(a)
    aligned[[0, 1, 2, 3]] += a
    aligned[[0, 1, 2, 3]] += b
    assert merged.labels == same
    assert np.array_equal(merged.values[0].view(np.int64), aligned.view(np.int64))
    union = merged.merge(Replicates(terms=(), labels=other, values=(c,)))  # different segments: aligned by label
    assert union.labels == (("BR", "DE", "FR", "GB", "US"),)
    expected = np.zeros((5, 3, 6))
    expected[[1, 2, 3, 4]] += aligned
    expected[[0, 2, 3, 4]] += c
    assert np.array_equal(union.values[0], expected)
