"""Several candidates side by side: one run for all, each judged as if alone, ranked, and the exit code.

On the session's generated log (production challenges at fraud_score 0.05 and blocks at 0.4) and the one
guardrail `auth_rate min_delta 0` (overall):

- `looser` (challenge 0.4, block 0.7) and `loosest` (0.5, 0.9) approve more: their intervals lie above 0, PASS;
- `nudge` (0.06, 0.4) barely moves approvals: its interval straddles 0, INCONCLUSIVE;
- `much_stricter` (0.01, 0.2) approves fewer: its interval lies below 0, FAIL.

`rank_by = "maximize auth_rate"` orders the two passing ones by the lower end of their auth_rate interval,
which puts `loosest` first although the config names it second.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import simulator.workflows.review as review_module
from simulator.config import parse_config
from simulator.decide.guardrails import FAIL, INCONCLUSIVE, PASS
from simulator.errors import InvalidConfig
from simulator.report.candidates import candidates_json, selection_warning
from simulator.workflows.review import CandidatesReview, review, review_candidates
from tests.conftest import LOCAL

THRESHOLDS = {"much_stricter": (0.01, 0.2), "nudge": (0.06, 0.4), "looser": (0.4, 0.7), "loosest": (0.5, 0.9)}
GUARDRAILS = [{"metric": "auth_rate", "min_delta": 0.0}]


def candidates_config(review_table: dict[str, Any]) -> dict[str, Any]:
    """A fast config (analytic intervals, one segmentation) with the four threshold candidates."""
    return {"segments": {"by": [["card_country"]]}, "estimation": {"bootstrap": 0},
            "policies": [{"name": n, "kind": "threshold", "score": "fraud_score", "challenge_above": c,
                          "block_above": b} for n, (c, b) in THRESHOLDS.items()],
            "review": {"guardrails": GUARDRAILS} | review_table}


@pytest.fixture(scope="module")
def runs() -> Iterator[list[tuple[str, ...]]]:
    """Every call of `run` by the review workflow, as the policies it evaluated."""
    calls: list[tuple[str, ...]] = []
    original = review_module.run

    def counting(config: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(tuple(p.name for p in config.policies))
        return original(config, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(review_module, "run", counting)
        yield calls


@pytest.fixture(scope="module")
def reviewed(generated: Path, runs: list[tuple[str, ...]]) -> CandidatesReview:
    config = parse_config(candidates_config({"candidates": list(THRESHOLDS), "rank_by": "maximize auth_rate"}))
    return review_candidates(config, generated / "transactions", execution=LOCAL)


def test_one_run_evaluates_every_candidate(reviewed: CandidatesReview, runs: list[tuple[str, ...]]) -> None:
    assert runs[:1] == [tuple(THRESHOLDS)] and len(runs) == 1  # one pass over the data, not one per candidate
    assert set(reviewed.run.results["policy"].unique()) >= set(THRESHOLDS)
    assert all(r.run is reviewed.run for r in reviewed.reviews)


def test_ranked_pass_then_inconclusive_then_fail(reviewed: CandidatesReview) -> None:
    ranking = reviewed.ranking
    assert ranking["candidate"].to_list() == ["loosest", "looser", "nudge", "much_stricter"]
    assert ranking["verdict"].to_list() == [PASS, PASS, INCONCLUSIVE, FAIL]
    assert ranking["rank"].to_list() == [1, 2, 3, 4]
    assert [r.candidate for r in reviewed.reviews] == ranking["candidate"].to_list()
    first, second = ranking.head(2)["bound"].to_list()
    assert first > second > 0  # the lower ends of the auth_rate intervals, best first
    assert ranking["reason"][0].startswith("passes every guardrail; maximize auth_rate: delta ≥ +")
    assert reviewed.passing() == ("loosest", "looser")


def test_two_passing_candidates_warn_that_the_best_one_is_optimistic(reviewed: CandidatesReview) -> None:
    warning = selection_warning(reviewed)
    assert warning is not None and warning.startswith("2 candidates pass; 'loosest' was chosen as the best")
    assert "winner's curse" in warning
    assert candidates_json(reviewed)["selection_warning"] == warning
    alone = replace(reviewed, reviews=reviewed.reviews[:1], ranking=reviewed.ranking.head(1))
    assert selection_warning(alone) is None


def test_each_candidate_is_judged_as_if_reviewed_alone(reviewed: CandidatesReview, generated: Path) -> None:
    alone = review(parse_config(candidates_config({"candidate": "nudge"})), generated / "transactions",
                   execution=LOCAL)
    together = next(r for r in reviewed.reviews if r.candidate == "nudge")
    assert together.verdict == alone.verdict
    assert together.guardrails.select("segment", "outcome").equals(alone.guardrails.select("segment", "outcome"))
    # the cells of a run depend on every threshold in play, so sums may be added in another order: 1e-9 relative
    for column in ("delta", "delta_ci_low", "delta_ci_high", "p_value", "p_adjusted"):
        assert together.guardrails[column].to_list() == pytest.approx(alone.guardrails[column].to_list(), rel=1e-9)


@pytest.mark.parametrize(
    ("kept", "allow", "code", "recommended"),
    [
        (("loosest", "looser", "nudge", "much_stricter"), False, 0, "loosest"),  # the best passing one
        (("nudge", "much_stricter"), False, 3, None),  # none passes, one cannot be decided
        (("nudge", "much_stricter"), True, 0, "nudge"),  # --allow-inconclusive lets the undecided one through
        (("much_stricter",), False, 1, None),  # every candidate fails
        (("much_stricter",), True, 1, None),
    ],
)
def test_exit_code_over_several_candidates(reviewed: CandidatesReview, kept: tuple[str, ...], allow: bool, code: int,
                                           recommended: str | None) -> None:
    subset = replace(reviewed, reviews=tuple(r for r in reviewed.reviews if r.candidate in kept),
                     ranking=reviewed.ranking.filter(pl.col("candidate").is_in(kept)))
    assert subset.exit_code(allow_inconclusive=allow) == code
    chosen = subset.recommended(allow_inconclusive=allow)
    assert (None if chosen is None else chosen.candidate) == recommended


def test_one_candidate_exit_code_is_the_single_review_rule(reviewed: CandidatesReview) -> None:
    for result in reviewed.reviews:  # SPEC §8 for one candidate: 0 pass, 1 fail, 3 undecided
        alone = replace(reviewed, reviews=(result,), ranking=reviewed.ranking.filter(pl.col("candidate") == result.candidate))
        for allow in (False, True):
            assert alone.exit_code(allow_inconclusive=allow) == result.exit_code(allow_inconclusive=allow)


def test_review_of_one_candidate_refuses_a_candidates_table(generated: Path) -> None:
    config = parse_config(candidates_config({"candidates": ["looser"]}), "c.toml")
    with pytest.raises(InvalidConfig, match="review_candidates"):
        review(config, generated / "transactions", execution=LOCAL)
