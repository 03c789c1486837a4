"""Every registered estimator honours the estimation contract (SPEC §5, STYLE §8).

Parametrized over the estimator registry, as tests/policies/test_conformance.py is over the policy
registry: a new estimator runs through every check below as soon as it is registered. What it
needs comes from its declared capabilities (`register_estimator(..., outcome_model=True)`): an
estimator with an outcome model is not a function of the weights alone, and (for now) has
finite-population intervals only.

- exactness on the logging policy: a `logged` candidate has deltas of exactly 0 and the observed
  totals as estimates; a candidate equal to the logging distribution has weights of 1;
- unbiasedness on generated data with a known truth: the mean over relogs is within a few
  standard errors of the true counterfactual counts;
- shard-merge invariance: one shard or many, the same results within 1e-9 relative;
- a threshold sweep's grid point equals `run` of that threshold policy alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from simulator import parse_config, run, run_frame, sweep
from simulator.config import RunConfig
from simulator.engine.execution import Execution
from simulator.estimate.estimators import estimator_kind, known_estimators
from simulator.model.value import RATIO_METRICS, SUM_METRICS, VALUES, Weighting
from simulator.plan.compiled import compile_plan
from simulator.synthetic.generate import GenerateSpec, generate
from simulator.schema import logging_prob_column
from simulator.synthetic.truth import counterfactual_log, relog, true_totals
from tests.factories import BLOCK_ABOVE, CHALLENGE_ABOVE, EXPLORATION, make_transactions
from tests.simulator.workflows.test_sweep import _assert_same


def registered_estimators() -> list[str]:
    """Every registered estimator's name."""
    return sorted(known_estimators())


def run_local(config: RunConfig, path: Path, *, shard_rows: int) -> pl.DataFrame:
    """`run` on the local engine with shards of about `shard_rows` rows."""
    return run(config, path, execution=Execution(engine="local", shard_rows=shard_rows)).results


def sweep_local(config: RunConfig, path: Path) -> pl.DataFrame:
    """`sweep` on the local engine: the one call of `sweep` in this file (see `run_local`)."""
    return sweep(config, path, execution=Execution(engine="local")).table


# What each estimator needs from the config (DR has no superpopulation intervals yet).
REQUIRES: dict[str, dict[str, Any]] = {
    name: {"population": "finite"} for name in known_estimators() if estimator_kind(name).outcome_model
}
POPULATIONS = ("finite", "superpopulation")
# Whether the estimate is Σ weight · value alone (so a weight of 1 reproduces the observed totals exactly).
# DR adds a direct-method correction that is zero only in expectation.
# Estimators that are functions of the weights alone: DR adds an outcome model, stratified SNIPW scales each
# stratum's Hájek mean by the stratum's expected size Σ π(c|x), not by its logged count.
WEIGHT_ONLY: dict[str, bool] = {name: not (estimator_kind(name).outcome_model or estimator_kind(name).stratified)
                                for name in known_estimators()}
NUMBERS = ["estimate", "se", "ci_low", "ci_high", "baseline", "delta", "delta_se", "delta_ci_low", "delta_ci_high",
           "rows", "ess", "max_weight", "unsupported_mass"]
KEYS = ["policy", "segmentation", "segment", "metric"]
SEGMENTS = {"by": [["card_country"], ["card_funding", "channel"]]}
LOGGING_EQUIVALENT = {  # the factory's logging policy, as a candidate: threshold mixed with uniform exploration
    "name": "equivalent", "kind": "epsilon", "epsilon": EXPLORATION,
    "base": {"kind": "threshold", "score": "fraud_score", "challenge_above": CHALLENGE_ABOVE, "block_above": BLOCK_ABOVE},
}
CANDIDATES = [
    {"name": "strict", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.3, "block_above": 0.6},
    {"name": "rules", "kind": "rules", "fallback": "allow",
     "rules": [{"when": "amount > 150 AND fraud_score > 0.4", "action": "block"}]},
    {"name": "share", "kind": "python", "object": "tests.policies.example_user_policy:BlockShareByAuthScore"},
]


def _cases() -> list[Any]:
    """(estimator, population) for every registered estimator and every population it supports."""
    cases = []
    for name in registered_estimators():
        fixed = REQUIRES.get(name, {}).get("population")
        cases += [pytest.param(name, p, id=f"{name}-{p}") for p in POPULATIONS if fixed in (None, p)]
    return cases


def _estimation(name: str, population: str | None = None, **extra: Any) -> dict[str, Any]:
    table = {"estimator": name, "min_ess": 0.0} | REQUIRES.get(name, {}) | extra
    return table | ({"population": population} if population else {})


def test_the_spec_estimators_are_registered_with_their_capabilities() -> None:
    names = registered_estimators()
    assert {"ipw", "snipw", "dr"} <= set(names)  # SPEC §5
    assert [n for n in names if estimator_kind(n).outcome_model] == ["dr"]


# -- exactness on the logging policy ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return make_transactions(n=800, seed=7)


def _observed(config: RunConfig, frame: pl.DataFrame, plan: Any) -> dict[str, float]:
    """Observed totals of the log: Σ over rows of each TARGET sum metric's value (fraud developed as the
    plan says), and their ratios."""
    develop = None if plan.development is None else plan.development.weight_expr()
    values = plan.values.evaluate(frame, plan.cutoff, develop=develop).to_numpy().sum(axis=0)
    sums = {v: float(values[i]) for i, v in enumerate(VALUES)}
    out = {m.name: sums[m.value] for m in SUM_METRICS if m.weighting is Weighting.TARGET}
    for ratio in RATIO_METRICS:
        num, den = ratio.numerator, ratio.denominator
        if num.weighting is Weighting.TARGET and den.weighting is Weighting.TARGET and sums[den.value]:
            out[ratio.name] = sums[num.value] / sums[den.value] * (10_000.0 if ratio.name.endswith("_bps") else 1.0)
    return out


def _defined(results: pl.DataFrame, baseline: str, policy: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The baseline's and the policy's rows, aligned, where the estimate is defined (the same rows for both).

    An estimate over no rows (a ratio whose denominator is 0 in a small segment) is null for both.
    """
    base, candidate = (results.filter(pl.col("policy") == p).sort(KEYS[1:]) for p in (baseline, policy))
    assert candidate.height == base.height > 0
    assert candidate.select(KEYS[1:]).equals(base.select(KEYS[1:]))
    assert candidate["estimate"].is_null().equals(base["estimate"].is_null())
    defined = candidate["estimate"].is_not_null()
    assert defined.mean() > 0.9
    return base.filter(defined), candidate.filter(defined)


@pytest.mark.parametrize(("name", "population"), _cases())
def test_a_logged_candidate_is_exact(frame: pl.DataFrame, name: str, population: str) -> None:
    same = {"name": "same", "kind": "logged"}
    config = parse_config({"segments": SEGMENTS, "policies": [same], "estimation": _estimation(name, population),
                           "baseline": {"policy": "logged"}})
    result = run_frame(config, frame)
    results = result.results
    logged, candidate = _defined(results, "logged", "same")
    # the same policy as the baseline, row by row: paired deltas are exactly 0 in every segment
    assert (candidate["delta"] == 0.0).all() and (logged["delta"] == 0.0).all()
    assert candidate["estimate"].equals(logged["estimate"])
    assert (candidate["max_weight"] == 1.0).all()  # weight π(a|x)/propensity = 1
    scale = np.maximum(np.abs(candidate["estimate"].to_numpy()), 1.0)
    assert (candidate["delta_se"].to_numpy() <= 1e-6 * scale).all()  # 0 up to rounding of Σ(z_a − z_b)²
    # and the estimates are the observed totals (sum metrics over the log, ratios of them)
    observed = _observed(config, frame, result.plan)
    overall = candidate.filter(pl.col("segment") == "ALL")
    got = dict(zip(overall["metric"], overall["estimate"], strict=True))
    assert got["attempts"] == frame.height
    assert got["blocked_count"] == (frame["action"] == "block").sum()
    assert got["authorized_count"] == frame["authorized"].sum()
    for metric, value in observed.items():
        assert got[metric] == pytest.approx(value, rel=1e-12, abs=1e-9), metric


@pytest.mark.parametrize(("name", "population"), _cases())
def test_a_candidate_equal_to_the_logging_distribution_has_weight_one(frame: pl.DataFrame, name: str,
                                                                      population: str) -> None:
    if not WEIGHT_ONLY[name]:
        pytest.skip(f"{name} is not a function of the weights alone: its correction is zero only in expectation")
    config = parse_config({"segments": SEGMENTS, "policies": [LOGGING_EQUIVALENT],
                           "estimation": _estimation(name, population), "baseline": {"policy": "logged"}})
    results = run_frame(config, frame).results
    logged, candidate = _defined(results, "logged", "equivalent")
    # π(a|x) = 0.9·[a = threshold's] + 0.1/3 = the logged propensity, so every weight is 1 up to rounding
    np.testing.assert_allclose(candidate["max_weight"].to_numpy(), 1.0, rtol=1e-12)
    estimate, base = candidate["estimate"].to_numpy(), logged["estimate"].to_numpy()
    np.testing.assert_allclose(estimate, base, rtol=1e-9, atol=1e-9)
    scale = np.maximum(np.abs(base), 1.0)
    assert (np.abs(candidate["delta"].to_numpy()) <= 1e-9 * scale).all()


PRODUCTION_THRESHOLDS = {  # the factory's logging policy without its exploration
    "name": "thresholds", "kind": "threshold", "score": "fraud_score", "challenge_above": CHALLENGE_ABOVE,
    "block_above": BLOCK_ABOVE,
}


@pytest.mark.parametrize(("name", "population"), _cases())
def test_a_candidate_identical_to_production_has_every_delta_exactly_zero(frame: pl.DataFrame, name: str,
                                                                          population: str) -> None:
    # production (the default baseline) takes the logging policy's most likely action: the factory's thresholds
    copy = {"name": "copy", "kind": "production"}
    config = parse_config({"segments": SEGMENTS, "policies": [copy, PRODUCTION_THRESHOLDS],
                           "estimation": _estimation(name, population)})
    result = run_frame(config, frame)
    assert result.plan.baseline == "production"
    assert not [w for w in result.plan.warnings if not w.startswith(f"estimator {name!r}")]  # only the estimator's note
    results = result.results.sort(KEYS[1:])
    production = results.filter(pl.col("policy") == "production")
    for policy in ("copy", "thresholds"):
        candidate = results.filter(pl.col("policy") == policy)
        assert candidate["estimate"].equals(production["estimate"]), policy  # nulls (unidentified) alike
        assert candidate["delta"].drop_nulls().len() > 0.6 * candidate.height, policy  # block quality is often unidentified in small segments
        assert (candidate["delta"].drop_nulls() == 0.0).all(), policy


# -- unbiasedness on generated data with a known truth ---------------------------------------------------------------


COUNTS = ["attempts", "authorized_count", "challenged_count", "blocked_count"]
# fraud_count is too rare on 4 000 payments (a handful of frauds, one of them behind a 1-in-15 logging draw):
# 30 relogs miss it often enough to look biased, so rare and money metrics run on a larger log (slow).
RARE_AND_MONEY = ["fraud_count", "authorized_volume", "revenue", "cost", "net_value"]
TRUTH_CANDIDATE = {"name": "p", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.02,
                   "block_above": 0.2}


Population = tuple[pl.DataFrame, pl.DataFrame, Any]  # the log, its ground truth, its as-of date


def _generated(out: Path, rows: int) -> Population:
    """A generated log with every action's outcome (its ground truth) and its as-of date."""
    generate(GenerateSpec(rows=rows, files=1, seed=21, exploration=0.2), out)
    as_of = json.loads((out / "generation.json").read_text())["as_of"]
    return pl.read_parquet(out / "transactions"), pl.read_parquet(out / "ground_truth"), as_of


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Population:
    return _generated(tmp_path_factory.mktemp("truth"), 4_000)


@pytest.fixture(scope="module")
def large_population(tmp_path_factory: pytest.TempPathFactory) -> Population:
    return _generated(tmp_path_factory.mktemp("truth-large"), 20_000)


def _ipw_sd(config: RunConfig, population: Population, plan: Any, metrics: list[str]) -> pl.DataFrame:
    """The exact sd of the IPW estimate over relogs, from the ground truth: rows are drawn independently, so
    Var = Σ_i [Σ_a π_i(a)² y_i(a)² / μ_i(a) − (Σ_a π_i(a) y_i(a))²]. (SNIPW and DR are at most about as variable.)
    """
    log, truth, _ = population
    pi = plan.policy("p").policy.probabilities(log)
    mu = log.select([logging_prob_column(a) for a in plan.actions]).to_numpy()
    by_name = {m.name: m for m in SUM_METRICS}
    columns = [VALUES.index(by_name[m].value) for m in metrics]
    y = np.stack([plan.values.evaluate(counterfactual_log(log, truth, a, plan.as_of, plan.development is None),
                                       plan.cutoff).to_numpy()[:, columns] for a in plan.actions], axis=1)  # (rows, actions, metrics)
    second = (pi[:, :, None] ** 2 * y**2 / mu[:, :, None]).sum(axis=1)
    first = (pi[:, :, None] * y).sum(axis=1)
    return pl.DataFrame({"metric": metrics, "ipw_sd": np.sqrt((second - first**2).sum(axis=0))})


def _relogged_errors(population: Population, name: str, relogs: int,
                     metrics: list[str]) -> pl.DataFrame:
    """Estimate − truth of `metrics` (segment ALL) over `relogs` redraws of the logging policy's actions."""
    log, truth, as_of = population
    config = parse_config({"data": {"as_of": as_of}, "policies": [TRUTH_CANDIDATE],
                           "estimation": _estimation(name, "finite")})
    expected = true_totals(config, log, truth).filter(pl.col("segment") == "ALL")
    plan = compile_plan(config, log.lazy())  # the plan a run compiles, without running it once more
    expected = expected.join(_ipw_sd(config, population, plan, metrics), on="metric")
    frames = []
    for seed in range(relogs):
        results = run_frame(config, relog(log, truth, seed, plan.as_of, plan.actions)).overall()
        frames.append(results.filter(pl.col("policy") == "p", pl.col("metric").is_in(metrics)))
    return pl.concat(frames).join(expected, on=["policy", "segment", "metric"]).with_columns(
        error=pl.col("estimate") - pl.col("truth"))


def _assert_unbiased(errors: pl.DataFrame, name: str, relogs: int, z: float) -> None:
    summary = errors.group_by("metric").agg(bias=pl.col("error").mean(), sd=pl.col("error").std(),
                                            ipw_sd=pl.col("ipw_sd").first(), truth=pl.col("truth").first())
    for row in summary.iter_rows(named=True):
        # The mean of `relogs` independent draws is within z standard errors of the truth. A rare count's
        # estimates are skewed (a few draws carry large weights), so the sample sd of a few dozen draws
        # understates the spread: the sd is the larger of it and the exact IPW sd. An estimator exact for a
        # metric (DR for action counts) has sd 0 and must then hit the truth up to rounding.
        sd = row["sd"] if not WEIGHT_ONLY[name] and row["sd"] < 1e-9 * (abs(row["truth"]) + 1) else \
            max(row["sd"], row["ipw_sd"])
        tolerance = z * sd / np.sqrt(relogs) + 1e-9 * (abs(row["truth"]) + 1.0)
        assert abs(row["bias"]) <= tolerance, row


@pytest.mark.parametrize("name", registered_estimators())
def test_unbiased_for_counts_on_known_data(population: Population, name: str) -> None:
    relogs = 30
    _assert_unbiased(_relogged_errors(population, name, relogs, COUNTS), name, relogs, z=4.0)


@pytest.mark.slow
@pytest.mark.parametrize("name", registered_estimators())
def test_unbiased_for_rare_and_money_metrics(large_population: Population, name: str) -> None:
    relogs = 40
    _assert_unbiased(_relogged_errors(large_population, name, relogs, COUNTS + RARE_AND_MONEY), name, relogs,
                     z=4.0)


# -- shard-merge invariance -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 000 factory rows in two Parquet files of 250-row groups: 8 shards of 250 rows, or one of everything."""
    out = tmp_path_factory.mktemp("shards")
    frame = make_transactions(n=2_000, seed=13)
    for i, part in enumerate((frame.head(1_000), frame.tail(1_000))):
        part.write_parquet(out / f"part-{i}.parquet", row_group_size=250)
    return out


def _same_results(a: pl.DataFrame, b: pl.DataFrame, rtol: float) -> None:
    a, b = a.sort(KEYS), b.sort(KEYS)
    assert a.select(KEYS + ["flag", "interval"]).equals(b.select(KEYS + ["flag", "interval"]))
    for column in NUMBERS:
        x, y = a[column].cast(pl.Float64).to_numpy(), b[column].cast(pl.Float64).to_numpy()
        scale = float(np.nanmax(np.abs(y))) if np.isfinite(y).any() else 1.0
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-12 * scale, equal_nan=True, err_msg=column)


@pytest.mark.parametrize(("name", "population"), _cases())
def test_one_shard_or_many_give_the_same_results(dataset: Path, name: str, population: str) -> None:
    config = parse_config({"segments": SEGMENTS, "policies": CANDIDATES,
                           "estimation": _estimation(name, population, bootstrap=10, seed=5)})
    many = run_local(config, dataset, shard_rows=250)
    one = run_local(config, dataset, shard_rows=10_000)
    _same_results(many, one, rtol=1e-9)


# -- a grid point equals its run --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "population"), _cases())
def test_a_grid_point_equals_its_threshold_policy_run_alone(dataset: Path, name: str, population: str) -> None:
    estimation = _estimation(name, population, bootstrap=0, seed=3)
    table = {"segments": SEGMENTS, "estimation": estimation,
             "sweep": {"score": "fraud_score", "challenge_above": [0.1, 0.4], "block_above": [0.5, 0.8]}}
    swept = sweep_local(parse_config(table), dataset)
    assert swept["point"].n_unique() == 4
    for point in (0, 3):
        row = swept.filter(pl.col("point") == point).row(0, named=True)
        policy = {"name": "alone", "kind": "threshold", "score": "fraud_score",
                  "challenge_above": row["challenge_above"], "block_above": row["block_above"]}
        alone = run_local(parse_config({k: v for k, v in table.items() if k != "sweep"} | {"policies": [policy]}),
                          dataset, shard_rows=10_000).filter(pl.col("policy") == "alone")
        _assert_same(swept.filter(pl.col("point") == point), alone)


@pytest.mark.parametrize("name", known_estimators())
def test_every_output_warns_when_the_estimator_is_not_the_measured_default(frame: pl.DataFrame, name: str) -> None:
    config = parse_config({"policies": [PRODUCTION_THRESHOLDS], "estimation": {"estimator": name}})
    warnings = run_frame(config, frame).plan.warnings
    measured = estimator_kind(name).stratified
    assert any(w.startswith(f"estimator {name!r}") and "docs/estimation.md" in w for w in warnings) != measured
