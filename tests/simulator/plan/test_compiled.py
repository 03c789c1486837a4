"""`compile_plan`: policies built in order, the as-of date and label cutoff, the columns a shard reads,
coded versus per-row policies, and the DR outcome model (simulator/plan/compiled.py)."""

from __future__ import annotations

import dataclasses
import pickle
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest

from simulator.config import parse_config
from simulator.errors import InvalidConfig, InvalidData, UnknownName
from simulator.plan.compiled import BASE_COLUMNS, Plan, compile_plan, data_as_of
from tests.simulator.plan.test_moments import LOGGING_PROBS, MIXED, ROWS, SHARE, STRICT

# ROWS (see test_moments.py): four payments created 2026-01-01, no disputed_at column.
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
BASE = {"transaction_id", "created_at", "amount", "action", "propensity", "authorized", "fraud_dispute", "dispute_lost"}


def compiled(frame: pl.DataFrame = ROWS, policies: tuple[dict[str, Any], ...] = (STRICT,), *,
             as_of: datetime | None = None, **tables: Any) -> Plan:
    config = parse_config({"policies": list(policies)} | tables)
    return compile_plan(config, frame.lazy(), as_of=as_of)


def _baseline_warnings(plan: Plan) -> list[str]:
    """The plan's warnings but the one about labels (ROWS has no disputed_at, so "develop" falls back)."""
    return [w for w in plan.warnings if not w.startswith("labels:")]


# -- policies ------------------------------------------------------------------------------------------


def test_the_logging_policy_comes_first_then_production_then_the_configs_order() -> None:
    plan = compiled(policies=(SHARE, STRICT, MIXED))
    assert [p.name for p in plan.policies] == ["logged", "production", "share", "strict", "mixed"]
    assert plan.policies[0].logging and not any(p.logging for p in plan.policies[1:])
    # the default baseline: the data carries logging_prob_<action>, so production is identified
    assert plan.baseline == "production" and _baseline_warnings(plan) == []
    np.testing.assert_array_equal(plan.policy("production").table, np.eye(3))
    assert plan.policy("strict") is plan.policies[3]


def test_without_logging_probabilities_the_baseline_is_logged_with_a_warning() -> None:
    plan = compiled(ROWS.drop("logging_prob_allow", "logging_prob_challenge", "logging_prob_block"), policies=(STRICT,))
    assert [p.name for p in plan.policies] == ["logged", "strict"]
    assert plan.baseline == "logged"
    [warning] = _baseline_warnings(plan)
    assert "include the effect of switching the exploration off" in warning


def test_an_explicit_baseline_is_kept_and_production_needs_the_logging_probabilities() -> None:
    plan = compiled(policies=(STRICT,), baseline={"policy": "logged"})
    assert plan.baseline == "logged" and [p.name for p in plan.policies] == ["logged", "strict"]
    bare = ROWS.drop("logging_prob_allow", "logging_prob_challenge", "logging_prob_block")
    with pytest.raises(InvalidConfig, match=re.escape("baseline.policy: production is the logging policy without "
                                                      "its exploration")):
        compiled(bare, policies=(STRICT,), baseline={"policy": "production"})


def test_production_and_logged_are_reserved_policy_names() -> None:
    for name in ("production", "logged"):
        with pytest.raises(InvalidConfig, match=re.escape(f"{name!r} names the logging policy's own baseline")):
            compiled(policies=({**STRICT, "name": name},))


def test_coded_and_per_row_policies() -> None:
    plan = compiled(policies=(SHARE, STRICT, MIXED))
    # a threshold policy is finitely coded: code i = action i, a one-hot table
    np.testing.assert_array_equal(plan.policy("strict").table, np.eye(3))
    # epsilon 0.3 of it: each row 0.7·one-hot + 0.3/3
    np.testing.assert_allclose(plan.policy("mixed").table, 0.7 * np.eye(3) + 0.1, rtol=1e-12)
    # a python policy without `coded` is weighted row by row; the logging policy is neither
    assert plan.policy("share").table is None
    assert [p.name for p in plan.coded] == ["production", "strict", "mixed"]
    assert [p.name for p in plan.per_row] == ["share"]
    assert not plan.policy("logged").coded and plan.policy("logged") not in plan.per_row
    assert plan.policy("production").coded  # the default baseline, coded like a threshold policy


def test_a_policy_on_a_missing_column_names_where_it_is() -> None:
    bad = {"name": "x", "kind": "threshold", "score": "nope", "block_above": 0.5}
    with pytest.raises(UnknownName, match=re.escape("policies[1].score: unknown column 'nope'")):
        compiled(policies=(STRICT, bad))


# -- as-of date and label maturity ---------------------------------------------------------------------------


def test_as_of_defaults_to_the_latest_timestamp_in_the_data() -> None:
    frame = ROWS.with_columns(created_at=pl.Series([CREATED + timedelta(days=d) for d in (0, 3, 1, 2)]))
    plan = compiled(frame)
    assert plan.as_of == CREATED + timedelta(days=3)  # the latest created_at
    # a dispute that arrived later moves it: max over created_at and disputed_at
    disputed = frame.with_columns(disputed_at=pl.Series([None, None, None, CREATED + timedelta(days=40)],
                                                        dtype=pl.Datetime("us", "UTC")))
    assert compiled(disputed).as_of == CREATED + timedelta(days=40)
    assert data_as_of(disputed.lazy(), set(disputed.columns)) == CREATED + timedelta(days=40)


def test_as_of_from_the_config_wins_over_the_caller_and_the_data() -> None:
    config_date, caller_date = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    assert compiled(as_of=caller_date).as_of == caller_date  # the caller's (validation computed it)
    plan = compiled(as_of=caller_date, data={"as_of": config_date})
    assert plan.as_of == config_date


def test_a_naive_as_of_is_utc() -> None:
    plan = compiled(as_of=datetime(2026, 3, 1))
    assert plan.as_of == datetime(2026, 3, 1, tzinfo=UTC) and plan.as_of.tzinfo is not None


def test_label_maturity_cutoff() -> None:
    as_of = datetime(2026, 12, 1, tzinfo=UTC)
    plan = compiled(data={"as_of": as_of})
    # default 90 days: rows created after 2026-12-01 − 90 days = 2026-09-02 have immature fraud labels
    assert plan.label_maturity_days == 90
    assert plan.cutoff == datetime(2026, 9, 2, tzinfo=UTC)
    assert compiled(data={"as_of": as_of, "label_maturity_days": 10}).cutoff == datetime(2026, 11, 21, tzinfo=UTC)
    # immature labels included: every row counts as mature
    assert compiled(data={"as_of": as_of, "immature_labels": "include"}).cutoff is None


def test_empty_data_has_no_as_of() -> None:
    with pytest.raises(InvalidData, match=re.escape("created_at: no timestamps in the data")):
        compiled(ROWS.head(0))


# -- columns ---------------------------------------------------------------------------------------------------


def test_columns_read_are_the_base_the_policies_and_the_segments_need() -> None:
    assert set(BASE_COLUMNS) == BASE
    frame = ROWS.drop(LOGGING_PROBS).with_columns(card_country=pl.lit("FR"), channel=pl.lit("web"))
    plan = compiled(frame, policies=(STRICT,))
    assert plan.columns == BASE | {"fraud_score"}  # not auth_score, card_country or channel: nothing reads them
    plan = compiled(frame, policies=(STRICT, SHARE), segments={"by": [["card_country"]]})
    assert plan.columns == BASE | {"fraud_score", "auth_score", "card_country"}
    assert not plan.logging_probs


def test_logging_prob_columns_are_read_only_when_all_are_there() -> None:
    plan = compiled(ROWS)
    assert plan.logging_probs and set(LOGGING_PROBS) <= plan.columns
    partial = compiled(ROWS.drop("logging_prob_block"))
    assert not partial.logging_probs and not (set(LOGGING_PROBS) & partial.columns)


# -- estimation settings and the DR model ---------------------------------------------------------------------------


def test_estimation_settings_are_copied() -> None:
    plan = compiled(estimation={"bootstrap": 25, "seed": 9, "population": "superpopulation"})
    assert (plan.bootstrap, plan.seed, plan.finite) == (25, 9, False)
    assert compiled(estimation={"population": "finite"}).finite


@pytest.mark.parametrize("estimator", ["ipw", "snipw"])
def test_no_outcome_model_unless_dr(estimator: str) -> None:
    assert compiled(estimation={"estimator": estimator, "population": "finite"}).direct is None


def test_dr_fits_its_outcome_model_on_the_score_columns() -> None:
    frame = ROWS.drop(LOGGING_PROBS)
    plan = compiled(frame, estimation={"estimator": "dr", "population": "finite", "dr_scores": ["auth_score"],
                                       "dr_bins": 2})
    assert plan.direct is not None
    assert tuple(plan.direct.scores) == ("auth_score",)
    assert "auth_score" in plan.columns  # only DR reads it here


def test_dr_runs_in_both_populations_but_needs_known_score_columns() -> None:
    assert compiled(estimation={"estimator": "dr", "population": "superpopulation", "dr_bins": 2}).direct is not None
    with pytest.raises(InvalidConfig, match=re.escape("estimation.bootstrap: 'dr' has no superpopulation bootstrap yet")):
        compiled(estimation={"estimator": "dr", "population": "superpopulation", "bootstrap": 10})
    with pytest.raises(UnknownName, match=re.escape("unknown DR score column 'nope'")):
        compiled(estimation={"estimator": "dr", "population": "finite", "dr_scores": ["nope"]})


def test_a_plan_is_frozen_and_picklable() -> None:
    plan = compiled(policies=(SHARE, STRICT, MIXED), estimation={"estimator": "dr", "population": "finite",
                                                                "dr_bins": 2})
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.seed = 1  # type: ignore[misc]
    again = pickle.loads(pickle.dumps(plan))  # what Ray ships to every task
    assert [p.name for p in again.policies] == [p.name for p in plan.policies]
    assert again.columns == plan.columns and again.as_of == plan.as_of and again.cutoff == plan.cutoff
