"""Segmentations that cannot explode: more than `[segments] max_segments` segments is refused on the driver,
before any shard runs, with a way to make the segmentation coarser."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from segments import SegmentSpec, plan_segments
from simulator.errors import InvalidConfig

ROWS = 600


def frame() -> pl.LazyFrame:
    """600 rows: 600 ids and instants, 300 amounts, 30 merchants, and two columns whose cross has 20 values."""
    index = pl.int_range(ROWS, eager=True)
    return pl.DataFrame({
        "transaction_id": index.cast(pl.String),
        "created_at": [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=i) for i in range(ROWS)],
        "amount": (index % 300).cast(pl.Float64),
        "merchant_id": (index % 30).cast(pl.String),
        "region": (index % 20).cast(pl.String),
        "country": (index % 20).cast(pl.String) + "x",  # one country per region: the cross has 20 segments
    }).lazy()


def spec(max_segments: int = 100, **table: object) -> SegmentSpec:
    return SegmentSpec.model_validate({"max_segments": max_segments, **table})


def refusal(segments: SegmentSpec) -> str:
    with pytest.raises(InvalidConfig) as raised:
        plan_segments(segments, frame())
    return str(raised.value)


def test_an_id_column_is_refused_with_top_k_suggested() -> None:
    message = refusal(spec(by=[["merchant_id"], ["transaction_id"]]))
    assert message.startswith(f"segments.by[1]: ['transaction_id'] makes {ROWS} segments, more than "
                              "segments.max_segments = 100")
    assert "top_k = { transaction_id = 20 }" in message and "raise max_segments" in message


def test_a_timestamp_column_is_refused_with_a_coarser_column_suggested() -> None:
    message = refusal(spec(by=[["created_at"]]))
    assert f"['created_at'] makes {ROWS} segments" in message
    assert "'created_at' is a timestamp, with a segment per instant: segment by windows of it (segments.time" in message


def test_a_numeric_column_is_refused_with_bands_suggested() -> None:
    message = refusal(spec(by=[["amount"]]))
    assert re.search(r"makes 300 segments.*cut 'amount' into bands \(\[segments\.bands\.amount\] edges", message)


def test_a_cross_is_refused_by_the_segments_it_makes_in_the_data() -> None:
    message = refusal(spec(max_segments=50, by=[["merchant_id", "region"]]))  # 600 at most; 60 = lcm(30, 20) occur
    assert "['merchant_id', 'region'] makes 60 segments, more than segments.max_segments = 50" in message
    assert "('merchant_id' alone has 30 values); keep the largest values of 'merchant_id'" in message


def test_a_cross_whose_columns_are_wide_but_whose_pairs_are_few_passes() -> None:
    plan = plan_segments(spec(max_segments=50, by=[["region", "country"]]), frame())  # bound 400, 20 occur
    assert plan.segmentations == (("region", "country"),)


def test_bands_and_top_k_make_a_wide_column_usable() -> None:
    table = {"by": [["amount"], ["transaction_id"]], "bands": {"amount": {"edges": [10, 100]}},
             "top_k": {"transaction_id": 5}}
    plan = plan_segments(spec(**table), frame())
    assert plan.bands == {"amount": (10.0, 100.0)} and len(plan.top_values["transaction_id"]) == 5


def test_max_segments_is_configurable() -> None:
    plan = plan_segments(spec(max_segments=1_000, by=[["transaction_id"]]), frame())
    assert plan.segmentations == (("transaction_id",),)


def test_the_default_limit_is_a_few_thousand() -> None:
    assert SegmentSpec().max_segments == 5_000
    limit, by = SegmentSpec().max_segments, {"by": [["merchant_id"]]}
    ids = pl.DataFrame({"merchant_id": pl.int_range(limit + 1, eager=True).cast(pl.String)}).lazy()
    assert plan_segments(SegmentSpec.model_validate(by), ids.head(limit)).segmentations == (("merchant_id",),)
    with pytest.raises(InvalidConfig, match=f"makes {limit + 1:,} segments, more than segments.max_segments = {limit:,}"):
        plan_segments(SegmentSpec.model_validate(by), ids)
