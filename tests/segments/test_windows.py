"""Time windows of `created_at` (`[segments] time`): labels, UTC, crosses, validation and the size limit."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import polars as pl
import pytest

from segments import SegmentSpec, plan_segments, required_columns, segment_codes, segment_sort_key
from simulator.config import parse_config
from simulator.errors import InvalidConfig

# 2026-06-01 is a Monday. The stamps straddle a day, a week and a month boundary.
STAMPS = [
    datetime(2026, 5, 31, 23, 59, 59),  # Sunday: week of 2026-05-25, month 2026-05
    datetime(2026, 6, 1, 0, 0, 0),  # Monday: the first instant of the week of 2026-06-01
    datetime(2026, 6, 3, 12, 0, 0),  # Wednesday, same week
    datetime(2026, 6, 8, 0, 0, 1),  # next Monday
]


def frame(stamps: list[datetime | None], zone: str | None = "UTC", **columns: list[object]) -> pl.DataFrame:
    """Rows with `created_at` in `zone` (None: naive, which means UTC) and any other columns."""
    created = pl.Series("created_at", stamps, dtype=pl.Datetime("us"))
    if zone is not None:
        created = created.dt.replace_time_zone("UTC").dt.convert_time_zone(zone)
    return pl.DataFrame([created, *(pl.Series(name, values) for name, values in columns.items())])


def labels(data: pl.DataFrame, **table: object) -> list[str]:
    """Every row's label in the window segmentation (the last one)."""
    plan = plan_segments(SegmentSpec.model_validate(table), data.lazy())
    coded = segment_codes(data, plan)[-1]
    return [coded.labels[code] for code in coded.codes]


@pytest.mark.parametrize(
    ("unit", "expected"),
    [
        ("day", ["2026-05-31", "2026-06-01", "2026-06-03", "2026-06-08"]),
        ("week", ["2026-05-25", "2026-06-01", "2026-06-01", "2026-06-08"]),  # labelled by their Monday
        ("month", ["2026-05", "2026-06", "2026-06", "2026-06"]),
    ],
)
def test_windows_are_labelled_by_their_first_day(unit: str, expected: list[str]) -> None:
    assert labels(frame(STAMPS), time=unit) == [f"created_at_{unit}={text}" for text in expected]


@pytest.mark.parametrize("zone", [None, "America/New_York", "Asia/Tokyo"])
def test_windows_are_in_utc_whatever_the_zone_of_the_data(zone: str | None) -> None:
    # 2026-06-01 02:30 UTC is Sunday 22:30 in New York and Monday 11:30 in Tokyo: the UTC week either way
    data = frame([datetime(2026, 6, 1, 2, 30)], zone)
    assert labels(data, time="week") == ["created_at_week=2026-06-01"]
    assert labels(data, time="day") == ["created_at_day=2026-06-01"]


def test_a_missing_timestamp_is_the_null_window() -> None:
    assert labels(frame([STAMPS[0], None]), time="month") == ["created_at_month=2026-05", "created_at_month=null"]


def test_time_adds_one_segmentation_after_by_and_reads_created_at() -> None:
    spec = SegmentSpec.model_validate({"by": [["card_country"]], "time": "week"})
    assert spec.segmentations == (("card_country",), ("created_at_week",))
    assert required_columns(spec) == frozenset({"card_country", "created_at"})
    named = SegmentSpec.model_validate({"by": [["created_at_week"]], "time": "week"})
    assert named.segmentations == (("created_at_week",),)  # not twice


def test_a_window_crossed_with_a_column() -> None:
    data = frame(STAMPS, card_country=["FR", "FR", "DE", "FR"])
    table = {"by": [["created_at_week", "card_country"]], "time": "week"}
    plan = plan_segments(SegmentSpec.model_validate(table), data.lazy())
    assert plan.segmentations == (("created_at_week", "card_country"), ("created_at_week",))
    crossed = segment_codes(data, plan)[0]
    assert [crossed.labels[code] for code in crossed.codes] == [
        "created_at_week=2026-05-25|card_country=FR", "created_at_week=2026-06-01|card_country=FR",
        "created_at_week=2026-06-01|card_country=DE", "created_at_week=2026-06-08|card_country=FR",
    ]


def test_windows_sort_in_time_order() -> None:
    data = frame([datetime(2026, 1, 1) + timedelta(days=40 * i) for i in reversed(range(10))])  # Jan 1 ... Dec 27
    plan = plan_segments(SegmentSpec(time="month"), data.lazy())
    texts = segment_codes(data, plan)[0].labels
    ordered = sorted(texts, key=lambda label: segment_sort_key(label, plan))
    assert ordered == [f"created_at_month={m}" for m in
                       ["2026-01", "2026-02", "2026-03", "2026-05", "2026-06", "2026-07", "2026-08", "2026-10",
                        "2026-11", "2026-12"]]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"time": "hour"}, "segments.time: input should be 'day', 'week' or 'month', got 'hour'"),
        ({"by": [["created_at_week"]]},
         "segments.by[0]: 'created_at_week' is the week window of created_at; set segments.time = \"week\" to use it"),
        ({"by": [["created_at_day", "card_country"]], "time": "week"},
         "segments.by[0]: 'created_at_day' is the day window of created_at; segments.time = \"week\" makes "
         "'created_at_week'; name that one"),
        ({"time": "week", "top_k": {"created_at_week": 3}},
         "segments.top_k.created_at_week: 'created_at_week' is a time window; its windows are its values"),
    ],
)
def test_bad_time_settings_are_config_errors_naming_the_key(table: dict, message: str) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        parse_config({"segments": table})


def test_a_sweep_cannot_choose_thresholds_per_past_window() -> None:
    table = {"segments": {"time": "week"},
             "sweep": {"score": "fraud_score", "block_above": [0.5], "by": "created_at_week"}}
    with pytest.raises(InvalidConfig, match=re.escape("sweep.by: 'created_at_week' is a time window")):
        parse_config(table)


def test_too_many_windows_are_refused_with_a_longer_window_suggested() -> None:
    data = frame([datetime(2026, 1, 1) + timedelta(hours=12 * i) for i in range(100)])  # 50 days
    with pytest.raises(InvalidConfig) as raised:
        plan_segments(SegmentSpec(time="day", max_segments=20), data.lazy())
    message = str(raised.value)
    assert message.startswith("segments.time: ['created_at_day'] makes 50 segments, more than "
                              "segments.max_segments = 20")
    assert "choose a longer one" in message
    assert plan_segments(SegmentSpec(time="week", max_segments=20), data.lazy()).time == "week"


def test_a_cross_with_a_window_counts_the_pairs_in_the_data() -> None:
    # 50 days x 2 countries would be 100; each day has one country, so 50 segments occur
    data = frame([datetime(2026, 1, 1) + timedelta(hours=12 * i) for i in range(100)])
    data = data.with_columns(pl.col("created_at").dt.day().mod(2).cast(pl.String).alias("card_country"))
    table = {"by": [["created_at_day", "card_country"]], "time": "day", "max_segments": 60}
    assert plan_segments(SegmentSpec.model_validate(table), data.lazy()).time == "day"
    with pytest.raises(InvalidConfig, match=re.escape("segments.by[0]: ['created_at_day', 'card_country'] makes 50")):
        plan_segments(SegmentSpec.model_validate(table | {"max_segments": 49}), data.lazy())


def test_a_data_column_with_the_name_of_the_window_is_refused() -> None:
    data = frame(STAMPS[:1], created_at_week=["w22"])
    with pytest.raises(InvalidConfig, match=re.escape("segments.time: the data has a column 'created_at_week'")):
        plan_segments(SegmentSpec(time="week"), data.lazy())


def test_windows_need_a_timestamp() -> None:
    data = pl.DataFrame({"created_at": ["2026-06-01"]})
    with pytest.raises(InvalidConfig, match=re.escape("segments.time: windows of 'created_at' need a timestamp")):
        plan_segments(SegmentSpec(time="day"), data.lazy())
