"""Planning on the driver: schema checks and the kept values of top-k columns."""

from __future__ import annotations

import pickle
import re

import polars as pl
import pytest

from segments import SegmentSpec, plan_segments
from simulator.errors import InvalidConfig, UnknownName
from tests.factories import make_transactions, write_parquet


def spec(**table: object) -> SegmentSpec:
    return SegmentSpec.model_validate(table)


def test_a_missing_column_is_an_unknown_name_with_the_known_columns_and_a_suggestion() -> None:
    data = pl.LazyFrame({"card_country": ["FR"], "amount": [1.0]})
    message = "unknown segment column 'card_contry'; known: amount, card_country (did you mean 'card_country'?)"
    with pytest.raises(UnknownName, match=re.escape(message)):
        plan_segments(spec(by=[["card_contry"]]), data)


def test_a_missing_column_inside_a_cross_is_found_on_a_parquet_scan(tmp_path) -> None:
    path = write_parquet(make_transactions(n=20), tmp_path / "data.parquet")
    with pytest.raises(UnknownName, match=re.escape("unknown segment column 'issuer'")):
        plan_segments(spec(by=[["card_country"], ["card_country", "issuer"]]), pl.scan_parquet(path))


def test_bands_on_a_non_numeric_column_are_rejected() -> None:
    data = pl.LazyFrame({"card_country": ["FR"]})
    message = (
        "segments.bands.card_country: column 'card_country' is String, not numeric; only numeric columns have bands"
    )
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        plan_segments(spec(by=[["card_country"]], bands={"card_country": {"edges": [1]}}), data)


def test_a_nested_column_cannot_be_a_segment_column() -> None:
    data = pl.LazyFrame({"tags": [["a", "b"]], "card_country": ["FR"]})
    message = "segments.by[1]: column 'tags' is List(String); a segment column holds one scalar per row"
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        plan_segments(spec(by=[["card_country"], ["card_country", "tags"]]), data)


def test_the_plan_carries_segmentations_in_config_order_and_band_edges() -> None:
    data = pl.LazyFrame({"card_country": ["FR"], "card_brand": ["visa"], "amount": [1]})
    plan = plan_segments(
        spec(by=[["card_brand", "card_country"], ["amount"]], bands={"amount": {"edges": [0, 10]}}), data
    )
    assert plan.segmentations == (("card_brand", "card_country"), ("amount",))
    assert dict(plan.bands) == {"amount": (0.0, 10.0)}
    assert dict(plan.top_values) == {}


def test_top_k_keeps_the_most_frequent_values_breaking_ties_by_value_and_ignoring_nulls() -> None:
    # counts: c=4, null=5, a=2, d=2, b=2, e=1 -> top 3: c, then the tie a/b/d broken by value: a, b
    values = ["c"] * 4 + [None] * 5 + ["d", "b", "a", "d", "b", "a", "e"]
    plan = plan_segments(spec(by=[["merchant_id"]], top_k={"merchant_id": 3}), pl.LazyFrame({"merchant_id": values}))
    assert plan.top_values == {"merchant_id": frozenset({"c", "a", "b"})}


def test_top_k_ties_between_integers_break_numerically_and_values_are_label_texts() -> None:
    data = pl.LazyFrame({"mcc": [10, 9, 10, 9, 100, 100, 7]})
    plan = plan_segments(spec(by=[["mcc"]], top_k={"mcc": 2}), data)
    assert plan.top_values == {"mcc": frozenset({"9", "10"})}  # 9 < 10 < 100 as numbers


def test_top_k_larger_than_the_distinct_values_keeps_them_all() -> None:
    data = pl.LazyFrame({"flag": [True, False, None], "m": ["x", "y", "x"]})
    plan = plan_segments(spec(by=[["flag"], ["m"]], top_k={"flag": 5, "m": 5}), data)
    assert plan.top_values == {"flag": frozenset({"true", "false"}), "m": frozenset({"x", "y"})}


def test_top_k_of_a_categorical_column_breaks_ties_by_text() -> None:
    data = pl.LazyFrame({"m": pl.Series(["zz", "aa", "zz", "aa", "mm"], dtype=pl.Categorical)})
    plan = plan_segments(spec(by=[["m"]], top_k={"m": 1}), data)
    assert plan.top_values == {"m": frozenset({"aa"})}


def test_a_plan_survives_pickling_for_shipping_to_workers() -> None:
    data = pl.LazyFrame({"m": ["a", "b", "a"], "amount": [1.0, 2.0, 3.0]})
    plan = plan_segments(spec(by=[["m"], ["amount"]], bands={"amount": {"edges": [2]}}, top_k={"m": 1}), data)
    assert pickle.loads(pickle.dumps(plan)) == plan
