"""Support: mass a policy puts where the logging policy never explored is flagged, not estimated."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from rich.console import Console

from simulator.config import parse_config
from simulator.report.tables import overall_table
from simulator.workflows.run import run
from tests.conftest import LOCAL
from tests.simulator.estimate.test_estimators_known import CONFIG, ROWS

BLOCK_ALL = {"name": "block_all", "kind": "threshold", "score": "fraud_score", "block_above": 0.0}


def _run(tmp_path: Path, frame: pl.DataFrame) -> pl.DataFrame:
    path = tmp_path / "log.parquet"
    frame.write_parquet(path)
    config = parse_config(CONFIG | {"policies": [BLOCK_ALL], "segments": {"by": [["card_country"]]},
                                    "estimation": {"min_ess": 0.0}})
    return run(config, path, execution=LOCAL).results.filter(pl.col("policy") == "block_all")


def _row(frame: pl.DataFrame, segment: str, metric: str = "attempts") -> dict:
    return frame.filter((pl.col("segment") == segment) & (pl.col("metric") == metric)).row(0, named=True)


def test_observed_support_flags_segments_where_an_action_was_never_logged(tmp_path: Path) -> None:
    # FR logged allow and challenge only; DE logged block and allow.
    results = _run(tmp_path, ROWS.with_columns(card_country=pl.Series(["FR", "FR", "DE", "DE"])))
    fr, de = _row(results, "card_country=FR"), _row(results, "card_country=DE")
    assert fr["unsupported_mass"] == pytest.approx(1.0) and "no_support" in fr["flag"]
    assert fr["estimate"] is None and fr["delta"] is None
    assert de["unsupported_mass"] == 0.0 and de["flag"] == ""
    # t3 is DE's only blocked row: weight 1/0.8, 2 rows → SNIPW attempts = 2.
    assert de["estimate"] == pytest.approx(2.0)


def test_exact_support_uses_the_logging_distribution(tmp_path: Path) -> None:
    # logging_prob_block = 0 for t1 only: blocking everything puts 1/4 of its mass where nothing was explored.
    probs = {"logging_prob_allow": [0.5, 0.5, 0.1, 0.2], "logging_prob_challenge": [0.5, 0.25, 0.1, 0.4],
             "logging_prob_block": [0.0, 0.25, 0.8, 0.4]}
    frame = ROWS.with_columns(card_country=pl.Series(["FR", "FR", "DE", "DE"]), **{k: pl.Series(v) for k, v in probs.items()})
    results = _run(tmp_path, frame)
    overall = _row(results, "ALL")
    assert overall["unsupported_mass"] == pytest.approx(0.25) and "no_support" in overall["flag"]
    assert overall["estimate"] is None
    assert _row(results, "card_country=FR")["unsupported_mass"] == pytest.approx(0.5)
    assert _row(results, "card_country=DE")["unsupported_mass"] == 0.0


ALLOW_ALL = {"name": "allow_all", "kind": "threshold", "score": "fraud_score", "block_above": 1.0}


def test_a_row_logged_with_propensity_one_explored_no_other_action(tmp_path: Path) -> None:
    # No logging_prob columns. DE: t3 was blocked with propensity 1 (never explored), t4 allowed with 0.2.
    # Allowing everything puts t3's mass on allow, which the logging policy never tried there: 1 of DE's 2 rows.
    frame = ROWS.with_columns(card_country=pl.Series(["FR", "FR", "DE", "DE"]), propensity=pl.Series([0.5, 0.25, 1.0, 0.2]))
    path = tmp_path / "log.parquet"
    frame.write_parquet(path)
    config = parse_config(CONFIG | {"policies": [ALLOW_ALL], "segments": {"by": [["card_country"]]},
                                    "estimation": {"min_ess": 0.0}})
    results = run(config, path, execution=LOCAL).results.filter(pl.col("policy") == "allow_all")
    de, fr, overall = _row(results, "card_country=DE"), _row(results, "card_country=FR"), _row(results, "ALL")
    assert de["unsupported_mass"] == pytest.approx(0.5) and "no_support" in de["flag"]
    assert de["estimate"] is None
    assert overall["unsupported_mass"] == pytest.approx(0.25) and "no_support" in overall["flag"]
    assert fr["unsupported_mass"] == 0.0 and fr["flag"] == ""


def test_block_quality_is_unidentified_together_when_no_explored_allowed_row_shows_the_blocks(tmp_path: Path) -> None:
    # Blocking from 0.85 blocks only t3 (score 0.9), which was logged blocked: no allowed row the policy
    # would block was explored, so blocked fraud, precision and recall are all unknown, not 0.
    path = tmp_path / "log.parquet"
    ROWS.write_parquet(path)
    block_high = {"name": "block_high", "kind": "threshold", "score": "fraud_score", "block_above": 0.85}
    config = parse_config(CONFIG | {"policies": [block_high], "estimation": {"min_ess": 0.0}})
    results = run(config, path, execution=LOCAL).results.filter(pl.col("policy") == "block_high")
    for metric in ("blocked_fraud_count", "blocked_legit_count", "block_precision", "block_recall"):
        row = _row(results, "ALL", metric)
        assert "unidentified" in row["flag"] and row["estimate"] is None, metric
    assert _row(results, "ALL", "blocked_count")["flag"] == ""  # what it blocks is known
    # blocking from 0.7 also blocks t4 (0.8), an explored allowed row: block quality is identified
    strict = {"name": "strict", "kind": "threshold", "score": "fraud_score", "block_above": 0.7}
    config = parse_config(CONFIG | {"policies": [strict], "estimation": {"min_ess": 0.0}})
    identified = run(config, path, execution=LOCAL).results.filter(pl.col("policy") == "strict")
    recall = _row(identified, "ALL", "block_recall")
    assert "unidentified" not in recall["flag"] and recall["estimate"] is not None
    assert "few_events" in recall["flag"]  # identified, but by one explored fraud: its interval rests on the floor


@pytest.mark.parametrize("population", ["finite", "superpopulation"])
@pytest.mark.parametrize("bootstrap", [0, 50])
def test_block_quality_resting_on_one_explored_fraud_is_uncertain_not_a_point(tmp_path: Path, population: str,
                                                                               bootstrap: int) -> None:
    # Blocking from 0.7 blocks t4, the only explored allowed row in that region, and it was a fraud: precision
    # reads 1.0 from one weighted event. Its interval must show that uncertainty (not [1.0, 1.0]), the counts'
    # lower bounds stay ≥ 0, and every block-quality metric carries the same flag in the parquet and the CLI table.
    path = tmp_path / "log.parquet"
    ROWS.write_parquet(path)
    strict = {"name": "strict", "kind": "threshold", "score": "fraud_score", "block_above": 0.7}
    config = parse_config(CONFIG | {"policies": [strict], "estimation": {"min_ess": 0.0, "population": population,
                                                                         "bootstrap": bootstrap}})
    results = run(config, path, execution=LOCAL).results.filter(pl.col("policy") == "strict")
    precision = _row(results, "ALL", "block_precision")
    assert precision["estimate"] == pytest.approx(1.0)
    assert precision["ci_low"] < 0.5 and precision["ci_high"] == pytest.approx(1.0)
    for metric in ("blocked_fraud_count", "blocked_legit_count", "block_precision", "block_recall"):
        row = _row(results, "ALL", metric)
        assert "few_events" in row["flag"] and "unidentified" not in row["flag"], metric
        assert 0.0 <= row["ci_low"] < row["ci_high"], metric
    table = Console(record=True, width=200)
    table.print(overall_table(results, "logged", ("block_precision", "block_recall")))
    lines = [line for line in table.export_text().splitlines() if "block_" in line]
    assert len(lines) == 2 and all("few_events" in line for line in lines)
