"""The default intervals against the value on future traffic: fresh populations of the generator's world.

A fast version of `benchmarks/coverage_fresh.py` (docs/estimation.md, "Coverage
on future traffic"). Each replication draws new payments from one fixed world
(`simulator.synthetic.fresh`), runs the default estimator (stratified SNIPW,
superpopulation) and checks every metric's estimate and paired delta against
the superpopulation truth (per-row means over a larger population of the same
world). On this fixed seed set every metric must cover at least 0.9; with
`REPS` populations a correct 95 % interval misses more than 10 % about once in
fifty metrics, so a failure here is a regression to look at, not noise. Run
with the built-in value model and with `configs/pricing.toml`'s (expressions
that read other columns, metrics of its own), whose truth the harness
evaluates from the same expressions.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from simulator import parse_config, run_frame
from simulator.estimate.results import BLOCK_QUALITY
from simulator.synthetic.fresh import BASELINE, CANDIDATES, POLICIES, as_of, fresh_population, superpopulation_means, truth_table

ROWS = 20_000
REPS = 30
TRUTH_ROWS = 600_000
MIN_COVERAGE = 0.9
PRICING = tomllib.loads((Path(__file__).resolve().parents[3] / "configs" / "pricing.toml").read_text())
VALUE_MODELS: dict[str, dict[str, Any]] = {
    "built-in": {},
    "pricing": {k: PRICING[k] for k in ("value_model", "metrics")},
}


def _config(tables: dict[str, Any]):  # noqa: ANN202 - a RunConfig
    policies = [{"name": k, "kind": "threshold", "score": "fraud_score", "challenge_above": c, "block_above": b}
                for k, (c, b) in POLICIES.items() if k != BASELINE]
    return parse_config({
        "data": {"as_of": as_of(), "immature_labels": "exclude"},  # the truth counts labels as `exclude` does
        "policies": policies,
        "baseline": {"policy": BASELINE},
        "estimation": {"min_ess": 0},
        **tables,
    })


@pytest.fixture(scope="module", params=list(VALUE_MODELS))
def draws(request: pytest.FixtureRequest) -> pl.DataFrame:
    config = _config(VALUE_MODELS[request.param])
    values = config.values()
    truth = truth_table(superpopulation_means(rows=TRUTH_ROWS, chunk=200_000, cache=None, values=values), ROWS, values)
    frames = []
    for rep in range(REPS):
        log, _ = fresh_population(ROWS, 3_000_000 + rep)
        results = run_frame(config, log).overall().filter(pl.col("policy").is_in(list(CANDIDATES)))
        frames.append(results.with_columns(pl.lit(rep).alias("rep")))
    frame = pl.concat(frames)
    keys = frame.select("policy", "metric").unique()
    expected = keys.with_columns(
        truth=pl.struct("policy", "metric").map_elements(lambda r: truth[(r["policy"], r["metric"])], return_dtype=pl.Float64),
        delta_truth=pl.struct("policy", "metric").map_elements(
            lambda r: truth[(f"delta:{r['policy']}", r["metric"])], return_dtype=pl.Float64),
    )
    return frame.join(expected, on=["policy", "metric"]).with_columns(pl.lit(request.param).alias("value_model"))


# With a value model of its own, the metrics it writes or changes are checked (the others are the built-in run's
# to the digit). Its estimates of one brand's volume rest on few large payments of that brand, whose sample spread
# understates the tail as the built-in volumes' does: 0.94 over 200 populations of 30k (docs/estimation.md), 0.87
# on these 30; the deltas, which the rare-event floor read off the rows is for, cover 0.99-1.00 there and here.
OWN_METRICS = {"pricing": ("cost", "net_value", "amex_auth_volume", "cost_bps")}
OWN_ESTIMATE_COVERAGE = 0.85


@pytest.mark.parametrize("kind", ["estimate", "delta"])
def test_every_metric_covers_future_traffic(draws: pl.DataFrame, kind: str) -> None:
    low, high, truth = ("ci_low", "ci_high", "truth") if kind == "estimate" else ("delta_ci_low", "delta_ci_high", "delta_truth")
    slack = 1e-9 * (pl.col(truth).abs() + 1)  # exact numbers (action counts, zero deltas) cover up to rounding
    covered = draws.filter(pl.col(low).is_not_null()).with_columns(
        covered=(pl.col(low) - slack <= pl.col(truth)) & (pl.col(truth) <= pl.col(high) + slack))
    model = draws["value_model"][0]
    minimum = MIN_COVERAGE
    if model in OWN_METRICS:
        covered = covered.filter(pl.col("metric").is_in(OWN_METRICS[model]))
        minimum = MIN_COVERAGE if kind == "delta" else OWN_ESTIMATE_COVERAGE
    summary = covered.group_by("policy", "metric").agg(coverage=pl.col("covered").mean(), n=pl.len()).sort("coverage")
    # Only block quality may be withheld (unidentified where no explored allowed payment shows what a block hits)
    withheld = summary.filter(pl.col("n") < REPS)
    assert withheld["metric"].is_in(list(BLOCK_QUALITY)).all(), withheld
    measured = summary.filter(pl.col("n") >= REPS // 2)
    worst = measured.row(0, named=True)
    assert worst["coverage"] >= minimum, measured.head(5)


def test_a_candidate_that_only_blocks_more_never_shows_more_fraud(draws: pl.DataFrame) -> None:
    """cand_b blocks [0.3, 0.4), which production challenges: fraud, approvals and revenue can only fall."""
    rows = draws.filter((pl.col("policy") == "cand_b")
                        & pl.col("metric").is_in(["fraud_count", "fraud_volume", "fraud_loss", "authorized_count", "revenue"]))
    assert (rows["delta"] <= 1e-9).all(), rows.filter(pl.col("delta") > 1e-9).select("rep", "metric", "delta")
    assert np.isfinite(rows["delta"].to_numpy()).all()
