"""Hand-computed answers on a four-row log: every number below is derived in a comment."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from simulator.config import parse_config
from simulator.workflows.run import run
from tests.conftest import LOCAL

# Four payments, all created long before as_of so every fraud label is mature.
#   id  action     propensity  authorized fraud lost amount fraud_score
#   t1  allow      0.5         T          F     -    100    0.1
#   t2  challenge  0.25        T          F     -     50    0.5
#   t3  block      0.8         -          -     -    200    0.9
#   t4  allow      0.2         T          T     T     80    0.8
# Candidate `strict`: challenge at >= 0.4, block at >= 0.7. It picks
#   t1 allow (= logged, weight 1/0.5 = 2), t2 challenge (= logged, 1/0.25 = 4),
#   t3 block (= logged, 1/0.8 = 1.25), t4 block (≠ logged allow, weight 0).
ROWS = pl.DataFrame(
    {
        "transaction_id": ["t1", "t2", "t3", "t4"],
        "created_at": [datetime(2026, 1, 1, tzinfo=UTC)] * 4,
        "amount": [100.0, 50.0, 200.0, 80.0],
        "action": ["allow", "challenge", "block", "allow"],
        "propensity": [0.5, 0.25, 0.8, 0.2],
        "authorized": [True, True, None, True],
        "fraud_dispute": [False, False, None, True],
        "dispute_lost": [None, None, None, True],
        "fraud_score": [0.1, 0.5, 0.9, 0.8],
    }
)
CONFIG = {
    "data": {"as_of": datetime(2026, 12, 1, tzinfo=UTC)},
    "value_model": {"margin_rate": 0.3, "fee_rate": 0.0, "fee_fixed": 0.0, "dispute_fee": 10.0, "challenge_cost": 1.0},
    "policies": [{"name": "strict", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.4, "block_above": 0.7}],
}


def results(tmp_path: Path, estimator: str, population: str = "finite") -> pl.DataFrame:
    path = tmp_path / "log.parquet"
    ROWS.write_parquet(path)
    estimation = {"estimator": estimator, "min_ess": 0.0, "population": population}
    config = parse_config(CONFIG | {"estimation": estimation})
    return run(config, path, execution=LOCAL).overall()


def row(frame: pl.DataFrame, policy: str, metric: str) -> dict:
    return frame.filter((pl.col("policy") == policy) & (pl.col("metric") == metric)).row(0, named=True)


def test_ipw_design_variance(tmp_path: Path) -> None:
    """Finite population: only the logging draw is random; Var = Σ z²(1 − p), the logged total is exact."""
    auth = row(results(tmp_path, "ipw"), "strict", "authorized_count")
    # z = [2, 4, 0, 0], p = [0.5, 0.25, ., .]: Var = 4·0.5 + 16·0.75 = 14.
    assert auth["se"] == pytest.approx(math.sqrt(14.0), abs=1e-12)
    # The logged total (3) is observed, so the paired delta's error is the candidate's.
    assert auth["delta_se"] == pytest.approx(math.sqrt(14.0), abs=1e-12)
    logged = row(results(tmp_path, "ipw"), "logged", "authorized_count")
    assert logged["se"] == 0.0 and logged["ci_low"] == logged["ci_high"] == 3.0


def test_ipw_totals_and_paired_delta(tmp_path: Path) -> None:
    frame = results(tmp_path, "ipw", "superpopulation")
    auth = row(frame, "strict", "authorized_count")
    # z = w·authorized = [2, 4, 0, 0]: T = 6; Σz² = 20; Var = 20 − 6²/4 = 11.
    assert auth["estimate"] == pytest.approx(6.0, abs=1e-12)
    assert auth["se"] == pytest.approx(math.sqrt(11.0), abs=1e-12)
    # Logged total 3 (t1, t2, t4). Paired d = [2−1, 4−1, 0−0, 0−1] = [1, 3, 0, −1]:
    # Σd = 3; Σd² = 11; Var = 11 − 3²/4 = 8.75.
    assert auth["baseline"] == pytest.approx(3.0, abs=1e-12)
    assert auth["delta"] == pytest.approx(3.0, abs=1e-12)
    assert auth["delta_se"] == pytest.approx(math.sqrt(8.75), abs=1e-12)
    # revenue = 0.3·(2·100 + 4·50) = 120.
    assert row(frame, "strict", "revenue")["estimate"] == pytest.approx(120.0, abs=1e-9)
    # cost = challenge_cost · w(t2) = 1·4 = 4.
    assert row(frame, "strict", "cost")["estimate"] == pytest.approx(4.0, abs=1e-12)
    # The candidate blocks t4, the only fraud; no fraud is carried: fraud_count = 0.
    assert row(frame, "strict", "fraud_count")["estimate"] == pytest.approx(0.0, abs=1e-12)


def test_ratio_and_block_quality_metrics(tmp_path: Path) -> None:
    frame = results(tmp_path, "ipw")
    # auth_rate = Σ w·auth / Σ w = 6 / (2 + 4 + 1.25) = 6/7.25.
    assert row(frame, "strict", "auth_rate")["estimate"] == pytest.approx(6 / 7.25, abs=1e-12)
    # Blocked weighting uses logged-allow rows: t4 has π(block) = 1, weight 1/0.2 = 5, fraud 1:
    # blocked_fraud_count = 5; blocked_legit_count = 0 (t1 is not blocked).
    assert row(frame, "strict", "blocked_fraud_count")["estimate"] == pytest.approx(5.0, abs=1e-12)
    assert row(frame, "strict", "blocked_legit_count")["estimate"] == pytest.approx(0.0, abs=1e-12)
    # Every fraud the traffic would carry if allowed (Σ [allow]/p · fraud = 5) is blocked.
    assert row(frame, "strict", "block_recall")["estimate"] == pytest.approx(1.0, abs=1e-12)
    assert row(frame, "strict", "block_precision")["estimate"] == pytest.approx(1.0, abs=1e-12)


def test_snipw_normalises_within_the_policy_s_strata(tmp_path: Path) -> None:
    """Stratified SNIPW: per stratum (rows where `strict` takes c), N_c times the Hájek mean of rows logged with c."""
    frame = results(tmp_path, "snipw")
    # Strata: allow {t1}, challenge {t2}, block {t3, t4}. Allow: N = 1, explored allow rows {t1}: authorized 1.
    # Challenge: N = 1, {t2}: authorized 1. Block: authorized is 0 whatever the outcome (exact, no exploration).
    assert row(frame, "strict", "authorized_count")["estimate"] == pytest.approx(2.0, abs=1e-12)
    # revenue = 0.3 · (1 · 100 + 1 · 50) = 45; cost = challenge_cost · N_challenge = 1 (fixed by the action).
    assert row(frame, "strict", "revenue")["estimate"] == pytest.approx(45.0, abs=1e-9)
    assert row(frame, "strict", "cost")["estimate"] == pytest.approx(1.0, abs=1e-12)
    # The only fraud (t4) is blocked: fraud_count is exactly 0.
    assert row(frame, "strict", "fraud_count")["estimate"] == pytest.approx(0.0, abs=1e-12)
    # attempts are N exactly, with no variance.
    attempts = row(frame, "strict", "attempts")
    assert attempts["estimate"] == pytest.approx(4.0, abs=1e-12)
    assert attempts["se"] == pytest.approx(0.0, abs=1e-12)


def test_snipw_superpopulation_variance_is_that_of_the_influence_values_plus_the_floor(tmp_path: Path) -> None:
    """ψ_i = ȳ_s + (N_s / Σ_s 1/p)·[logged c]·(y_i − ȳ_s)/p_i: here [1, 1, 0, 0], so Var = Σψ² − T²/n = 2 − 4/4 = 1.

    The allow and challenge strata each rest on one explored row, both authorized: their sample spread is 0.
    The floor models authorization as Bernoulli((1 + ½)/(1 + 1) = 0.75): N²/m · 0.75·0.25 = 0.1875 per stratum.
    """
    auth = row(results(tmp_path, "snipw", "superpopulation"), "strict", "authorized_count")
    assert auth["estimate"] == pytest.approx(2.0, abs=1e-12)
    assert auth["se"] == pytest.approx(math.sqrt(1.0 + 2 * 0.1875), abs=1e-12)


def test_logged_policy_reports_observed_totals(tmp_path: Path) -> None:
    frame = results(tmp_path, "snipw")
    # Observed: authorized t1, t2, t4 = 3; fraud_loss = t4: lost 80 + dispute fee 10 = 90.
    assert row(frame, "logged", "authorized_count")["estimate"] == pytest.approx(3.0, abs=1e-12)
    assert row(frame, "logged", "fraud_loss")["estimate"] == pytest.approx(90.0, abs=1e-12)
    # net_value = revenue 0.3·(100+50+80) − cost (challenge 1) − fraud_loss 90 = 69 − 1 − 90 = −22.
    assert row(frame, "logged", "net_value")["estimate"] == pytest.approx(-22.0, abs=1e-12)
    assert row(frame, "logged", "net_value")["delta"] == 0.0


def test_doubly_robust_known_answer(tmp_path: Path) -> None:
    """DR = Σ_i Σ_a π(a|x) m̂(x, a) + Σ_i w_i (y_i − m̂(x_i, a_i)), m̂ cross-fitted and shrunk (k = 20)."""
    path = tmp_path / "log.parquet"
    ROWS.write_parquet(path)
    config = parse_config(CONFIG | {"estimation": {"estimator": "dr", "min_ess": 0.0, "dr_scores": ["fraud_score"],
                                                   "dr_bins": 2, "population": "finite"}})
    # Folds (hash of transaction_id): t1, t3 in fold 2; t2, t4 in fold 3. Bins of fraud_score split at its
    # median 0.65: bin 0 = {t1, t2}, bin 1 = {t3, t4}. m̂ = (Σ y + 20 · pooled) / (n + 20).
    # m̂ of authorized for fold 2 (fitted on t2 challenge bin 0, t4 allow bin 1, both authorized):
    #   allow, challenge: pooled 1, so 1 in both bins; block: no rows, pooled over every action = 1.
    # m̂ for fold 3 (fitted on t1 allow bin 0 authorized, t3 block bin 1 not):
    #   allow 1; block: pooled 0, so 0; challenge: no rows, pooled over every action = 1/2.
    # Candidate: t1 allow, t2 challenge, t3 block, t4 block.
    # Direct part: t1 1 + t2 1/2 + t3 1 + t4 0 = 2.5.
    # Residuals w (y − m̂(logged)): t1 2·(1 − 1) + t2 4·(1 − 1/2) + t3 1.25·(0 − 1) + t4 0 = 0.75. DR = 3.25.
    frame = run(config, path, execution=LOCAL).overall()
    assert row(frame, "strict", "authorized_count")["estimate"] == pytest.approx(3.25, abs=1e-12)
    # attempts: m̂ = 1 everywhere, so DR is exactly the 4 rows.
    assert row(frame, "strict", "attempts")["estimate"] == pytest.approx(4.0, abs=1e-12)
    # The logging policy's totals stay the observed ones under DR.
    assert row(frame, "logged", "authorized_count")["estimate"] == pytest.approx(3.0, abs=1e-12)


def test_candidate_equal_to_a_non_logged_baseline_has_zero_delta(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    ROWS.write_parquet(path)
    twin = {**CONFIG["policies"][0], "name": "twin"}
    config = parse_config(CONFIG | {"policies": [*CONFIG["policies"], twin], "baseline": {"policy": "strict"},
                                    "estimation": {"min_ess": 0.0}})
    frame = run(config, path, execution=LOCAL).overall().filter(pl.col("policy") == "twin")
    assert (frame["delta"].drop_nulls() == 0.0).all()
    # the variance of a difference of identical totals cancels up to rounding of its terms
    assert (frame["delta_se"] <= 1e-6 * (frame["estimate"].abs() + 1)).all()
