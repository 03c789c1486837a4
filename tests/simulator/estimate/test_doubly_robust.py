"""The cross-fitted DR estimator: its superpopulation variance is that of the per-row DR scores, it does
not depend on sharding, and on generated data it is unbiased with intervals that cover the truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulator.config import parse_config
from simulator.engine.execution import Execution
from simulator.model.direct import model_keys
from simulator.plan.compiled import compile_plan
from simulator.synthetic.generate import GenerateSpec, generate
from simulator.synthetic.truth import relog, true_totals
from simulator.workflows.run import run, run_frame
from tests.conftest import LOCAL

STRICT = {"name": "strict", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.02, "block_above": 0.3}
EXPLORE = {"name": "explore", "kind": "epsilon", "epsilon": 0.1,  # per-row weights: the direct method's own mix per row
           "base": {"kind": "threshold", "score": "fraud_score", "block_above": 0.5}}
NUMBERS = ["estimate", "se", "ci_low", "ci_high", "delta", "delta_se", "delta_ci_low", "delta_ci_high", "ess"]


def _config(population: str, **estimation: object) -> dict:
    return {"segments": {"by": [["card_country"]]}, "policies": [STRICT, EXPLORE],
            "estimation": {"estimator": "dr", "population": population, "min_ess": 0, "dr_bins": 40} | estimation}


def _split(frame: pl.DataFrame, parts: int, directory: Path, seed: int) -> Path:
    directory.mkdir()
    shuffled = frame.sample(fraction=1.0, shuffle=True, seed=seed)
    for i, chunk in enumerate(np.array_split(np.arange(shuffled.height), parts)):
        shuffled[chunk.tolist()].write_parquet(directory / f"part-{i}.parquet")
    return directory


@pytest.mark.parametrize("population", ["superpopulation", "finite"])
def test_shards_batches_and_row_order_do_not_change_dr_results(generated: Path, tmp_path: Path, population: str) -> None:
    frame = pl.read_parquet(generated / "transactions")
    whole = tmp_path / "whole.parquet"
    frame.write_parquet(whole)
    config = parse_config(_config(population))

    def results(path: Path, execution: Execution) -> pl.DataFrame:
        return run(config, path, execution=execution).results.sort(["policy", "segmentation", "segment", "metric"])

    expected = results(whole, LOCAL)
    assert expected.filter(pl.col("policy") == "strict")["se"].drop_nulls().is_finite().all()
    for got in (results(_split(frame, 5, tmp_path / "split", seed=3), LOCAL),
                results(whole, Execution(engine="local", shard_rows=7_000))):
        assert got.select("policy", "segment", "metric", "flag").equals(expected.select("policy", "segment", "metric", "flag"))
        for column in NUMBERS:
            a, b = got[column].to_numpy().astype(float), expected[column].to_numpy().astype(float)
            scale = float(np.nanmax(np.abs(b))) if np.isfinite(b).any() else 1.0  # sums reassociate across shards
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12 * scale, equal_nan=True, err_msg=column)


def _scores(frame: pl.DataFrame, plan, policy: str, value: str) -> np.ndarray:  # noqa: ANN001
    """ψ_i = Σ_a π(a|x_i) m̂(x_i, a) + w_i (y_i − m̂(x_i, a_i)), straight from the rows."""
    predicted = plan.direct.predictions(model_keys(frame, plan.direct), value)  # (rows, actions)
    probs = plan.policy(policy).policy.probabilities(frame)
    logged = frame["action"].cast(pl.String).replace_strict({a: i for i, a in enumerate(plan.actions)}, return_dtype=pl.Int64).to_numpy()
    rows = np.arange(frame.height)
    weight = probs[rows, logged] / frame["propensity"].to_numpy()
    y = frame[value].fill_null(False).cast(pl.Float64).to_numpy()
    return (probs * predicted).sum(axis=1) + weight * (y - predicted[rows, logged])


def test_superpopulation_variance_is_that_of_the_per_row_dr_scores(generated: Path) -> None:
    frame = pl.read_parquet(generated / "transactions").head(10_000)
    config = parse_config(_config("superpopulation") | {"segments": {}})
    plan = compile_plan(config, frame.lazy())
    results = run_frame(config, frame).overall()
    got = results.filter((pl.col("policy") == "strict") & (pl.col("metric") == "authorized_count")).row(0, named=True)
    psi = _scores(frame, plan, "strict", "authorized")
    base = _scores(frame, plan, "production", "authorized")
    # T̂ = Σ ψ; Var(T̂) = Σ (ψ_i − T̂/n)²; the paired delta's from ψ_cand − ψ_base
    assert got["estimate"] == pytest.approx(psi.sum(), rel=1e-9)
    assert got["se"] ** 2 == pytest.approx(((psi - psi.mean()) ** 2).sum(), rel=1e-6)
    assert got["delta"] == pytest.approx(psi.sum() - base.sum(), rel=1e-9)
    diff = psi - base
    assert got["delta_se"] ** 2 == pytest.approx(((diff - diff.mean()) ** 2).sum(), rel=1e-6)


RELOGS = 30
CANDIDATE = {"name": "p", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.02, "block_above": 0.2}


@pytest.fixture(scope="module")
def relogged(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """DR (dr_bins = 100, the default superpopulation intervals) on 30 re-drawn logs of 20k generated payments."""
    out = tmp_path_factory.mktemp("dr_truth")
    generate(GenerateSpec(rows=20_000, files=1, seed=99, exploration=0.1), out)
    as_of = json.loads((out / "generation.json").read_text())["as_of"]
    log, truth = pl.read_parquet(out / "transactions"), pl.read_parquet(out / "ground_truth")
    # labels as the truth counts them (developed labels are checked in test_label_development)
    config = parse_config({"data": {"as_of": as_of, "immature_labels": "exclude"}, "policies": [CANDIDATE],
                           "estimation": {"estimator": "dr", "min_ess": 0, "dr_bins": 100}})
    plan = compile_plan(config, log.lazy())
    expected = true_totals(config, log, truth).filter((pl.col("segment") == "ALL") & (pl.col("policy") == "p"))
    frames = [run_frame(config, relog(log, truth, seed, plan.as_of, plan.actions)).overall().join(
        expected, on=["policy", "segment", "metric"]) for seed in range(RELOGS)]
    return pl.concat(frames).with_columns(
        covered=(pl.col("ci_low") <= pl.col("truth")) & (pl.col("truth") <= pl.col("ci_high")),
        error=pl.col("estimate") - pl.col("truth"),
    )


def _bias(relogged: pl.DataFrame, metric: str) -> tuple[float, float]:
    """Mean error over the relogs and its standard error."""
    error = relogged.filter(pl.col("metric") == metric)["error"].to_numpy()
    return float(error.mean()), float(error.std(ddof=1) / np.sqrt(len(error)))


def test_cross_fitted_dr_is_unbiased_on_rare_fraud(relogged: pl.DataFrame) -> None:
    """With 100 bins an in-sample model pulled rare fraud metrics by up to 17 standard errors of the mean."""
    bias, standard_error = _bias(relogged, "fraud_count")
    assert abs(bias) < 1.0 * standard_error, (bias, standard_error)  # measured on these seeds: 0.3 standard errors
    for metric in ["blocked_fraud_count", "fraud_volume", "authorized_count", "net_value"]:
        bias, standard_error = _bias(relogged, metric)
        # measured: −0.2, 0.4, 1.3 and 0.2 standard errors; 2.5 leaves room for a one-in-eighty draw of an
        # unbiased estimator, not for the old pull. (fraud_loss is left out: on this population one unexplored
        # loss sits in the truth and IPW misses it by the same 17 standard errors of its tiny spread.)
        assert abs(bias) < 2.5 * standard_error, (metric, bias, standard_error)


@pytest.mark.parametrize("metric", ["fraud_count", "fraud_loss", "authorized_count", "net_value"])
def test_cross_fitted_dr_intervals_cover_the_truth(relogged: pl.DataFrame, metric: str) -> None:
    """Superpopulation intervals are wider than a fixed population's spread, so they cover it at least nominally."""
    covered = relogged.filter(pl.col("metric") == metric)["covered"].mean()
    assert covered >= 0.9, (metric, covered)

