"""Any action set (issue #15, SPEC §3–4): metrics that need a missing action are left out, the rest are estimated."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from simulator import parse_config, run_frame
from simulator.errors import InvalidConfig
from simulator.model.value import BLOCK_QUALITY, METRIC_NAMES
from tests.factories import make_transactions

RENAMED = {"allow": "accept", "challenge": "step_up", "block": "decline"}
ACTIONS = ["accept", "step_up", "decline"]


def renamed_log(n: int = 600, seed: int = 5) -> pl.DataFrame:
    """The factory's log with other action names: nothing in it is called allow or block.

    `block` is the canonical name of the action without an outcome (a file calling it "decline" maps it with
    [data.action_values]); an action set without it records an outcome on every row: a decline is not authorized.
    """
    frame = make_transactions(n=n, seed=seed)
    probs = {f"logging_prob_{old}": f"logging_prob_{new}" for old, new in RENAMED.items()}
    return frame.with_columns(pl.col("action").replace_strict(RENAMED), pl.col("authorized").fill_null(False)).rename(probs)


def test_an_action_set_without_allow_or_block_reports_every_metric_it_defines() -> None:
    config = parse_config({
        "data": {"actions": ACTIONS},
        "policies": [{"name": "cautious", "kind": "rules", "fallback": "accept",
                      "rules": [{"when": "fraud_score >= 0.8", "action": "decline"},
                                {"when": "fraud_score >= 0.4", "action": "step_up"}]}],
    })
    results = run_frame(config, renamed_log()).results
    reported = set(results["metric"].unique().to_list())
    left_out = BLOCK_QUALITY | {"blocked_count", "block_rate", "challenged_count"}
    assert reported == set(METRIC_NAMES) - left_out  # left out, not reported as 0
    overall = results.filter(pl.col("segment") == "ALL", pl.col("policy") == "cautious")
    assert np.isfinite(overall["estimate"].to_numpy()).all()
    assert overall.filter(pl.col("metric") == "attempts")["estimate"].item() == pytest.approx(600, rel=0.2)


def test_the_same_log_gives_the_same_numbers_under_other_action_names() -> None:
    """Renaming the actions changes no estimate, only which built-in metrics exist (and the intervals a little: the
    engine cannot know a decline never authorizes, as it knows of block)."""
    policy = [{"name": "cautious", "kind": "rules", "fallback": "{allow}",
               "rules": [{"when": "fraud_score >= 0.8", "action": "{block}"},
                         {"when": "fraud_score >= 0.4", "action": "{challenge}"}]}]

    def policies(names: dict[str, str]) -> list[dict]:
        text = repr(policy)
        for old, new in names.items():
            text = text.replace("{" + old + "}", new)
        return eval(text)  # noqa: S307 - a test's own literal

    # the built-in liability shift reads the action named challenge: off in both, so fraud_loss is comparable
    usual = run_frame(parse_config({"policies": policies({a: a for a in RENAMED}), "value_model": {"liability_shift": False},
                                    "estimation": {"population": "finite"}}), make_transactions(n=600, seed=5))
    other = run_frame(parse_config({"data": {"actions": ACTIONS}, "policies": policies(RENAMED),
                                    "estimation": {"population": "finite"},
                                    "value_model": {"liability_shift": False, "values": {"cost": "0.029 * amount * authorized + 0.3 * "
                                                                       "CASE WHEN action = 'decline' THEN 0 ELSE 1 END + "
                                                                       "0.05 * CASE WHEN action = 'step_up' THEN 1 ELSE 0 END"}}}),
                      renamed_log())
    keys = ["policy", "segmentation", "segment", "metric"]
    both = usual.results.join(other.results, on=keys, suffix="_other")
    assert both.height == other.results.height
    for column in ("estimate", "delta"):
        assert np.allclose(both[column].to_numpy(), both[f"{column}_other"].to_numpy(), rtol=1e-9, equal_nan=True), column
    shown = both.filter(pl.col("estimate_other").is_not_nan())
    assert (shown["ci_low_other"] <= shown["estimate_other"] + 1e-9).all()
    assert (shown["estimate_other"] <= shown["ci_high_other"] + 1e-9).all()


def test_a_ratio_of_a_metric_the_action_set_lacks_is_a_config_error() -> None:
    with pytest.raises(InvalidConfig, match=r"metrics\.x\.ratio: the numerator 'blocked_count' needs action 'block'"):
        parse_config({"data": {"actions": ACTIONS}, "metrics": {"x": {"ratio": ["blocked_count", "attempts"]}}})


def test_a_threshold_needs_the_actions_it_names() -> None:
    with pytest.raises(InvalidConfig, match=r"policies\[0\]: needs action .allow., which is not in the action set"):
        parse_config({"data": {"actions": ACTIONS},
                      "policies": [{"name": "t", "kind": "threshold", "score": "fraud_score", "block_above": 0.5}]})


def test_a_threshold_ladder_works_on_any_action_set() -> None:
    """`below` and `above` give a threshold (and a segment threshold) any actions; on the renamed log the ladder
    equal to the usual thresholds gives the usual estimates."""
    ladder = {"kind": "threshold", "score": "fraud_score", "below": "accept", "above": {"step_up": 0.4, "decline": 0.8}}
    segment = {"kind": "segment_threshold", "score": "fraud_score", "column": "card_funding",
               "default": {"below": "accept", "above": {"step_up": 0.4, "decline": 0.8}},
               "thresholds": {"prepaid": {"below": "accept", "above": {"decline": 0.3}}}}
    other = run_frame(parse_config({"data": {"actions": ACTIONS}, "estimation": {"population": "finite"},
                                    "policies": [{"name": "ladder", **ladder}, {"name": "seg", **segment}]}),
                      renamed_log()).results
    usual = run_frame(parse_config({"estimation": {"population": "finite"}, "policies": [
        {"name": "ladder", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.4, "block_above": 0.8},
        {"name": "seg", "kind": "segment_threshold", "score": "fraud_score", "column": "card_funding",
         "default": {"challenge_above": 0.4, "block_above": 0.8}, "thresholds": {"prepaid": {"block_above": 0.3}}}]}),
        make_transactions(n=600, seed=5)).results
    for policy in ("ladder", "seg"):
        a = usual.filter(pl.col("policy") == policy, pl.col("metric").is_in(["attempts", "authorized_count", "revenue"]))
        b = other.filter(pl.col("policy") == policy, pl.col("metric").is_in(["attempts", "authorized_count", "revenue"]))
        assert np.allclose(a.sort("segment", "metric")["estimate"].to_numpy(),
                           b.sort("segment", "metric")["estimate"].to_numpy(), rtol=1e-9), policy


@pytest.mark.parametrize(("cutoffs", "message"), [
    ({"below": "accept", "above": {"step_up": 0.4, "decline": 0.4}}, "share a threshold"),
    ({"below": "accept", "above": {"step_up": 1.4}}, r"above\.step_up: must be <= 1"),
    ({"below": "accept", "above": {"approve": 0.4}}, r"above\.approve: needs action 'approve'"),
    ({"below": "allow", "above": {"step_up": 0.4}}, r"needs action 'allow'"),
])
def test_a_ladder_is_checked_when_the_config_loads(cutoffs: dict, message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        parse_config({"data": {"actions": ACTIONS},
                      "policies": [{"name": "t", "kind": "threshold", "score": "fraud_score", **cutoffs}]})


def test_a_ladder_reads_in_one_line() -> None:
    from simulator.report.policy_text import describe_policy

    text = describe_policy({"kind": "threshold", "score": "fraud_score", "below": "accept",
                            "above": {"decline": 0.8, "step_up": 0.4}})
    assert text == "threshold fraud_score: step_up ≥ 0.4, decline ≥ 0.8, else accept"
