"""The ranking rule of several reviewed candidates, on hand-made verdicts and results rows."""

from __future__ import annotations

from typing import Any

import polars as pl

from simulator.decide.guardrails import FAIL, INCONCLUSIVE, PASS
from simulator.decide.ranking import rank_candidates, recommendation_note


def verdicts(*pairs: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame({"candidate": [c for c, _ in pairs], "verdict": [v for _, v in pairs]})


def overall(*rows: dict[str, Any]) -> pl.DataFrame:
    """Segment ALL rows of net_value: `policy`, the delta and its interval, a flag."""
    default = {"segment": "ALL", "metric": "net_value", "delta": 0.0, "delta_ci_low": -1.0, "delta_ci_high": 1.0,
               "flag": ""}
    return pl.DataFrame([default | row for row in rows])


def test_verdict_first_then_the_lower_end_then_config_order() -> None:
    ranked = rank_candidates(
        verdicts(("f", FAIL), ("i", INCONCLUSIVE), ("p_low", PASS), ("p_high", PASS), ("p_tie", PASS)),
        overall({"policy": "f", "delta_ci_low": 900.0}, {"policy": "i", "delta_ci_low": 500.0},
                # p_high has the smaller point estimate but the larger guaranteed value: it ranks first
                {"policy": "p_low", "delta": 300.0, "delta_ci_low": 10.0},
                {"policy": "p_high", "delta": 100.0, "delta_ci_low": 50.0},
                {"policy": "p_tie", "delta": 200.0, "delta_ci_low": 10.0}),
        metric="net_value", sense="maximize")
    assert ranked["candidate"].to_list() == ["p_high", "p_low", "p_tie", "i", "f"]
    assert ranked["rank"].to_list() == [1, 2, 3, 4, 5]
    assert "delta ≥ +50.00 (the lower end of its interval)" in ranked["reason"][0]


def test_a_flagged_estimate_has_no_bound_and_ranks_last_within_its_verdict() -> None:
    ranked = rank_candidates(verdicts(("flagged", PASS), ("clear", PASS)),
                             overall({"policy": "flagged", "delta_ci_low": 1e6, "flag": "few_events"},
                                     {"policy": "clear", "delta_ci_low": -5.0}), metric="net_value", sense="maximize")
    assert ranked["candidate"].to_list() == ["clear", "flagged"]
    assert ranked["bound"][1] is None and "flagged few_events" in ranked["reason"][1]


def test_minimize_uses_the_upper_end() -> None:
    rows = overall({"policy": "a", "metric": "fraud_loss", "delta_ci_low": -100.0, "delta_ci_high": 5.0},
                   {"policy": "b", "metric": "fraud_loss", "delta_ci_low": -50.0, "delta_ci_high": -1.0})
    ranked = rank_candidates(verdicts(("a", PASS), ("b", PASS)), rows, metric="fraud_loss", sense="minimize")
    assert ranked["candidate"].to_list() == ["b", "a"] and ranked["bound"].to_list() == [-1.0, 5.0]


def test_recommendation_note() -> None:
    rows = overall({"policy": "a"}, {"policy": "b"})
    assert "only candidate" in recommendation_note(rank_candidates(verdicts(("a", PASS), ("b", FAIL)), rows,
                                                                   metric="net_value", sense="maximize"))
    assert "ranks first of the 2" in recommendation_note(rank_candidates(verdicts(("a", PASS), ("b", PASS)), rows,
                                                                         metric="net_value", sense="maximize"))
    assert "none is recommended" in recommendation_note(rank_candidates(verdicts(("a", FAIL),), rows,
                                                                        metric="net_value", sense="maximize"))
