"""The engine's results do not depend on how rows are split into shards or ordered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulator.config import parse_config
from simulator.workflows.run import run
from tests.conftest import LOCAL

CONFIG = {
    "segments": {"by": [["card_country"], ["card_funding", "channel"], ["amount"]], "bands": {"amount": {"edges": [0, 50, 200]}}},
    "estimation": {"bootstrap": 30, "seed": 5},
    "policies": [
        {"name": "strict", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.02, "block_above": 0.3},
        {"name": "explore", "kind": "epsilon", "epsilon": 0.1,
         "base": {"kind": "threshold", "score": "fraud_score", "block_above": 0.5}},
        {"name": "rules", "kind": "rules", "fallback": "allow",
         "rules": [{"when": "amount > 500 AND fraud_score > 0.1", "action": "block"},
                   {"when": "card_funding = 'prepaid'", "action": "challenge"}]},
    ],
}
NUMBERS = ["estimate", "ci_low", "ci_high", "delta", "delta_ci_low", "delta_ci_high", "se", "delta_se", "ess"]


def _split(frame: pl.DataFrame, parts: int, directory: Path, seed: int) -> Path:
    directory.mkdir()
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
    for i, chunk in enumerate(np.array_split(np.arange(shuffled.height), parts)):
        shuffled[chunk.tolist()].write_parquet(directory / f"part-{i}.parquet")
    return directory


def _results(path: Path) -> pl.DataFrame:
    return run(parse_config(CONFIG), path, execution=LOCAL).results.sort(["policy", "segmentation", "segment", "metric"])


@pytest.fixture(scope="module")
def whole(generated: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    frame = pl.read_parquet(generated / "transactions")
    path = generated / "whole.parquet"
    frame.write_parquet(path)
    return frame, _results(path)


@pytest.mark.parametrize("parts", [3, 7])
def test_shards_and_row_order_do_not_change_results(whole, tmp_path: Path, parts: int) -> None:
    frame, expected = whole
    got = _results(_split(frame, parts, tmp_path / f"split{parts}", seed=parts))
    assert got.select("policy", "segment", "metric", "flag").equals(expected.select("policy", "segment", "metric", "flag"))
    for column in NUMBERS:
        a, b = got[column].to_numpy().astype(float), expected[column].to_numpy().astype(float)
        # sums are reassociated across shards: allow rounding relative to the largest magnitude
        scale = float(np.nanmax(np.abs(b))) if np.isfinite(b).any() else 1.0
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * scale, equal_nan=True, err_msg=column)


def test_the_baseline_has_zero_delta(whole) -> None:
    _, results = whole
    baseline = results.filter(pl.col("policy") == "production")  # the default baseline on data with logging_prob columns
    assert baseline.height > 0
    assert (baseline["delta"].drop_nulls() == 0.0).all()
    assert (baseline["delta_ci_low"].drop_nulls() == 0.0).all() and (baseline["delta_ci_high"].drop_nulls() == 0.0).all()


def test_segments_add_up_to_all(whole) -> None:
    """Segments partition rows: per segmentation, IPW-type totals of sum metrics add up to ALL."""
    _, results = whole
    sums = results.filter(pl.col("metric").is_in(["attempts", "blocked_count"]) & (pl.col("policy") == "logged"))
    overall = sums.filter(pl.col("segment") == "ALL").select("metric", total="estimate")
    by_segmentation = sums.filter(pl.col("segment") != "ALL").group_by("segmentation", "metric").agg(pl.col("estimate").sum())
    joined = by_segmentation.join(overall, on="metric")
    np.testing.assert_allclose(joined["estimate"].to_numpy(), joined["total"].to_numpy(), rtol=1e-12)


def test_per_row_path_matches_unit_path(whole) -> None:
    """A policy with per-row weights makes every row its own unit; shared results must not move."""
    frame, expected = whole
    extra = {"name": "random", "kind": "python",
             "object": "tests.policies.example_user_policy:BlockShareByAuthScore", "params": {}}
    config = parse_config(CONFIG | {"policies": [*CONFIG["policies"], extra], "estimation": {"bootstrap": 0}})
    unit_path = _results_frame(parse_config(CONFIG | {"estimation": {"bootstrap": 0}}), frame)
    row_path = _results_frame(config, frame).filter(pl.col("policy") != "random")
    assert row_path.select("policy", "segment", "metric").equals(unit_path.select("policy", "segment", "metric"))
    for column in NUMBERS:
        a, b = row_path[column].to_numpy().astype(float), unit_path[column].to_numpy().astype(float)
        scale = float(np.nanmax(np.abs(b))) if np.isfinite(b).any() else 1.0
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * scale, equal_nan=True, err_msg=column)


def _results_frame(config, frame: pl.DataFrame) -> pl.DataFrame:
    from simulator.workflows.run import run_frame

    return run_frame(config, frame).results.sort(["policy", "segmentation", "segment", "metric"])
