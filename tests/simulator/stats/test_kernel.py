"""The compiled shard kernel (simulator/stats/kernel.py) against direct numpy computations, to the bit.

Each compiled loop replaced numpy code that is kept here as the reference: grouping by
`np.unique` over the rows' key tuples, sums by `np.bincount` of the per-unit products,
example candidates by a sort of each group, the merge by a concatenation and a join. The
kernel promises the same numbers in the same summation order, so equality is exact.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import simulator.stats.shard as shard_module
from policies.threshold import choose
from simulator.config import parse_config
from simulator.plan.compiled import compile_plan
from simulator.plan.moments import design_column, linear_column, max_column, quadratic_column
from simulator.stats import kernel
from simulator.stats.cells import Grouping, group_rows
from simulator.stats.changes import top
from simulator.stats.shard import ROWS, Stats, _is_key, _RowSums, merge_all, shard_stats
from simulator.stats.units import RowValues, Units
from simulator.plan.moments import needed_sums
from tests.factories import make_transactions

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- grouping ------------------------------------------------------------------------------------------------------


def _reference_groups(components: list[tuple[np.ndarray, int]], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Ids in lexicographic order of the key tuples, and each group's earliest row (np.unique)."""
    if rows == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    stacked = np.stack([values.astype(np.int64) for values, _ in components], axis=1)
    _, first, ids = np.unique(stacked, axis=0, return_index=True, return_inverse=True)
    return ids.ravel(), first


@SETTINGS
@given(data=st.data(), rows=st.integers(0, 400), seed=st.integers(0, 2**32 - 1))
def test_group_rows_numbers_groups_in_the_order_of_their_key(data, rows: int, seed: int) -> None:
    """Narrow keys (a direct table), wide ones (the hash table) and keys wider than 2^62 (renumbered midway)."""
    rng = np.random.default_rng(seed)
    cardinalities = data.draw(st.lists(st.sampled_from([1, 2, 3, 7, 50, 1 << 20, 1 << 40]), min_size=1, max_size=6))
    dtypes = data.draw(st.lists(st.sampled_from([np.int8, np.int16, np.int32, np.int64, np.uint8, np.bool_]),
                                min_size=len(cardinalities), max_size=len(cardinalities)))
    components = []
    for cardinality, dtype in zip(cardinalities, dtypes, strict=True):
        limit = min(cardinality, np.iinfo(dtype).max + 1 if dtype != np.bool_ else 2)
        spread = rng.integers(0, limit, size=max(1, rows // 4))  # repeated values: groups of several rows
        components.append((rng.choice(spread, size=rows).astype(dtype), cardinality))
    grouping = group_rows(components, rows)
    ids, first = _reference_groups(components, rows)
    np.testing.assert_array_equal(grouping.ids, ids)
    np.testing.assert_array_equal(grouping.first, first)
    assert grouping.size == len(first)


@SETTINGS
@given(values=st.lists(st.sampled_from([0.0, -0.0, 1e-300, 0.05, 0.1, 1 / 3, 0.5, 1.0, 7.25, -2.0]), max_size=300))
def test_float_codes_are_the_ranks_of_the_distinct_values(values: list[float]) -> None:
    array = np.array(values, dtype=np.float64)
    codes, count = kernel.float_codes(array)
    distinct, inverse = np.unique(array, return_inverse=True)  # -0.0 and 0.0 are one value
    np.testing.assert_array_equal(codes, inverse.ravel())
    assert count == len(distinct)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 500), groups=st.integers(1, 40))
def test_moments_and_maxima_are_the_bincounts(seed: int, rows: int, groups: int) -> None:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, groups, rows)
    amount = rng.lognormal(3, 2, rows)
    n, s1, s2 = kernel.moments(ids, groups, amount)
    np.testing.assert_array_equal(n, np.bincount(ids, minlength=groups).astype(np.float64))
    np.testing.assert_array_equal(s1, np.bincount(ids, weights=amount, minlength=groups))
    np.testing.assert_array_equal(s2, np.bincount(ids, weights=amount * amount, minlength=groups))
    signed = amount - 30.0
    top_ = np.zeros(groups)
    np.maximum.at(top_, ids, signed)
    np.testing.assert_array_equal(kernel.group_max(ids, groups, signed), top_)


# --- the cell sums -------------------------------------------------------------------------------------------------


def _reference_sums(units: Units, cells: int, values: dict, basis: dict, needs, rows=None, amount=None) -> dict:
    """The numpy `_sums` the kernel replaced: one array expression and one np.bincount per sum."""
    n, s1, s2 = units.n, units.s1, units.s2
    per_unit = _RowSums(units, rows, amount)

    def per_cell(weights: np.ndarray) -> np.ndarray:
        return np.bincount(units.cell, weights=weights, minlength=cells)

    def flat(name: str) -> bool:
        return not values[name][1].any()

    def second(left: str, right: str) -> np.ndarray:
        if per_unit.has(left) or per_unit.has(right):
            return per_unit.product(left, right, values)
        (a0, a1), (b0, b1) = values[left], values[right]
        if flat(left) and flat(right):
            return a0 * b0 * n
        if flat(left):
            return a0 * b0 * n + (a0 * b1) * s1
        if flat(right):
            return a0 * b0 * n + (a1 * b0) * s1
        return a0 * b0 * n + (a0 * b1 + a1 * b0) * s1 + a1 * b1 * s2

    out = {ROWS: per_cell(n)}
    for b, v in needs.linear:
        if per_unit.has(v):
            out[linear_column(b, v)] = per_cell(basis[b] * per_unit.first(v))
        else:
            c0, c1 = values[v]
            out[linear_column(b, v)] = per_cell(basis[b] * (c0 * n + c1 * s1))
    for a, b, prod in needs.quadratic:
        out[quadratic_column(a, b, prod)] = per_cell(basis[a] * basis[b] * second(*prod.split("*")))
    unexplored = 1.0 - units.propensity
    for a, b, prod in needs.design:
        out[design_column(a, b, prod)] = per_cell(basis[a] * basis[b] * unexplored * second(*prod.split("*")))
    for b, weights in basis.items():
        top_ = np.zeros(cells)
        np.maximum.at(top_, units.cell, weights)
        out[max_column(b)] = top_
    return out


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 300), per_row=st.booleans(), row_values=st.booleans())
def test_cell_sums_equal_the_numpy_sums(seed: int, rows: int, per_row: bool, row_values: bool) -> None:
    """Flat and amount-linear values, row values (sums over the unit's rows), design sums, unsorted cells."""
    rng = np.random.default_rng(seed)
    units_count = rows if per_row else int(rng.integers(1, rows + 1))
    ids = rng.integers(0, units_count, rows)
    ids[:units_count] = np.arange(units_count)  # every unit has a row
    amount = rng.lognormal(3, 1.5, rows)
    n, s1, s2 = (np.bincount(ids, minlength=units_count).astype(float), np.bincount(ids, amount, minlength=units_count),
                 np.bincount(ids, amount * amount, minlength=units_count))
    cells = int(rng.integers(1, units_count + 1))
    cell = rng.integers(0, cells, units_count)  # not sorted: developed labels split units out of order
    first = np.array([np.flatnonzero(ids == u)[0] for u in range(units_count)])
    units = Units(grouping=Grouping(ids=ids, first=first, size=units_count), cell=cell, action=np.zeros(units_count, int),
                  pattern=np.zeros(units_count, int), propensity=rng.choice([0.05, 0.5, 0.9, 1.0], units_count),
                  logged_block=None, dm_bin=None, develop=None, n=n, s1=s1, s2=s2)
    names = ["one", "flat", "linear", "negative"]
    values = {"one": (np.ones(units_count), np.zeros(units_count)),
              "flat": (rng.choice([0.0, 1.0, 15.0], units_count), np.zeros(units_count)),
              "linear": (rng.normal(0, 1, units_count), rng.choice([0.0, 0.3, -0.021], units_count)),
              "negative": (-rng.random(units_count), -rng.random(units_count))}
    given_rows = None
    if row_values:
        given_rows = RowValues({"cost": rng.normal(2, 3, rows), "fee": rng.random(rows)})
        values |= {name: (np.full(units_count, np.nan), np.full(units_count, np.nan)) for name in given_rows.names}
        names += list(given_rows.names)
    basis = {"one": np.ones(units_count), "inv_p": 1.0 / units.propensity, "row": rng.random(units_count)}
    linear = tuple((b, v) for b in basis for v in names if rng.random() < 0.6)
    pairs = [(a, b, f"{x}*{y}") for a in basis for b in basis for x in names for y in names if rng.random() < 0.15]
    needs = SimpleNamespace(linear=linear, quadratic=tuple(pairs[::2]), design=tuple(pairs[1::2]))
    expected = _reference_sums(units, cells, values, basis, needs, given_rows, amount)
    actual = shard_module._sums(units, cells, values, basis, needs, given_rows, amount)
    assert list(actual) == list(expected)
    for column, sums in expected.items():
        np.testing.assert_array_equal(actual[column], sums, err_msg=column)


PER_ROW = {"name": "random", "kind": "python", "object": "tests.policies.example_user_policy:BlockShareByAuthScore",
           "params": {}}
PRICING = {"margin_rate": 0.3, "dispute_fee": 15.0, "values": {"cost": (
    "amount * authorized * CASE card_funding WHEN 'debit' THEN 0.012 WHEN 'prepaid' THEN 0.018 ELSE 0.021 END "
    "+ 0.30 * (1 - blocked) + 0.05 * challenged")}}
CONFIGS = {
    "per_row policy": {"policies": [PER_ROW]},
    "row values": {"value_model": PRICING},
    "developed labels": {"data": {"immature_labels": "develop"}},
    "bootstrap": {"estimation": {"bootstrap": 6, "seed": 3}, "policies": [PER_ROW]},
    "row values, per_row, excluded labels": {"value_model": PRICING, "policies": [PER_ROW],
                                             "data": {"immature_labels": "exclude"}},
}


@pytest.mark.parametrize("extra", CONFIGS.values(), ids=list(CONFIGS))
def test_a_shards_statistics_equal_those_of_the_numpy_sums(extra: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = make_transactions(n=3000, seed=11)
    policies = [{"name": "t", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.3, "block_above": 0.7},
                *extra.get("policies", [])]
    table = {"segments": {"by": [["card_country"], ["card_funding", "channel"]]}, **extra, "policies": policies}
    plan = compile_plan(parse_config(table), frame.lazy())
    needs = needed_sums(plan)
    actual = shard_stats(frame, plan, needs)
    monkeypatch.setattr(shard_module, "_sums", _reference_sums)
    expected = shard_stats(frame, plan, needs)
    assert_frame_equal(actual.cells, expected.cells, check_exact=True)
    if expected.replicates is not None:
        assert actual.replicates is not None
        for x, y in zip(actual.replicates.values, expected.replicates.values, strict=True):
            np.testing.assert_array_equal(x, y)


# --- decision-change examples ---------------------------------------------------------------------------------------


def _reference_candidates(base: np.ndarray, target: np.ndarray, segments: list[np.ndarray], labels: list[int],
                          amount: np.ndarray, keep: int, actions: int) -> np.ndarray:
    """Changed rows at or above their group's `keep`-th largest amount in some grouping, by sorting each group."""
    changed = np.flatnonzero(base != target)
    transition = base[changed] * actions + target[changed]
    keys = [transition] + [transition * size + codes[changed] for codes, size in zip(segments, labels, strict=True)]
    chosen = np.zeros(len(changed), dtype=bool)
    for key in keys:
        for group in np.unique(key):
            members = key == group
            values = np.sort(amount[changed][members])[::-1]
            threshold = values[keep - 1] if len(values) > keep else -np.inf
            chosen |= members & (amount[changed] >= threshold)
    return changed[chosen]


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 400), keep=st.integers(1, 6), ties=st.booleans())
def test_example_candidates_are_the_rows_at_or_above_each_groups_threshold(seed: int, rows: int, keep: int,
                                                                           ties: bool) -> None:
    rng = np.random.default_rng(seed)
    actions = 3
    base = rng.integers(0, actions, rows)
    codes = rng.integers(0, 4, rows).astype(np.int32)
    choice = rng.integers(0, actions, 4)
    amount = rng.choice([5.0, 10.0, 20.0], rows) if ties else rng.lognormal(3, 1, rows)
    labels = [int(x) for x in rng.integers(1, 6, int(rng.integers(0, 3)))]
    segments = [rng.integers(0, size, rows).astype(np.int32) for size in labels]
    matrix = np.stack(segments) if segments else np.zeros((0, rows), np.int32)
    other = rng.integers(0, 2, rows).astype(np.int32)  # a second policy, coded by two codes
    other_choice = rng.integers(0, actions, 2)
    choices = np.zeros((2, 4), dtype=np.int64)
    choices[0], choices[1, :2] = choice, other_choice
    bounds, found = kernel.example_candidates(base.astype(np.int8), np.stack([codes, other]), choices, matrix,
                                              np.array(labels, dtype=np.int64), amount, keep, actions)
    for (lo, hi), target in zip(bounds, (choice[codes], other_choice[other]), strict=True):
        expected = _reference_candidates(base, target, segments, labels, amount, keep, actions)
        np.testing.assert_array_equal(found[lo:hi], expected)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 200), keep=st.integers(1, 4))
def test_top_keeps_what_the_full_sort_keeps(seed: int, rows: int, keep: int) -> None:
    rng = np.random.default_rng(seed)
    frame = pl.DataFrame({"policy": rng.choice(["a", "b"], rows).tolist(), "segmentation": ["ALL"] * rows,
                          "segment": rng.choice(["x", "y", None], rows).tolist(), "from_action": ["allow"] * rows,
                          "to_action": rng.choice(["block", "challenge"], rows).tolist(),
                          "amount": rng.choice([1.0, 2.0, 3.0, 4.5], rows),
                          "transaction_id": [f"t{i}" for i in rng.permutation(rows)]},
                         schema_overrides={c: pl.String for c in ("policy", "segmentation", "segment", "from_action",
                                                                  "to_action", "transaction_id")})
    ranked = frame.sort(["amount", "transaction_id"], descending=[True, False], maintain_order=True)
    expected = ranked.filter(pl.int_range(pl.len()).over(["policy", "segmentation", "segment", "from_action",
                                                          "to_action"]) < keep)
    assert_frame_equal(top(frame, keep), expected, check_exact=True)


# --- policies and the merge -----------------------------------------------------------------------------------------


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(0, 300), per_row=st.booleans())
def test_threshold_ladder_is_the_numpy_one(seed: int, rows: int, per_row: bool) -> None:
    rng = np.random.default_rng(seed)
    actions = ("allow", "challenge", "block")
    score = rng.choice([0.0, 0.1, 0.3, 0.5, 0.7, 1.0], rows)
    shape = rows if per_row else ()
    ladder = {"challenge": rng.choice([0.1, 0.3, np.inf], shape), "block": rng.choice([0.3, 0.7, np.inf], shape)}
    below = rng.integers(0, 2, shape) if per_row else 0
    expected = np.broadcast_to(np.asarray(below, dtype=np.int32), score.shape).copy()
    best = np.full(score.shape, -np.inf)
    for action, cut in ladder.items():
        hit = (score >= cut) & (cut > best)
        expected = np.where(hit, actions.index(action), expected).astype(np.int32)
        best = np.where(hit, cut, best)
    np.testing.assert_array_equal(choose(score, ladder, below, actions), expected)


def _reference_merge(parts: list[Stats]) -> pl.DataFrame:
    """The merge before: concatenate, number the distinct keys in sorted order by a join, one bincount per sum."""
    parts = [p for p in parts if not p.cells.is_empty()]
    columns = parts[0].cells.columns
    frame = pl.concat([p.cells.select(columns) for p in parts])
    keys = [c for c in columns if _is_key(c)]
    groups = frame.select(keys).unique(maintain_order=True).sort(keys).with_row_index("_g")
    ids = frame.select(keys).join(groups, on=keys, how="left", maintain_order="left")["_g"].to_numpy()
    out = {k: groups[k] for k in keys}
    for column in columns:
        if _is_key(column):
            continue
        values = frame[column].to_numpy()
        if column.startswith("max|"):
            top_ = np.zeros(groups.height)
            np.maximum.at(top_, ids, values)
            out[column] = pl.Series(column, top_)
        else:
            out[column] = pl.Series(column, np.bincount(ids, weights=values, minlength=groups.height))
    return pl.DataFrame([out[c] for c in columns])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(1, 1199), max_size=5, unique=True))
def test_merge_equals_the_concatenation_and_join(cuts: list[int]) -> None:
    frame = make_transactions(n=1200, seed=5)
    config = parse_config({"segments": {"by": [["card_country"], ["card_funding", "channel"]]},
                           "policies": [{"name": "t", "kind": "threshold", "score": "fraud_score",
                                         "challenge_above": 0.3, "block_above": 0.7}, PER_ROW]})
    plan = compile_plan(config, frame.lazy())
    needs = needed_sums(plan)
    bounds = [0, *sorted(cuts), frame.height]
    parts = [shard_stats(frame[a:b], plan, needs) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    parts = [replace(p, examples=None) for p in parts]
    assert_frame_equal(merge_all(parts).cells, _reference_merge(parts), check_exact=True)


def test_the_install_steps_warm_up_runs_the_compiled_paths() -> None:
    """`python -m simulator.stats.warm` (Makefile): its own small log goes through shards and a merge."""
    from simulator.stats.warm import small_log, warm

    assert small_log(50).height == 50
    assert warm(rows=600) > 0
