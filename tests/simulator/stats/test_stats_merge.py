"""Merge laws of shard statistics (hypothesis): any split and order gives the one-pass result."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.config import parse_config
from simulator.plan.moments import needed_sums
from simulator.plan.compiled import compile_plan
from simulator.stats.shard import Stats, shard_stats
from tests.factories import make_transactions

FRAME = make_transactions(n=600, seed=4)
CONFIG = parse_config({
    "segments": {"by": [["card_country"], ["card_funding", "channel"]]},
    "estimation": {"bootstrap": 8, "seed": 1},
    "policies": [{"name": "t", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.3, "block_above": 0.7}],
})
PLAN = compile_plan(CONFIG, FRAME.lazy())
NEEDS = needed_sums(PLAN)
WHOLE = shard_stats(FRAME, PLAN, NEEDS)


def _same(a: Stats, b: Stats) -> None:
    keys = [c for c in a.cells.columns if c.startswith(("seg|", "code|")) or c in ("action", "support")]
    left, right = a.cells.sort(keys), b.cells.sort(keys)
    assert left.select(keys).equals(right.select(keys))
    for column in left.columns:
        if column not in keys:
            np.testing.assert_allclose(left[column].to_numpy(), right[column].to_numpy(), rtol=1e-10, atol=1e-9)
    assert a.rows == b.rows
    for x, y in zip(a.replicates.values, b.replicates.values, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-9)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(1, FRAME.height - 1), max_size=4, unique=True), order=st.randoms(use_true_random=False))
def test_any_split_in_any_order_merges_to_the_whole(cuts: list[int], order) -> None:
    bounds = [0, *sorted(cuts), FRAME.height]
    parts = [shard_stats(FRAME[a:b], PLAN, NEEDS) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    order.shuffle(parts)
    merged = Stats.empty()
    for part in parts:
        merged = merged.merge(part)
    _same(merged, WHOLE)


def test_empty_is_the_identity() -> None:
    _same(Stats.empty().merge(WHOLE), WHOLE)
    _same(WHOLE.merge(Stats.empty()), WHOLE)


def test_merge_is_associative() -> None:
    a, b, c = (shard_stats(FRAME[i:j], PLAN, NEEDS) for i, j in ((0, 200), (200, 350), (350, 600)))
    _same(a.merge(b).merge(c), a.merge(b.merge(c)))
