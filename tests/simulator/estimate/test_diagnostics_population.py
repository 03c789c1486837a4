"""Diagnostics describe the rows a metric covers: fraud metrics count mature rows only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from simulator.config import parse_config
from simulator.workflows.run import run
from tests.conftest import LOCAL


def test_ess_is_over_the_metric_population(generated: Path) -> None:
    config = parse_config({"segments": {"by": [["card_country"]]}, "data": {"label_maturity_days": 60},
                           "policies": [{"name": "p", "kind": "threshold", "score": "fraud_score", "block_above": 0.3}]})
    results = run(config, generated / "transactions", execution=LOCAL).results
    logged = results.filter(pl.col("policy") == "logged")
    # the logging policy's weights are all 1: its ESS is exactly the rows it covers
    np.testing.assert_allclose(logged["ess"].to_numpy(), logged["rows"].to_numpy().astype(float), rtol=1e-12)
    fraud = results.filter(pl.col("metric") == "fraud_rate_bps")
    attempts = results.filter(pl.col("metric") == "auth_rate")
    assert (fraud["rows"] < attempts["rows"]).any()  # some labels are immature
    assert (results["ess"] <= results["rows"] * (1 + 1e-9)).all()


def test_a_metric_no_action_can_produce_is_exactly_zero() -> None:
    from simulator.workflows.run import run_frame
    from tests.factories import make_transactions

    frame = make_transactions(n=2000, seed=9).filter(pl.col("action") != "challenge")
    frame = frame.drop([c for c in frame.columns if c.startswith("logging_prob_")])
    config = parse_config({"data": {"actions": ["allow", "block"]},
                           "policies": [{"name": "p", "kind": "threshold", "score": "fraud_score", "block_above": 0.5}]})
    challenged = run_frame(config, frame).results.filter(pl.col("metric") == "challenged_count")
    assert (challenged["estimate"] == 0).all() and (challenged["ci_high"] == 0).all()
    assert (challenged["delta_ci_low"] == 0).all() and (challenged["delta_ci_high"] == 0).all()
    assert challenged["interval"].str.starts_with("exact").all()
