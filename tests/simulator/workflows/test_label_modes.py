"""Issue #12: `[data] immature_labels` modes end to end — what outputs say, and the engine against plain sums."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulator.config import parse_config
from simulator.engine.execution import Execution
from simulator.workflows.run import run, run_frame, write_run_outputs
from tests.factories import make_transactions, write_parquet

FRAME = make_transactions(n=4000, seed=8)
THRESHOLD = {"name": "t", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.3, "block_above": 0.7}
PER_ROW = {"name": "r", "kind": "python", "object": "tests.policies.example_user_policy:BlockShareByAuthScore"}
FRAUD_VALUES = {"fraud_count": "fraud", "fraud_volume": "fraud_volume", "fraud_loss": "fraud_loss",
                "net_value": "net_value", "blocked_legit_count": None}


def _summary(tmp_path: Path, frame: pl.DataFrame, data: dict) -> tuple[dict, pl.DataFrame]:
    config = parse_config({"data": data, "policies": [THRESHOLD]})
    path = write_parquet(frame, tmp_path / "tx.parquet")
    result = run(config, path, execution=Execution(engine="local"))
    write_run_outputs(result, config, path, "test", tmp_path / "out")
    return json.loads((tmp_path / "out" / "summary.json").read_text()), result.results


def test_develop_is_the_default_and_summary_json_says_so(tmp_path: Path) -> None:
    summary, results = _summary(tmp_path, FRAME, {})
    labels = summary["labels"]
    assert labels["immature_labels"] == "develop" and labels["disputes_observed"] > 0
    assert 0 < labels["min_age_days"] < 90  # rows between the minimum age and 90 days now count
    assert summary["fraud_labels_mature_before"] == labels["fraud_labels_developed_from"]
    assert labels["arrived_share_by_age_days"]["120"] == 1.0  # the factories' delays end at 110 days
    fraud = results.filter(pl.col("metric") == "fraud_count", pl.col("policy") == "t", pl.col("segment") == "ALL")
    assert fraud["interval"].item().endswith("+ development")
    assert not summary["warnings"]


@pytest.mark.parametrize("mode", ["exclude", "include"])
def test_other_modes_are_recorded(tmp_path: Path, mode: str) -> None:
    summary, results = _summary(tmp_path, FRAME, {"immature_labels": mode})
    assert summary["labels"] == {"immature_labels": mode}
    assert (summary["fraud_labels_mature_before"] is None) == (mode == "include")
    assert not results["interval"].str.contains("development").any()


def test_develop_without_dispute_delays_falls_back_to_exclude_with_a_warning(tmp_path: Path) -> None:
    summary, _ = _summary(tmp_path, FRAME.drop("disputed_at"), {})
    assert summary["labels"] == {"immature_labels": "exclude"}
    [warning] = summary["warnings"]
    assert "disputed_at" in warning and "exclude" in warning


@pytest.mark.parametrize("bootstrap", [0, 20])
def test_engine_totals_are_the_developed_value_columns(bootstrap: int) -> None:
    """The logging policy's totals are plain sums of the developed value columns, row by row
    (units keyed by the development code lose nothing), and a per-row policy matches its lazy sum too."""
    config = parse_config({"policies": [THRESHOLD, PER_ROW], "estimation": {"bootstrap": bootstrap}})
    result = run_frame(config, FRAME)
    plan = result.plan
    values = plan.values.evaluate(FRAME, plan.cutoff, develop=plan.development.weight_expr())
    overall = result.overall()

    def estimate(policy: str, metric: str) -> float:
        return overall.filter(pl.col("policy") == policy, pl.col("metric") == metric)["estimate"].item()

    for metric, column in FRAUD_VALUES.items():
        if column is not None:
            assert estimate("logged", metric) == pytest.approx(values[column].sum(), rel=1e-12)
    probs = plan.policy("r").policy.probabilities(FRAME)
    action = FRAME["action"].replace_strict({a: i for i, a in enumerate(plan.actions)}).to_numpy()
    weight = probs[np.arange(FRAME.height), action] / FRAME["propensity"].to_numpy()
    population = values["mature"].to_numpy()
    snipw = population.sum() / (weight * population).sum()  # self-normalised over the rows fraud metrics cover
    assert estimate("r", "fraud_count") == pytest.approx(snipw * (weight * values["fraud"].to_numpy()).sum(), rel=1e-9)
