"""A sweep gives every grid point exactly what `run` gives that policy alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import polars.selectors as cs
import pytest

from simulator.config import parse_config
from simulator.errors import InvalidConfig, UnknownName
from simulator.config_tables import Range
from simulator.plan.grid import threshold_grid
from simulator.workflows.run import run
from simulator.workflows.sweep import SweepResult, expand_grid, sweep, sweep_config
from simulator.engine.execution import Execution
from tests.conftest import LOCAL

NUMBERS = ["estimate", "se", "ci_low", "ci_high", "baseline", "delta", "delta_se", "delta_ci_low", "delta_ci_high",
           "rows", "ess", "max_weight", "unsupported_mass"]
KEYS = ["segmentation", "segment", "metric"]


def _config(sweep_table: dict[str, Any], **estimation: Any) -> dict[str, Any]:
    return {
        "segments": {"by": [["card_country"], ["card_funding", "channel"], ["amount"]],
                     "bands": {"amount": {"edges": [0, 50, 200]}}},
        "estimation": {"bootstrap": 0, "seed": 3} | estimation,
        "sweep": sweep_table,
    }


def _alone(table: dict[str, Any], policy: dict[str, Any], path: Path) -> pl.DataFrame:
    config = {k: v for k, v in table.items() if k != "sweep"} | {"policies": [policy | {"name": "alone"}]}
    return run(parse_config(config), path, execution=LOCAL).results.filter(pl.col("policy") == "alone")


def _assert_same(point: pl.DataFrame, alone: pl.DataFrame) -> None:
    joined = alone.join(point, on=KEYS, how="full", suffix="_sweep", coalesce=True)
    assert joined.height == alone.height == point.height
    assert (joined["flag"] == joined["flag_sweep"]).all()
    assert (joined["interval"] == joined["interval_sweep"]).all()
    for column in NUMBERS:
        a = joined[column].cast(pl.Float64).to_numpy()
        b = joined[f"{column}_sweep"].cast(pl.Float64).to_numpy()
        # Prefix sums over bins reassociate the sums: allow rounding relative to the column's scale.
        # A variance that is 0 up to rounding (ε·scale²) has a root of √ε·scale, hence 1e-7.
        scale = float(np.nanmax(np.abs(a))) if np.isfinite(a).any() else 1.0
        np.testing.assert_allclose(b, a, rtol=1e-7, atol=1e-7 * scale, equal_nan=True, err_msg=column)


def _check_points(result: SweepResult, table: dict[str, Any], path: Path, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for point in rng.choice(result.points.height, size=count, replace=False):
        row = result.points.row(int(point), named=True)
        policy = {"kind": "threshold", "score": "fraud_score"}
        policy |= {k: row[k] for k in ("challenge_above", "block_above") if row[k] is not None}
        _assert_same(result.table.filter(pl.col("point") == point), _alone(table, policy, path))


@pytest.fixture(scope="module")
def data(generated: Path) -> Path:
    return generated / "transactions"


def test_every_grid_point_equals_its_own_run(data: Path) -> None:
    table = _config({"score": "fraud_score", "block_above": {"start": 0.2, "stop": 0.9, "num": 8},
                     "challenge_above": [0.01, 0.05, 0.1, 0.3]})
    result = sweep(parse_config(table), data, execution=LOCAL)
    assert result.binned and result.points.height == 8 * 4 - result.skipped
    assert result.skipped == 2  # challenge 0.3 with block 0.2 or 0.3
    assert result.table.height == result.points.height * result.table.filter(pl.col("point") == 0).height
    _check_points(result, table, data, count=4, seed=1)


def test_bootstrap_intervals_equal_those_of_run(data: Path) -> None:
    table = _config({"score": "fraud_score", "block_above": [0.3, 0.6], "challenge_above": [0.02, 0.1]},
                    bootstrap=20)
    result = sweep(parse_config(table), data, execution=LOCAL)
    assert result.table["interval"].str.contains("bootstrap").any()
    _check_points(result, table, data, count=2, seed=2)


def test_superpopulation_and_a_single_threshold(data: Path) -> None:
    table = _config({"score": "fraud_score", "block_above": [0.1, 0.5, 0.95]}, population="superpopulation",
                    bootstrap=10)
    result = sweep(parse_config(table), data, execution=LOCAL)
    assert result.table["challenge_above"].is_null().all()
    _check_points(result, table, data, count=2, seed=3)


def test_dr_estimator(data: Path) -> None:
    table = _config({"score": "fraud_score", "challenge_above": [0.02, 0.2]}, estimator="dr",
                    dr_scores=["fraud_score", "auth_score"], population="finite")
    result = sweep(parse_config(table), data, execution=LOCAL)
    _check_points(result, table, data, count=2, seed=4)


def test_a_named_baseline_policy(data: Path) -> None:
    table = _config({"score": "fraud_score", "block_above": [0.3, 0.7]}) | {
        "baseline": {"policy": "base"},
        "policies": [{"name": "base", "kind": "threshold", "score": "fraud_score", "block_above": 0.5},
                     {"name": "ignored", "kind": "threshold", "score": "fraud_score", "block_above": 0.9}],
    }
    result = sweep(parse_config(table), data, execution=LOCAL)
    rng = np.random.default_rng(5)
    for point in rng.choice(result.points.height, size=2, replace=False):
        row = result.points.row(int(point), named=True)
        config = {k: v for k, v in table.items() if k != "sweep"}
        config["policies"] = [table["policies"][0], {"name": "alone", "kind": "threshold", "score": "fraud_score",
                                                      "block_above": row["block_above"]}]
        alone = run(parse_config(config), data, execution=LOCAL).results.filter(pl.col("policy") == "alone")
        _assert_same(result.table.filter(pl.col("point") == point), alone)


def test_other_kinds_fall_back_to_one_policy_per_point(data: Path) -> None:
    rules = {"kind": "rules", "fallback": "allow",
             "rules": [{"when": "fraud_score >= {t} AND amount > {a}", "action": "block"}]}
    table = _config(rules | {"grid": {"t": [0.2, 0.5], "a": [10, 100]}})
    result = sweep(parse_config(table), data, execution=LOCAL)
    assert not result.binned and result.points.height == 4
    assert set(result.parameters) == {"t", "a"}
    row = result.points.filter((pl.col("t") == 0.5) & (pl.col("a") == 10)).row(0, named=True)
    policy = {"kind": "rules", "fallback": "allow", "rules": [{"when": "fraud_score >= 0.5 AND amount > 10", "action": "block"}]}
    point = result.table.filter(pl.col("point") == row["point"]).drop("t", "a")
    _assert_same(point, _alone(table, policy, data))


def test_grid_keys_that_are_parameters_set_them() -> None:
    settings = sweep_config(parse_config({"sweep": {"kind": "epsilon", "base": {"kind": "logged"},
                                                    "grid": {"epsilon": {"start": 0.0, "stop": 0.1, "num": 3}}}}))
    points, tables = expand_grid(settings)
    assert points["epsilon"].to_list() == pytest.approx([0.0, 0.05, 0.1])
    assert tables[1] == {"kind": "epsilon", "base": {"kind": "logged"}, "epsilon": pytest.approx(0.05)}


def test_threshold_grid_bins() -> None:
    grid = threshold_grid("s", (0.2, 0.4), (0.4, 0.8), ("allow", "challenge", "block"), "sweep")
    assert grid.points == 3 and grid.skipped == 1  # (challenge 0.4, block 0.4) is not a policy
    assert grid.edges.tolist() == [0.2, 0.4, 0.8]
    lo, hi = grid.ranges(("allow", "challenge", "block"))
    # point 0: challenge >= 0.2, block >= 0.4 -> allow bin 0, challenge bin 1, block bins 2..3
    assert lo[0].tolist() == [0, 1, 2] and hi[0].tolist() == [1, 2, 4]
    assert Range(start=0.1, stop=0.3, num=3).values() == pytest.approx((0.1, 0.2, 0.3))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "no \\[sweep\\] table"),
        ({"sweep": {"block_above": [0.5]}}, "needs the score column"),
        ({"sweep": {"score": "fraud_score"}}, "needs block_above and/or challenge_above"),
        ({"sweep": {"score": "fraud_score", "block_above": [1.5]}}, "in \\[0, 1\\]"),
        ({"sweep": {"score": "fraud_score", "block_above": {"start": 0.9, "stop": 0.1, "num": 3}}}, "must be >= start"),
        ({"sweep": {"score": "fraud_score", "block_above": [0.2], "challenge_above": [0.5]}}, "no grid point"),
        ({"sweep": {"kind": "rules"}}, "needs a \\[sweep.grid\\]"),
    ],
)
def test_config_errors(data: Path, table: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        sweep(parse_config(table), data, execution=LOCAL)


def test_unknown_score_column(data: Path) -> None:
    with pytest.raises(UnknownName, match="risk_score"):
        sweep(parse_config({"sweep": {"score": "risk_score", "block_above": [0.5]}}), data, execution=LOCAL)


def test_ray_engine_gives_the_local_results(ray_cluster, data: Path) -> None:
    table = _config({"score": "fraud_score", "block_above": [0.3, 0.6], "challenge_above": [0.02, 0.1]}, bootstrap=10)
    table["segments"]["top_k"] = {"card_country": 4}
    config = parse_config(table)
    local = sweep(config, data, execution=Execution(engine="local", shard_rows=5_000))
    remote = sweep(config, data, execution=Execution(engine="ray", shard_rows=5_000))
    assert remote.engine.startswith("ray")
    keys = ["point", "segmentation", "segment", "metric"]
    a, b = local.table.sort(keys), remote.table.sort(keys)
    assert a.select(*keys, "flag", "interval").equals(b.select(*keys, "flag", "interval"))
    for column in NUMBERS:
        np.testing.assert_allclose(b[column].cast(pl.Float64).to_numpy(), a[column].cast(pl.Float64).to_numpy(),
                                   rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=column)


def test_observed_support_without_logging_probabilities(data: Path, tmp_path: Path) -> None:
    frame = pl.read_parquet(data)
    frame.drop([c for c in frame.columns if c.startswith("logging_prob_")]).write_parquet(tmp_path / "observed.parquet")
    table = _config({"score": "fraud_score", "block_above": [0.1, 0.5], "challenge_above": [0.01, 0.05]})
    table["segments"] = {"by": [["card_country"], ["card_funding", "channel"]]}
    result = sweep(parse_config(table), tmp_path / "observed.parquet", execution=LOCAL)
    _check_points(result, table, tmp_path / "observed.parquet", count=2, seed=6)


def test_support_from_rows_logged_with_propensity_one(data: Path, tmp_path: Path) -> None:
    # Without logging_prob columns, rows logged with propensity 1 explored nothing else: the grid's
    # unsupported mass (and every other number) equals run's for each point.
    frame = pl.read_parquet(data).drop(cs.starts_with("logging_prob_"))
    certain = pl.col("fraud_score") > 0.6
    frame.with_columns(propensity=pl.when(certain).then(1.0).otherwise(pl.col("propensity")),
                       action=pl.when(certain).then(pl.lit("block")).otherwise(pl.col("action")),
                       authorized=pl.when(certain).then(None).otherwise(pl.col("authorized")),
                       fraud_dispute=pl.when(certain).then(None).otherwise(pl.col("fraud_dispute")),
                       dispute_lost=pl.when(certain).then(None).otherwise(pl.col("dispute_lost")),
                       disputed_at=pl.when(certain).then(None).otherwise(pl.col("disputed_at")),
                       ).write_parquet(tmp_path / "certain.parquet")
    table = _config({"score": "fraud_score", "block_above": [0.5, 0.9], "challenge_above": [0.01, 0.05]})
    table["segments"] = {"by": [["card_country"]]}
    result = sweep(parse_config(table), tmp_path / "certain.parquet", execution=LOCAL)
    overall = result.table.filter((pl.col("segment") == "ALL") & (pl.col("metric") == "attempts"))
    lax = overall.filter(pl.col("block_above") == 0.9)["unsupported_mass"]
    assert (lax > 0).all()  # allowing or challenging rows that were always blocked
    _check_points(result, table, tmp_path / "certain.parquet", count=2, seed=7)
