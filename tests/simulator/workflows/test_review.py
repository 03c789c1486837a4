"""Guardrail outcomes, Benjamini–Hochberg, the verdict and `[review]` validation, on hand-built result rows."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import polars as pl
import pytest

from simulator.config import parse_config
from simulator.errors import InvalidConfig
from simulator.config_tables import Guardrail
from simulator.decide.guardrails import (
    FAIL,
    INCONCLUSIVE,
    INSUFFICIENT,
    PASS,
    holm_adjust,
    evaluate_guardrails,
    one_sided_p,
    verdict,
)
from simulator.workflows.review import candidate_config, review_config

CONFIDENCE = 0.95  # FDR 0.05


def results(*rows: dict[str, Any]) -> pl.DataFrame:
    """Candidate result rows (RESULT_SCHEMA columns the guardrails read); each row overrides the defaults."""
    default = {"segmentation": "card_country", "segment": "ALL", "metric": "fraud_rate_bps", "estimate": 10.0,
               "baseline": 10.0, "delta": 0.0, "delta_se": 1.0, "delta_ci_low": -2.0, "delta_ci_high": 2.0,
               "rows": 5000, "ess": 4000.0, "flag": ""}
    return pl.DataFrame([default | row for row in rows])


def guardrail(**fields: Any) -> Guardrail:
    return Guardrail.model_validate({"metric": "fraud_rate_bps", "max_increase": 1.0, "scope": "every_segment"} | fields)


def outcomes(frame: pl.DataFrame, *rails: Guardrail) -> list[str]:
    return evaluate_guardrails(frame, rails or (guardrail(),), confidence=CONFIDENCE)["outcome"].to_list()


def test_interval_within_the_limit_passes() -> None:
    # delta 0.2 in [-0.3, 0.8]: entirely below the limit of +1
    assert outcomes(results({"delta": 0.2, "delta_ci_low": -0.3, "delta_ci_high": 0.8})) == [PASS]


def test_interval_beyond_the_limit_with_a_significant_test_fails() -> None:
    # z = (5 - 1) / 1 = 4, p = 3.2e-5; one test, so Holm leaves it as it is
    checks = evaluate_guardrails(results({"delta": 5.0, "delta_ci_low": 3.0, "delta_ci_high": 7.0}), (guardrail(),),
                                 confidence=CONFIDENCE)
    assert checks["outcome"].to_list() == [FAIL]
    assert checks["p_value"][0] == pytest.approx(3.167e-5, rel=1e-3)
    assert checks["p_adjusted"][0] == pytest.approx(checks["p_value"][0])


def test_interval_straddling_the_limit_is_inconclusive() -> None:
    assert outcomes(results({"delta": 1.2, "delta_ci_low": -0.5, "delta_ci_high": 2.9})) == [INCONCLUSIVE]


def test_breach_that_does_not_survive_holm_is_inconclusive() -> None:
    # The first segment's interval lies beyond the limit, but its p-value (z = 1.75, p = 0.040) adjusted
    # over 10 tests is 0.040 * 10 = 0.40 > 0.05 (the smallest p gets the factor m; the 9 others have p = 0.5).
    breach = {"segment": "card_country=FR", "delta": 2.75, "delta_ci_low": 1.1, "delta_ci_high": 6.0}
    quiet = [{"segment": f"card_country=X{i}", "delta": 1.0, "delta_ci_low": -1.0, "delta_ci_high": 3.0}
             for i in range(9)]
    checks = evaluate_guardrails(results(breach, *quiet), (guardrail(),), confidence=CONFIDENCE)
    first = checks.row(0, named=True)
    assert first["outcome"] == INCONCLUSIVE and "not significant after Holm" in first["reason"]
    assert first["p_adjusted"] == pytest.approx(first["p_value"] * 10, rel=1e-6)
    alone = evaluate_guardrails(results(breach), (guardrail(),), confidence=CONFIDENCE)
    assert alone["outcome"].to_list() == [FAIL]  # the same breach alone is a failure


def test_a_breach_overall_fails_on_its_interval_however_many_segments_are_checked() -> None:
    # ALL: interval [11, 73] beyond +1 with p = 0.005 would be 0.005 * 101 > 0.05 if it joined the segments' family
    overall = {"delta": 40.0, "delta_se": 15.2, "delta_ci_low": 11.0, "delta_ci_high": 73.0}
    quiet = [{"segment": f"card_country=X{i}", "delta": 1.0, "delta_ci_low": -1.0, "delta_ci_high": 3.0}
             for i in range(100)]
    checks = evaluate_guardrails(results(overall, *quiet), (guardrail(),), confidence=CONFIDENCE)
    first = checks.row(0, named=True)
    assert first["outcome"] == FAIL and first["p_adjusted"] == first["p_value"]
    assert checks["p_adjusted"][1] == pytest.approx(1.0)  # 100 segment checks with p = 0.5: min(1, 0.5 * 100)


@pytest.mark.parametrize(
    ("row", "rail", "reason"),
    [
        ({"flag": "low_ess"}, {}, "flagged low_ess"),
        ({"flag": "no_support", "delta": None, "delta_ci_low": None, "delta_ci_high": None}, {}, "flagged no_support"),
        ({"rows": 999}, {"min_rows": 1000}, "999 rows < min_rows 1000"),
        ({"ess": 50.0}, {"min_ess": 100}, "ess 50.0 < min_ess 100"),
        ({"delta": None, "delta_ci_low": None, "delta_ci_high": None}, {}, "no delta or interval"),
    ],
)
def test_flagged_or_thin_segments_are_insufficient_data(row: dict[str, Any], rail: dict[str, Any], reason: str) -> None:
    # the interval would fail the guardrail if it were trusted
    base = {"delta": 5.0, "delta_ci_low": 3.0, "delta_ci_high": 7.0}
    checks = evaluate_guardrails(results(base | row), (guardrail(**rail),), confidence=CONFIDENCE)
    assert checks["outcome"].to_list() == [INSUFFICIENT]
    assert reason in checks["reason"][0]
    assert checks["p_adjusted"][0] is None  # not part of the multiple-testing family


def test_lower_and_relative_limits() -> None:
    frame = results({"metric": "net_value", "baseline": 1000.0, "delta": -30.0, "delta_ci_low": -45.0,
                     "delta_ci_high": -15.0, "delta_se": 7.5})
    # min_delta 0: the whole interval is below 0; z = (0 - -30) / 7.5 = 4
    assert outcomes(frame, guardrail(metric="net_value", max_increase=None, min_delta=0.0)) == [FAIL]
    # at most a 5 % drop: the limit is -0.05 * |1000| = -50, the interval lies above it
    assert outcomes(frame, guardrail(metric="net_value", max_increase=None, min_relative_delta=-0.05)) == [PASS]
    # at most a 2 % drop: the limit -20 is inside the interval
    assert outcomes(frame, guardrail(metric="net_value", max_increase=None, min_relative_delta=-0.02)) == [INCONCLUSIVE]
    # at most +5 % of 10 bps = +0.5 bps: an increase of 5 bps [3, 7] fails
    rate = results({"delta": 5.0, "delta_ci_low": 3.0, "delta_ci_high": 7.0})
    checks = evaluate_guardrails(rate, (guardrail(max_increase=None, max_relative_increase=0.05),), confidence=CONFIDENCE)
    assert checks["outcome"].to_list() == [FAIL] and checks["limit"][0] == pytest.approx(0.5)


def test_overall_scope_checks_only_segment_all() -> None:
    frame = results({"delta": 0.1, "delta_ci_low": -0.5, "delta_ci_high": 0.7},
                    {"segment": "card_country=FR", "delta": 5.0, "delta_ci_low": 3.0, "delta_ci_high": 7.0})
    checks = evaluate_guardrails(frame, (guardrail(scope="overall"),), confidence=CONFIDENCE)
    assert checks["segment"].to_list() == ["ALL"] and checks["outcome"].to_list() == [PASS]
    assert outcomes(frame, guardrail(scope="every_segment")) == [PASS, FAIL]


def test_holm_known_answer() -> None:
    # sorted p: 0.01, 0.03, 0.04, 0.5 -> (m - i + 1)·p = 0.04, 0.09, 0.08, 0.5; step-down takes running maxima
    adjusted = holm_adjust(np.array([0.01, 0.04, 0.03, 0.5]))
    np.testing.assert_allclose(adjusted, [0.04, 0.09, 0.09, 0.5], rtol=1e-12)
    assert holm_adjust(np.array([])).size == 0
    np.testing.assert_allclose(holm_adjust(np.array([0.3, 0.6])), [0.6, 0.6])  # capped at 1 only when needed


def test_one_sided_p_with_zero_standard_error() -> None:
    # a segment the candidate treats exactly like the baseline: delta 0, se 0
    p = one_sided_p(np.array([0.0, 2.0, 0.0]), np.array([0.0, 0.0, 1.0]), np.array([1.0, 1.0, 1.0]), upper=True)
    assert p[0] == 1.0 and p[1] == 0.0 and p[2] == pytest.approx(0.8413, abs=1e-4)


def _checks(*pairs: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame({"segment": [s for s, _ in pairs], "outcome": [o for _, o in pairs]})


def test_verdict_is_the_worst_outcome_and_overall_blindness_is_inconclusive() -> None:
    assert verdict(_checks(("ALL", PASS), ("a=1", FAIL), ("a=2", INCONCLUSIVE))) == FAIL
    assert verdict(_checks(("ALL", PASS), ("a=2", INCONCLUSIVE))) == INCONCLUSIVE
    assert verdict(_checks(("ALL", PASS), ("a=2", INSUFFICIENT))) == PASS  # thin segments do not block
    assert verdict(_checks(("ALL", INSUFFICIENT))) == INCONCLUSIVE  # cannot check the guardrail at all


REVIEW_BASE: dict[str, Any] = {
    "policies": [{"name": "stricter", "kind": "threshold", "score": "fraud_score", "block_above": 0.7},
                 {"name": "other", "kind": "threshold", "score": "fraud_score", "block_above": 0.9}],
}


def _review(review: dict[str, Any] | None) -> None:
    review_config(parse_config(REVIEW_BASE | ({} if review is None else {"review": review}), "review.toml"), "review.toml")


@pytest.mark.parametrize(
    ("review", "message"),
    [
        ({"candidate": "stricter", "guardrails": [{"metric": "fraud_rate", "max_increase": 1}]},
         "review.guardrails[0].metric: unknown metric 'fraud_rate'"),
        ({"candidate": "stricter", "guardrails": [{"metric": "net_value", "scope": "overall"}]},
         "review.guardrails[0]: give exactly one limit of max_increase, max_relative_increase, min_delta, "
         "min_relative_delta; got none"),
        ({"candidate": "stricter", "guardrails": [{"metric": "net_value", "min_delta": 0, "max_increase": 5}]},
         "got max_increase, min_delta"),
        ({"candidate": "stricter", "guardrails": [{"metric": "net_value", "min_delta": 0, "scope": "segments"}]},
         "review.guardrails[0].scope"),
        ({"candidate": "stricter", "guardrails": [{"metric": "net_value", "min_delta": 0, "max_incrase": 1}]},
         "review.guardrails[0].max_incrase: unknown key 'max_incrase'; known: max_increase, "
         "max_relative_increase, metric, min_delta, min_ess, min_relative_delta, min_rows, scope "
         "(did you mean 'max_increase'?)"),
        ({"candidate": "stricer"}, "review.candidate: unknown policy 'stricer'; known: other, stricter "
                                   "(did you mean 'stricter'?)"),
        ({"guardrails": []}, "review.candidate: give exactly one of candidate = \"<policy name>\" and candidates = "
                             "[\"<policy name>\", ...]; got neither"),
        ({"candidate": "stricter", "candidates": ["other"]}, "review.candidate: give exactly one of candidate"),
        ({"candidates": []}, "review.candidates: is empty; name at least one policy"),
        ({"candidates": ["stricter", "stricer", "none"]},
         "review.candidates[1]: unknown policy 'stricer'; known: other, stricter (did you mean 'stricter'?)"),
        ({"candidates": ["stricter", "other", "stricter"]}, "review.candidates: names 'stricter' more than once"),
        ({"candidate": "stricter", "rank_by": "net_value"}, "review.rank_by: ranks several candidates"),
        ({"candidates": ["stricter"], "rank_by": "maximise net_valu"}, "review.rank_by: unknown metric 'net_valu'"),
        ({"candidates": ["stricter"], "rank_by": "best net_value"}, "review.rank_by: write a metric, 'maximize METRIC'"),
        (None, "no [review] table"),
    ],
)
def test_review_table_errors_name_the_key(review: dict[str, Any] | None, message: str) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(message)) as error:
        _review(review)
    assert str(error.value).startswith("review.toml")


def test_unknown_metric_suggests_the_closest_name() -> None:
    with pytest.raises(InvalidConfig, match=re.escape("(did you mean 'fraud_rate_bps'?)")):
        _review({"candidate": "stricter", "guardrails": [{"metric": "fraud_rate_bp", "max_increase": 1}]})


def test_the_candidate_is_evaluated_alone_with_a_named_baseline() -> None:
    config = parse_config(REVIEW_BASE | {"baseline": {"policy": "other"}, "review": {"candidate": "stricter"}})
    assert [p.name for p in candidate_config(config, "stricter").policies] == ["stricter", "other"]
    logged = parse_config(REVIEW_BASE | {"review": {"candidate": "stricter"}})
    assert [p.name for p in candidate_config(logged, "stricter").policies] == ["stricter"]


def test_every_unknown_candidate_is_named_with_the_available_policies() -> None:
    with pytest.raises(InvalidConfig) as error:
        _review({"candidates": ["stricer", "other", "none"]})
    message = str(error.value)
    assert "review.candidates[0]: unknown policy 'stricer'; known: other, stricter" in message
    assert "review.candidates[2]: unknown policy 'none'; known: other, stricter" in message


def test_a_candidate_cannot_be_the_baseline() -> None:
    with pytest.raises(InvalidConfig, match=re.escape("review.candidates[1]: 'other' is the baseline")):
        parse_config(REVIEW_BASE | {"baseline": {"policy": "other"}, "review": {"candidates": ["stricter", "other"]}})


def test_candidates_are_evaluated_together_with_a_named_baseline() -> None:
    config = parse_config(REVIEW_BASE | {"review": {"candidates": ["other", "stricter"], "rank_by": "minimize fraud_loss"}})
    assert config.review is not None and config.review.names == ("other", "stricter")
    assert (config.review.rank_metric, config.review.rank_sense) == ("fraud_loss", "minimize")
    assert [p.name for p in candidate_config(config, config.review.names).policies] == ["stricter", "other"]
    single = parse_config(REVIEW_BASE | {"review": {"candidate": "stricter"}})
    assert single.review is not None and single.review.names == ("stricter",) and not single.review.several
    assert (single.review.rank_metric, single.review.rank_sense) == ("net_value", "maximize")
