"""Per-shard segment codes: known labels, and properties against a row-by-row reference.

The reference (`reference_labels`) labels one row at a time in plain Python,
straight from SPEC §9; the vectorised codes must agree with it on every row,
for whole frames and for any split of a frame into shards.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from datetime import date

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segments import SegmentPlan, SegmentSpec, plan_segments, segment_codes
from segments.labels import band_value, format_value
from simulator.errors import UnknownName
from tests.factories import make_transactions

EDGES = (0.0, 10.0, 50.0, 200.0, 1000.0)


def plan_of(by: Sequence[Sequence[str]], bands: dict | None = None, top: dict | None = None) -> SegmentPlan:
    """A plan built by hand, so a test fixes the kept top-k values itself."""
    return SegmentPlan(
        segmentations=tuple(tuple(columns) for columns in by),
        bands={column: tuple(edges) for column, edges in (bands or {}).items()},
        top_values={column: frozenset(values) for column, values in (top or {}).items()},
    )


def row_labels(frame: pl.DataFrame, plan: SegmentPlan) -> list[list[str]]:
    """Per segmentation, the label of every row."""
    return [[seg.labels[code] for code in seg.codes] for seg in segment_codes(frame, plan)]


def reference_value(value: object, column: str, plan: SegmentPlan) -> str:
    """One row's value text, computed the slow, obvious way."""
    if column in plan.bands:
        if value is None:
            return "null"
        if value != value:  # NaN
            return "NaN"
        edges = plan.bands[column]
        return band_value(edges, bisect.bisect_right(edges, value))
    text = format_value(value)
    kept = plan.top_values.get(column)
    if kept is None or value is None or text in kept:
        return text
    return "other"


def reference_labels(frame: pl.DataFrame, plan: SegmentPlan) -> list[list[str]]:
    rows = frame.to_dicts()
    return [
        ["|".join(f"{c}={reference_value(row[c], c, plan)}" for c in columns) for row in rows]
        for columns in plan.segmentations
    ]


def test_values_of_every_type_write_their_spec_text_and_null_is_its_own_segment() -> None:
    frame = pl.DataFrame(
        {
            "card_country": ["FR", None, "DE", "FR"],
            "mcc": [5411, 742, None, 5411],
            "recurring": [True, False, None, True],
            "rate": [0.5, 50.0, float("nan"), None],
            "day": [date(2026, 1, 2), date(2026, 1, 2), None, date(2026, 1, 3)],
        }
    )
    plan = plan_of([["card_country"], ["mcc"], ["recurring"], ["rate"], ["day"]])
    assert row_labels(frame, plan) == [
        ["card_country=FR", "card_country=null", "card_country=DE", "card_country=FR"],
        ["mcc=5411", "mcc=742", "mcc=null", "mcc=5411"],
        ["recurring=true", "recurring=false", "recurring=null", "recurring=true"],
        ["rate=0.5", "rate=50", "rate=NaN", "rate=null"],
        ["day=2026-01-02", "day=2026-01-02", "day=null", "day=2026-01-03"],
    ]


def test_codes_are_int32_compact_and_labels_unique() -> None:
    frame = pl.DataFrame({"card_country": ["FR", "DE", "FR", None], "amount": [5.0, 5.0, 2000.0, 7.0]})
    for seg in segment_codes(frame, plan_of([["card_country"], ["amount"]], bands={"amount": EDGES})):
        assert seg.codes.dtype == np.int32
        assert seg.codes.shape == (4,)
        assert sorted(set(seg.codes.tolist())) == list(range(len(seg.labels)))  # every label has rows
        assert len(set(seg.labels)) == len(seg.labels)


def test_a_cross_writes_its_parts_in_the_order_of_the_by_entry() -> None:
    frame = pl.DataFrame({"card_country": ["FR", "DE"], "card_brand": ["visa", None]})
    plan = plan_of([["card_brand", "card_country"], ["card_country", "card_brand"]])
    assert row_labels(frame, plan) == [
        ["card_brand=visa|card_country=FR", "card_brand=null|card_country=DE"],
        ["card_country=FR|card_brand=visa", "card_country=DE|card_brand=null"],
    ]


def test_bands_include_their_lower_edge_and_reach_below_the_first_and_above_the_last() -> None:
    amounts = [-5.0, 0.0, 9.99, 10.0, 50.0, 199.0, 200.0, 999.5, 1000.0, 1e9, float("nan"), None]
    frame = pl.DataFrame({"amount": amounts})
    assert row_labels(frame, plan_of([["amount"]], bands={"amount": EDGES}))[0] == [
        "amount=(-inf,0)",
        "amount=[0,10)",
        "amount=[0,10)",
        "amount=[10,50)",
        "amount=[50,200)",
        "amount=[50,200)",
        "amount=[200,1000)",
        "amount=[200,1000)",
        "amount=[1000,inf)",
        "amount=[1000,inf)",
        "amount=NaN",
        "amount=null",
    ]


@pytest.mark.parametrize("edges", [(0.0, 0.1, 0.2, 0.3), tuple(round(0.1 * i, 1) for i in range(12))])
def test_a_value_equal_to_an_edge_is_in_the_band_starting_there_without_floor_arithmetic(edges) -> None:
    # floor(0.3 / 0.1) == 2: arithmetic would put 0.3 in [0.2,0.3); comparing with the edges does not.
    # The second case has more edges than the compare loop handles and goes through a binary search.
    frame = pl.DataFrame({"x": [0.3, 0.1 + 0.2, 0.29999999999999993]})
    labels = row_labels(frame, plan_of([["x"]], bands={"x": edges}))[0]
    assert labels[0] == labels[1] == ("x=[0.3,inf)" if len(edges) == 4 else "x=[0.3,0.4)")
    assert labels[2] == "x=[0.2,0.3)"


def test_an_integer_column_can_be_banded() -> None:
    frame = pl.DataFrame({"items": pl.Series([0, 1, 2, 3, None], dtype=pl.Int16)})
    assert row_labels(frame, plan_of([["items"]], bands={"items": (1.0, 3.0)}))[0] == [
        "items=(-inf,1)",
        "items=[1,3)",
        "items=[1,3)",
        "items=[3,inf)",
        "items=null",
    ]


def test_top_k_folds_values_outside_the_kept_set_into_other_but_never_null() -> None:
    frame = pl.DataFrame({"merchant_id": ["m1", "m9", None, "m2", "m7"], "mcc": [1, 2, 3, None, 1]})
    plan = plan_of([["merchant_id"], ["mcc"]], top={"merchant_id": {"m1", "m2", "m3"}, "mcc": {"1"}})
    assert row_labels(frame, plan) == [
        ["merchant_id=m1", "merchant_id=other", "merchant_id=null", "merchant_id=m2", "merchant_id=other"],
        ["mcc=1", "mcc=other", "mcc=other", "mcc=null", "mcc=1"],
    ]


def test_top_k_values_are_chosen_on_the_whole_data_and_applied_per_shard() -> None:
    # counts: a=3, b=2 (tie with c broken by value), c=2, d=1
    whole = pl.DataFrame({"m": ["a", "a", "a", "b", "b", "c", "c", "d"]})
    plan = plan_segments(SegmentSpec.model_validate({"by": [["m"]], "top_k": {"m": 2}}), whole.lazy())
    shard = whole.slice(5, 3)  # c, c, d: no kept value in this shard
    assert row_labels(shard, plan) == [["m=other", "m=other", "m=other"]]


def test_categorical_and_enum_columns_are_labelled_by_text_also_when_top_k() -> None:
    categories = ["visa", "amex", "mastercard"]
    frame = pl.DataFrame(
        {
            "brand": pl.Series(["visa", None, "amex"], dtype=pl.Categorical),
            "kind": pl.Series(["amex", "visa", None], dtype=pl.Enum(categories)),
        }
    )
    plan = plan_of([["brand"], ["kind"], ["brand", "kind"]], top={"kind": {"visa"}})
    assert row_labels(frame, plan) == [
        ["brand=visa", "brand=null", "brand=amex"],
        ["kind=other", "kind=visa", "kind=null"],
        ["brand=visa|kind=other", "brand=null|kind=visa", "brand=amex|kind=null"],
    ]


def test_a_string_null_and_a_real_null_share_one_segment() -> None:
    # Both write `col=null`; the engine merges by label, so one segment per shard keeps labels unique.
    frame = pl.DataFrame({"c": ["null", None, "x"]})
    (seg,) = segment_codes(frame, plan_of([["c"]]))
    assert seg.labels == ("c=null", "c=x")
    assert seg.codes.tolist() == [0, 0, 1]


def test_many_distinct_strings_match_the_reference() -> None:
    # more values than the hash-bit table takes: exercises the hash-join fallback
    values = [f"merchant-{i % 3000:05d}" if i % 17 else None for i in range(9000)]
    frame = pl.DataFrame({"merchant_id": values, "wide": [i * 1_000_003 for i in range(9000)]})
    plan = plan_of([["merchant_id"], ["wide"]])
    assert row_labels(frame, plan) == reference_labels(frame, plan)


def test_an_empty_frame_has_no_segments() -> None:
    frame = pl.DataFrame(
        {"c": pl.Series([], dtype=pl.String), "n": pl.Series([], dtype=pl.Int64), "a": pl.Series([], dtype=pl.Float64)}
    )
    for seg in segment_codes(frame, plan_of([["c"], ["c", "n"], ["a"]], bands={"a": EDGES})):
        assert seg.codes.shape == (0,)
        assert seg.labels == ()


def test_a_shard_without_a_segment_column_is_an_unknown_name() -> None:
    with pytest.raises(UnknownName, match=re.escape("unknown segment column 'card_brand'; known: card_country")):
        segment_codes(pl.DataFrame({"card_country": ["FR"]}), plan_of([["card_country", "card_brand"]]))


def test_the_spec_example_labels_demo_transactions_like_the_reference() -> None:
    frame = make_transactions(n=2000, seed=11)
    spec = SegmentSpec.model_validate(
        {
            "by": [["card_country"], ["card_country", "card_brand"], ["amount"], ["merchant_id"]],
            "bands": {"amount": {"edges": list(EDGES)}},
            "top_k": {"merchant_id": 5},
        }
    )
    plan = plan_segments(spec, frame.lazy())
    assert row_labels(frame, plan) == reference_labels(frame, plan)


# --- properties -------------------------------------------------------------------------------

TEXTS = st.sampled_from(["FR", "DE", "GB", "visa", "", "a long string beyond twelve bytes", "é|x=y"])
NUMBERS = st.sampled_from([-1.0, 0.0, 0.5, 10.0, 49.99, 50.0, 1000.0, 1e12, float("nan"), float("inf")])


@st.composite
def frames(draw: st.DrawFn) -> pl.DataFrame:
    """Small frames with a string, an integer, a boolean and a float column, each with nulls."""
    n = draw(st.integers(min_value=0, max_value=40))
    column = lambda values: draw(st.lists(st.one_of(st.none(), values), min_size=n, max_size=n))  # noqa: E731
    return pl.DataFrame(
        {
            "s": pl.Series(column(st.one_of(TEXTS, st.text(max_size=20))), dtype=pl.String),
            "i": pl.Series(column(st.integers(-3, 3) | st.integers(-(2**62), 2**62)), dtype=pl.Int64),
            "b": pl.Series(column(st.booleans()), dtype=pl.Boolean),
            "x": pl.Series(column(NUMBERS), dtype=pl.Float64),
        }
    )


@st.composite
def plans(draw: st.DrawFn) -> SegmentPlan:
    """Random segmentations over the columns of `frames`, with `x` banded and sometimes top-k columns."""
    columns = ["s", "i", "b", "x"]
    single = st.sampled_from(columns).map(lambda column: (column,))
    cross = st.permutations(columns).map(lambda order: tuple(order[:2]))
    entries = draw(st.lists(single | cross, min_size=1, max_size=4, unique_by=frozenset))
    top = {}
    if draw(st.booleans()):
        top["s"] = frozenset(draw(st.lists(TEXTS, max_size=3)))
    if draw(st.booleans()):
        top["i"] = frozenset(str(v) for v in draw(st.lists(st.integers(-3, 3), max_size=3)))
    edges = draw(st.sampled_from([EDGES, (0.5,), tuple(float(e) for e in range(-2, 12))]))
    return SegmentPlan(segmentations=tuple(entries), bands={"x": edges}, top_values=top)


@settings(max_examples=75, deadline=None)
@given(frame=frames(), plan=plans())
def test_every_row_gets_exactly_the_reference_label_and_segments_partition_rows(frame, plan) -> None:
    segs = segment_codes(frame, plan)
    assert len(segs) == len(plan.segmentations)
    for seg in segs:
        assert seg.codes.dtype == np.int32 and seg.codes.shape == (frame.height,)
        assert len(set(seg.labels)) == len(seg.labels)
        assert sorted(set(seg.codes.tolist())) == list(range(len(seg.labels)))
    assert row_labels(frame, plan) == reference_labels(frame, plan)


@settings(max_examples=75, deadline=None)
@given(frame=frames(), plan=plans(), data=st.data())
def test_shards_label_their_rows_as_the_whole_frame_does(frame, plan, data) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, frame.height), max_size=4)))
    bounds = [0, *cuts, frame.height]
    shards = [frame.slice(low, high - low) for low, high in zip(bounds, bounds[1:])]
    per_shard = [row_labels(shard, plan) for shard in shards]
    recombined = [[label for shard in per_shard for label in shard[index]] for index in range(len(plan.segmentations))]
    assert recombined == row_labels(frame, plan)
