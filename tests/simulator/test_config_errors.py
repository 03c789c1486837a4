"""Config errors a user meets first: a typo anywhere gets "did you mean", every problem is reported in one
round, and no message dumps the config or a polars syntax tree (issue #14)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from simulator.config import load_config, parse_config
from simulator.errors import InvalidConfig

THRESHOLD = {"name": "stricter", "kind": "threshold", "score": "fraud_score", "block_above": 0.3}


def problems(table: dict[str, Any]) -> str:
    """The message `parse_config` raises for `table`."""
    with pytest.raises(InvalidConfig) as raised:
        parse_config(table, "c.toml")
    return str(raised.value)


def test_a_misspelt_table_suggests_the_table(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[segment]\nby = [["card_country"]]\n')
    with pytest.raises(InvalidConfig, match=re.escape("segment: unknown key 'segment'; known: baseline, data, "
                                                      "estimation, metrics, policies, review, segments, sweep, value_model "
                                                      "(did you mean 'segments'?)")):
        load_config(path)


def test_a_misspelt_key_suggests_the_key() -> None:
    assert "estimation.estimater: unknown key 'estimater'; known: bootstrap, confidence, dr_bins, dr_scores, " \
           "estimator, min_ess, population, seed (did you mean 'estimator'?)" in problems({"estimation": {"estimater": "ipw"}})


def test_a_misspelt_key_in_a_nested_table_suggests_the_key() -> None:
    message = problems({"segments": {"by": [["amount"]], "bands": {"amount": {"edgs": [10, 50]}}}})
    assert "segments.bands.amount.edgs: unknown key 'edgs'; known: edges (did you mean 'edges'?)" in message


def test_a_misspelt_key_in_an_array_of_tables_suggests_the_key() -> None:
    table = {"policies": [THRESHOLD], "review": {"candidate": "stricter", "guardrails": [
        {"metric": "net_value", "min_delta": 0, "scop": "overall"}]}}
    assert "review.guardrails[0].scop: unknown key 'scop'" in problems(table)
    assert "(did you mean 'scope'?)" in problems(table)


def test_a_misspelt_key_in_a_table_of_a_union_names_only_that_table() -> None:
    message = problems({"sweep": {"score": "fraud_score", "block_above": {"start": 0.1, "stp": 0.9, "num": 5}}})
    assert message.splitlines()[1:] == [
        "  - sweep.block_above.stop: missing; it is required",
        "  - sweep.block_above.stp: unknown key 'stp'; known: num, start, stop (did you mean 'stop'?)",
    ]  # not also "should be a valid list" and "should be a valid number"


def test_a_misspelt_policy_parameter_is_found_at_load() -> None:
    table = {"policies": [{**THRESHOLD, "blok_above": 0.3}]}
    assert "policies[0].blok_above: unknown parameter 'blok_above' for policy kind 'threshold'" in problems(table)


def test_an_unknown_policy_kind_is_found_at_load() -> None:
    assert "(did you mean 'threshold'?)" in problems({"policies": [{**THRESHOLD, "kind": "treshold"}]})


def test_every_problem_is_reported_at_once() -> None:
    table = {"segment": {}, "estimation": {"estimater": "ipw", "confidence": 2},
             "policies": [{**THRESHOLD, "kind": "treshold"}, {**THRESHOLD, "name": "other", "block_above": 1.5}]}
    lines = problems(table).splitlines()
    assert lines[0] == "c.toml: 5 problems:"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "  - estimation.confidence", "  - estimation.estimater", "  - policies[0].kind", "  - policies[1].block_above",
        "  - segment"]


def test_a_duplicate_policy_name_names_the_table_without_dumping_the_config() -> None:
    message = problems({"policies": [THRESHOLD, THRESHOLD], "value_model": {"margin_rate": 0.2}})
    assert message == "c.toml: policies[1].name: 'stricter' is already the name of policies[0]; policy names must be unique"


def test_a_reserved_policy_name_is_refused() -> None:
    assert "policies[0].name: 'production' names the logging policy's own baseline" in problems(
        {"policies": [{**THRESHOLD, "name": "production"}]})


def test_no_message_dumps_a_table() -> None:
    message = problems({"policies": [THRESHOLD], "baseline": {"policy": "nope"}, "review": {"candidate": "nope"}})
    assert "baseline.policy: 'nope' is neither" in message and "review.candidate: unknown policy 'nope'" in message
    assert "{" not in message and "value_model" not in message


def test_a_long_value_is_cut_in_messages() -> None:
    message = problems({"estimation": {"dr_scores": "x" * 500}})
    assert len(message) < 300 and "…" in message


def test_an_unsupported_sql_construct_is_named_not_dumped_as_a_syntax_tree() -> None:
    rule = {"when": "card_country = 'FR' COLLATE de", "action": "block"}
    message = problems({"policies": [{"name": "r", "kind": "rules", "fallback": "allow", "rules": [rule]}]})
    assert "policies[0].rules[0].when: cannot parse SQL" in message
    assert "the SQL construct COLLATE is not supported in a condition" in message
    assert "Ident" not in message and "Span" not in message
