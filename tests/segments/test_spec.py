"""`[segments]` validation: what a config may say, and the message when it may not."""

from __future__ import annotations

import re
import tomllib

import pytest
from pydantic import ValidationError

from segments import Bands, SegmentSpec, required_columns
from simulator.config import parse_config
from simulator.errors import InvalidConfig

SPEC_EXAMPLE = """
by = [["card_country"], ["card_country", "card_brand"], ["amount"], ["merchant_id"]]
top_k = { merchant_id = 20 }
[bands.amount]
edges = [0, 10, 50, 200, 1000]
"""


def test_the_spec_example_parses_into_tuples_and_floats() -> None:
    spec = SegmentSpec.model_validate(tomllib.loads(SPEC_EXAMPLE))
    assert spec.by == (("card_country",), ("card_country", "card_brand"), ("amount",), ("merchant_id",))
    assert spec.bands == {"amount": Bands(edges=(0.0, 10.0, 50.0, 200.0, 1000.0))}
    assert spec.top_k == {"merchant_id": 20}


def test_required_columns_are_every_column_named_in_by() -> None:
    spec = SegmentSpec(by=(("card_country",), ("card_country", "card_brand"), ("amount",)))
    assert required_columns(spec) == frozenset({"card_country", "card_brand", "amount"})
    assert required_columns(SegmentSpec()) == frozenset()


def test_a_spec_is_frozen() -> None:
    spec = SegmentSpec(by=(("card_country",),))
    with pytest.raises(ValidationError):
        spec.by = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"by": [["card_country"], []]}, "segments.by[1]: empty; name at least one column"),
        (
            {"by": [["card_country", "card_brand", "card_country"]]},
            "segments.by[0]: column 'card_country' named twice in ['card_country', 'card_brand', 'card_country']",
        ),
        (
            {"by": [["card_country"], ["card_country"]]},
            "segments.by[1]: ['card_country'] has the same columns as segments.by[0] ['card_country']; "
            "list each segmentation once",
        ),
        (
            {"by": [["card_country", "card_brand"], ["card_brand", "card_country"]]},
            "segments.by[1]: ['card_brand', 'card_country'] has the same columns as segments.by[0] "
            "['card_country', 'card_brand']; list each segmentation once",
        ),
        ({"by": [[""]]}, "segments.by[0]: empty column name"),
        (
            {"by": [["card_country"], ["a|b"]]},
            "segments.by[1]: column name 'a|b' cannot contain '|' or '=', which separate the parts of a "
            "segment label; rename it in [data.columns]",
        ),
        (
            {"by": [["a=b"]]},
            "segments.by[0]: column name 'a=b' cannot contain '|' or '='",
        ),
    ],
)
def test_bad_by_entries_are_rejected(table: dict, message: str) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        parse_config({"segments": table})


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        ([], "segments.bands.amount.edges: needs at least one edge, got []"),
        ([0, 10, 10, 50], "segments.bands.amount.edges: edges must be strictly increasing, got [0, 10, 10, 50]"),
        ([0, 50, 10], "segments.bands.amount.edges: edges must be strictly increasing, got [0, 50, 10]"),
        ([0, float("inf")], "segments.bands.amount.edges: edges must be finite, got [0, inf]"),
        ([float("nan")], "segments.bands.amount.edges: edges must be finite, got [NaN]"),
    ],
)
def test_bad_edges_are_rejected(edges: list[float], message: str) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        parse_config({"segments": {"by": [["amount"]], "bands": {"amount": {"edges": edges}}}})


def test_a_single_edge_makes_two_bands_and_is_valid() -> None:
    spec = SegmentSpec.model_validate({"by": [["amount"]], "bands": {"amount": {"edges": [0.5]}}})
    assert spec.bands["amount"].edges == (0.5,)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"by": [["card_country"]], "bands": {"amount": {"edges": [0, 10]}}},
            "segments.bands.amount: column 'amount' is in no segments.by entry, so its bands would do nothing; "
            'add ["amount"] to segments.by or remove this setting',
        ),
        (
            {"by": [["card_country"]], "top_k": {"merchant_id": 20}},
            "segments.top_k.merchant_id: column 'merchant_id' is in no segments.by entry, so its top_k would do "
            'nothing; add ["merchant_id"] to segments.by or remove this setting',
        ),
        ({"by": [["merchant_id"]], "top_k": {"merchant_id": 0}}, "segments.top_k.merchant_id: must be >= 1, got 0"),
        ({"by": [["merchant_id"]], "top_k": {"merchant_id": -3}}, "segments.top_k.merchant_id: must be >= 1, got -3"),
        (
            {"by": [["amount"]], "bands": {"amount": {"edges": [0, 10]}}, "top_k": {"amount": 5}},
            "segments.top_k.amount: column 'amount' is banded (segments.bands.amount); "
            "a column is either banded or top-k, not both",
        ),
    ],
)
def test_settings_that_would_do_nothing_or_contradict_are_rejected(table: dict, message: str) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        parse_config({"segments": table})


def test_every_segments_problem_is_reported_at_once() -> None:
    table = {"by": [[], ["card_country"], ["card_country"]], "bands": {"amount": {"edges": [3, 1]}},
             "top_k": {"merchant_id": 0}}
    with pytest.raises(InvalidConfig) as raised:
        parse_config({"segments": table}, "c.toml")
    assert str(raised.value).splitlines()[0] == "c.toml: 6 problems:"
    for path in ("segments.by[0]: empty", "segments.by[2]: ['card_country'] has the same columns",
                 "segments.bands.amount.edges: edges must be strictly increasing",
                 "segments.bands.amount: column 'amount' is in no segments.by entry",
                 "segments.top_k.merchant_id: must be >= 1", "segments.top_k.merchant_id: column 'merchant_id' is in no"):
        assert path in str(raised.value)


def test_a_column_used_only_inside_a_cross_may_be_banded_and_another_top_k() -> None:
    spec = SegmentSpec.model_validate(
        {
            "by": [["card_country", "amount", "merchant_id"]],
            "bands": {"amount": {"edges": [10]}},
            "top_k": {"merchant_id": 3},
        }
    )
    assert required_columns(spec) == frozenset({"card_country", "amount", "merchant_id"})


@pytest.mark.parametrize(
    "table",
    [
        {"by": ["card_country"]},  # a list of columns, not a list of segmentations
        {"by": "card_country"},
        {"by": [["merchant_id"]], "top_k": {"merchant_id": True}},
        {"by": [["merchant_id"]], "top_k": {"merchant_id": "20"}},
        {"by": [["amount"]], "bands": {"amount": {"edges": [True]}}},
        {"by": [["amount"]], "bands": {"amount": {"edges": [0], "labels": ["low"]}}},
        {"by": [["amount"]], "band": {"amount": {"edges": [0]}}},
    ],
)
def test_mistyped_or_unknown_keys_fail_type_validation(table: dict) -> None:
    with pytest.raises(ValidationError):
        SegmentSpec.model_validate(table)
