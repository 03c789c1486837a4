"""Label texts (SPEC §9) and the order reports list segments in."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest

from segments import ALL, SegmentPlan, band_label, band_value, format_value, segment_sort_key

EDGES = (0.0, 10.0, 50.0, 200.0, 1000.0)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("FR", "FR"),
        ("", ""),
        ("a|b=c", "a|b=c"),  # strings as they are
        (5411, "5411"),
        (-7, "-7"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (50.0, "50"),
        (0.5, "0.5"),
        (-0.0, "0"),
        (1e-07, "1e-07"),
        (1e16, "1e+16"),
        (0.1 + 0.2, "0.30000000000000004"),  # round-trip, not rounded: distinct floats keep distinct texts
        (float("nan"), "NaN"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (Decimal("1.50"), "1.50"),
        (date(2026, 1, 31), "2026-01-31"),
    ],
)
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


@pytest.mark.parametrize(
    ("index", "text"),
    [(0, "(-inf,0)"), (1, "[0,10)"), (3, "[50,200)"), (4, "[200,1000)"), (5, "[1000,inf)")],
)
def test_band_values_are_half_open_intervals_with_compact_edges(index: int, text: str) -> None:
    assert band_value(EDGES, index) == text
    assert band_label("amount", EDGES, index) == f"amount={text}"


def test_fractional_edges_keep_their_digits() -> None:
    assert band_value((0.5, 2.25), 1) == "[0.5,2.25)"
    assert band_value((-1.5,), 0) == "(-inf,-1.5)"


def test_a_band_past_the_last_is_an_error() -> None:
    with pytest.raises(IndexError, match=re.escape("band 6 does not exist for 5 edges")):
        band_value(EDGES, 6)


PLAN = SegmentPlan(
    segmentations=(("card_country",), ("card_country", "card_brand"), ("amount",), ("merchant_id",), ("mcc",)),
    bands={"amount": EDGES},
    top_values={"merchant_id": frozenset({"m_001", "m_002"})},
)


def test_segments_sort_all_first_then_by_segmentation_bands_in_edge_order_values_then_null_then_other() -> None:
    expected = [
        ALL,
        "card_country=BR",
        "card_country=FR",
        "card_country=other",  # not a top-k column: "other" is an ordinary value here
        "card_country=null",
        "card_country=BR|card_brand=visa",
        "card_country=FR|card_brand=amex",
        "card_country=FR|card_brand=visa",
        "card_country=FR|card_brand=null",
        "amount=(-inf,0)",
        "amount=[0,10)",
        "amount=[10,50)",
        "amount=[200,1000)",
        "amount=[1000,inf)",
        "amount=NaN",
        "amount=null",
        "merchant_id=m_001",
        "merchant_id=m_002",
        "merchant_id=null",
        "merchant_id=other",
        "mcc=742",  # numbers numerically, before text
        "mcc=5411",
        "mcc=x1",
    ]
    shuffled = expected[::2][::-1] + expected[1::2]
    assert sorted(shuffled, key=lambda label: segment_sort_key(label, PLAN)) == expected


def test_a_cross_label_is_read_as_the_cross_not_as_a_value_with_a_bar() -> None:
    single = segment_sort_key("card_country=FR", PLAN)
    cross = segment_sort_key("card_country=FR|card_brand=visa", PLAN)
    assert (single[0], cross[0]) == (1, 2)


def test_a_label_no_segmentation_writes_is_an_error() -> None:
    with pytest.raises(ValueError, match=re.escape("segment label 'card_brand=visa' matches no segmentation")):
        segment_sort_key("card_brand=visa", PLAN)
