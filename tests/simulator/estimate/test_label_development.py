"""Issue #12: developed fraud labels against the generator's truth (eventual fraud), "exclude" for contrast.

One generated log (400k payments, a year). The oracle is the same run on the
*eventual* log (every dispute that will ever arrive, as if the extract were
taken years later) over the same rows: the same rows, propensities and
weights, so the difference between an estimate and the oracle is the error the
label treatment alone makes. "develop" must be within two standard errors of
the censoring noise (Σ w² · O · W (W − 1), W = 1 / Ĝ); "exclude" is low by the
disputes still to arrive on rows older than 90 days (~1 % of the count) and has
no noise. Measured over more seeds (develop's error in standard errors, exclude's
relative error): docs/estimation.md, "Label maturity".
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from simulator.config import parse_config
from simulator.plan.compiled import compile_plan
from simulator.schema import ACTION, AMOUNT, CREATED_AT, DISPUTED_AT, FRAUD_DISPUTE, PROPENSITY, TRANSACTION_ID
from simulator.synthetic.generate import GenerateSpec, generate
from simulator.synthetic.truth import counterfactual_log
from simulator.workflows.run import run_frame

CANDIDATE = {"name": "p", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.02, "block_above": 0.2}
FRAUD = ("fraud_count", "fraud_volume")


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame, str]:
    """The log as extracted, the eventual log of the same payments, and the as-of date."""
    out = tmp_path_factory.mktemp("labels")
    generate(GenerateSpec(rows=400_000, files=1, seed=12, exploration=0.1), out)
    as_of = json.loads((out / "generation.json").read_text())["as_of"]
    log, truth = pl.read_parquet(out / "transactions"), pl.read_parquet(out / "ground_truth")
    plan = compile_plan(_config(as_of, "develop"), log.lazy())
    parts = [counterfactual_log(log.filter(pl.col(ACTION) == a), truth, a, plan.as_of, censored=False)
             for a in plan.actions]
    arrives = pl.col(CREATED_AT) + pl.duration(days=pl.col("dispute_delay_days"))
    eventual = pl.concat(parts).sort(TRANSACTION_ID).with_columns(
        pl.when(pl.col(FRAUD_DISPUTE)).then(arrives).otherwise(None).alias(DISPUTED_AT)).select(log.columns)
    return log, eventual, as_of


def _config(as_of: str, mode: str, maturity_days: int = 90) -> object:
    return parse_config({"data": {"as_of": as_of, "immature_labels": mode, "label_maturity_days": maturity_days},
                         "policies": [CANDIDATE], "estimation": {"min_ess": 0}})


def _estimates(frame: pl.DataFrame, config: object) -> dict[tuple[str, str], float]:
    overall = run_frame(config, frame).overall()
    return {(r["policy"], r["metric"]): r["estimate"] for r in overall.iter_rows(named=True)}


def _censoring_se(log: pl.DataFrame, config: object, policy: str) -> dict[str, float]:
    """The development's own noise for a policy's fraud totals: Var(O W − F | F) = F (W − 1), estimated by O W (W − 1)."""
    plan = compile_plan(config, log.lazy())
    dev = plan.development
    w = log.select(dev.weight_expr()).to_series().to_numpy()
    observed = log[FRAUD_DISPUTE].fill_null(False).to_numpy() & (log[CREATED_AT] <= dev.cutoff).to_numpy()
    if policy == "logged":
        ipw = np.ones(log.height)
    else:
        probs = plan.policy(policy).policy.probabilities(log)
        action = log[ACTION].replace_strict({a: i for i, a in enumerate(plan.actions)}).to_numpy()
        ipw = probs[np.arange(log.height), action] / log[PROPENSITY].to_numpy()
    amount = log[AMOUNT].to_numpy()
    var = observed * w * (w - 1) * ipw**2
    return {"fraud_count": float(np.sqrt(var.sum())), "fraud_volume": float(np.sqrt((var * amount**2).sum()))}


@pytest.mark.parametrize("policy", ["logged", "p"])
def test_develop_is_unbiased_for_eventual_fraud(logs: tuple[pl.DataFrame, pl.DataFrame, str], policy: str) -> None:
    log, eventual, as_of = logs
    developed = _config(as_of, "develop")
    min_age = compile_plan(developed, log.lazy()).development.min_age_days
    estimate = _estimates(log, developed)
    oracle = _estimates(eventual, _config(as_of, "exclude", min_age))  # same rows, every dispute known
    se = _censoring_se(log, developed, policy)
    kappa = np.sqrt(compile_plan(developed, log.lazy()).development.relative_variance)  # the curve's own error
    for metric in FRAUD:
        error = estimate[policy, metric] - oracle[policy, metric]
        total_se = np.hypot(se[metric], kappa * oracle[policy, metric])
        assert abs(error) <= 2 * total_se, (policy, metric, error, total_se, oracle[policy, metric])


def test_exclude_misses_the_late_disputes(logs: tuple[pl.DataFrame, pl.DataFrame, str]) -> None:
    log, eventual, as_of = logs
    estimate = _estimates(log, _config(as_of, "exclude"))
    oracle = _estimates(eventual, _config(as_of, "exclude"))
    relative = {m: estimate["logged", m] / oracle["logged", m] - 1 for m in FRAUD}
    # exclude counts a subset of the eventual disputes on the same rows: never above, here ~1 % below
    # (volumes vary more: 0.3-2 % over seeds, as a few large late disputes are missed or not)
    assert -0.02 <= relative["fraud_count"] <= -0.004, relative
    assert relative["fraud_volume"] < 0, relative
