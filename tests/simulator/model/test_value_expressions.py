"""The value model as configuration (issue #15): SQL value expressions and metrics, checked against direct sums."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from typer.testing import CliRunner

from simulator import parse_config, run_frame
from simulator.cli import app
from simulator.errors import InvalidConfig, InvalidData
from simulator.model.value import DEFAULT_VALUES, ValueModel, value_set
from tests.factories import make_transactions

PRICING = Path(__file__).resolve().parents[3] / "configs" / "pricing.toml"
FRAME = make_transactions(n=400, seed=11)
POLICY = {"name": "p", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.3, "block_above": 0.7}
SEGMENTS = {"by": [["card_funding"]]}


def overall(config: dict[str, Any], frame: pl.DataFrame = FRAME) -> pl.DataFrame:
    result = run_frame(parse_config({"policies": [POLICY], "segments": SEGMENTS, **config}), frame)
    return result.results.filter(pl.col("segment") == "ALL", pl.col("policy") == "p")


def row(results: pl.DataFrame, metric: str) -> dict[str, Any]:
    return results.filter(pl.col("metric") == metric).row(0, named=True)


def direct_ipw(frame: pl.DataFrame, sql: str) -> tuple[float, float]:
    """Σ π(a_i|x_i)/p_i · v_i for the threshold policy, and the observed Σ v_i: the IPW formula, by hand.

    `amount` and `authorized` are the value columns (numbers, a null authorisation is 0), as the docs say.
    """
    score, action = frame["fraud_score"].to_numpy(), frame["action"].to_numpy()
    chosen = np.where(score > POLICY["block_above"], "block",
                      np.where(score > POLICY["challenge_above"], "challenge", "allow"))
    values = frame.with_columns(pl.col("amount").cast(pl.Float64),
                                pl.col("authorized").fill_null(False).cast(pl.Float64),
                                *(pl.col(c).fill_null(False) for c in ("fraud_dispute", "dispute_lost")))
    v = values.select(pl.sql_expr(sql).cast(pl.Float64)).to_series().to_numpy()
    weight = (chosen == action) / frame["propensity"].to_numpy()
    return float(np.sum(weight * v)), float(np.sum(v))


COEF = st.floats(-50, 50, allow_nan=False).map(lambda x: round(x, 3))
TEMPLATES = (
    "{a} * amount * authorized + {b}",  # affine, can be negative
    "CASE WHEN card_funding = 'debit' THEN {a} ELSE {b} END * amount * authorized",  # another column
    "CASE WHEN amount > 80 THEN {a} ELSE {b} END",  # not linear in the amount: its table is contradicted
    "CASE WHEN action = 'challenge' THEN {a} WHEN fraud_dispute THEN {b} ELSE 0 END",
    "{a} * LN(amount + 1) - {b} * authorized",
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(template=st.sampled_from(TEMPLATES), a=COEF, b=COEF, seed=st.integers(0, 3))
def test_an_expression_metric_is_the_ipw_sum_of_its_expression(template: str, a: float, b: float, seed: int) -> None:
    frame = make_transactions(n=300, seed=seed)
    sql = template.format(a=a, b=b)
    results = overall({"estimation": {"estimator": "ipw", "population": "finite"}, "baseline": {"policy": "logged"},
                       "metrics": {"custom": {"sum": sql, "rows": "all"}}}, frame)
    got = row(results, "custom")
    expected, observed = direct_ipw(frame, sql)
    assert got["estimate"] == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert got["baseline"] == pytest.approx(observed, rel=1e-9, abs=1e-9)  # the logging policy's observed total
    assert got["delta"] == pytest.approx(expected - observed, rel=1e-9, abs=1e-7)
    assert got["ci_low"] <= got["estimate"] <= got["ci_high"]
    assert got["delta_ci_low"] <= got["delta"] <= got["delta_ci_high"]
    assert np.isfinite([got["ci_low"], got["ci_high"], got["delta_ci_low"], got["delta_ci_high"]]).all()


def test_a_value_rewritten_as_an_expression_gives_the_built_in_results() -> None:
    """The built-in cost, written out in SQL: evaluated on the rows (a row value), it gives the same numbers as the
    table of the default preset, and so does every metric that reads it (net_value)."""
    model = ValueModel()
    sql = (f"{model.fee_rate} * amount * authorized + {model.fee_fixed} * (1.0 - blocked) "
           f"+ {model.challenge_cost} * challenged")
    for estimator in ("snipw", "ipw"):
        default = overall({"estimation": {"estimator": estimator}})
        written = overall({"estimation": {"estimator": estimator}, "value_model": {"values": {"cost": sql}}})
        for metric in ("cost", "net_value", "revenue", "fraud_loss"):
            a, b = row(default, metric), row(written, metric)
            for column in ("estimate", "delta", "se", "delta_se"):
                assert b[column] == pytest.approx(a[column], rel=1e-9), (estimator, metric, column)


def test_a_replaced_value_flows_into_the_values_that_read_it() -> None:
    free = overall({"value_model": {"values": {"cost": "0.0"}}})
    assert row(free, "cost")["estimate"] == 0.0
    assert row(free, "net_value")["estimate"] > row(overall({}), "net_value")["estimate"]


def test_new_metrics_are_reported_under_their_names_with_ratios_of_them() -> None:
    results = overall({"metrics": {
        "debit_volume": {"sum": "CASE WHEN card_funding = 'debit' THEN amount * authorized ELSE 0 END"},
        "debit_share": {"ratio": ["debit_volume", "authorized_volume"]},
        "bps_of_fraud": {"ratio": ["fraud_volume", "debit_volume"], "scale": 10000},
    }})
    debit, share = row(results, "debit_volume"), row(results, "debit_share")
    assert share["estimate"] == pytest.approx(debit["estimate"] / row(results, "authorized_volume")["estimate"])
    assert share["ci_low"] <= share["estimate"] <= share["ci_high"]
    assert row(results, "bps_of_fraud")["estimate"] > 0
    assert row(results, "debit_volume")["rows"] == FRAME.height  # a sum of every row ...
    fraud = overall({"metrics": {"lost_fraud": {"sum": "fraud * amount * dispute_lost"}}})
    assert row(fraud, "lost_fraud")["rows"] == row(fraud, "fraud_count")["rows"]  # ... or of the mature ones


def test_a_negative_expression_has_an_interval_on_both_sides() -> None:
    got = row(overall({"metrics": {"refunds": {"sum": "-0.5 * amount * authorized"}}}), "refunds")
    assert got["estimate"] < 0
    assert got["ci_low"] < got["estimate"] < got["ci_high"] < 0


@pytest.mark.parametrize("estimation", [{"bootstrap": 30}, {"estimator": "dr", "population": "finite"},
                                        {"population": "finite"}])
def test_expression_metrics_under_every_estimator_and_interval(estimation: dict[str, Any]) -> None:
    got = row(overall({"estimation": estimation, "metrics": {"fees": {"sum": "0.3 + 0.01 * amount"}}}), "fees")
    assert np.isfinite([got["estimate"], got["ci_low"], got["ci_high"], got["delta"]]).all()
    assert got["ci_low"] <= got["estimate"] <= got["ci_high"]


def test_a_config_metric_can_be_a_guardrail() -> None:
    config = parse_config({"policies": [POLICY], "metrics": {"fees": {"sum": "0.3 * authorized"}},
                           "review": {"candidate": "p", "guardrails": [{"metric": "fees", "max_increase": 10.0}]}})
    assert config.review is not None
    with pytest.raises(InvalidConfig, match=r"unknown metric 'feez'.*did you mean 'fees'"):
        parse_config({"policies": [POLICY], "metrics": {"fees": {"sum": "0.3 * authorized"}},
                      "review": {"candidate": "p", "guardrails": [{"metric": "feez", "max_increase": 10.0}]}})


@pytest.mark.parametrize(("config", "message"), [
    ({"value_model": {"values": {"cost": "amount * * 2"}}}, r"value_model\.values\.cost.*not an SQL expression"),
    ({"value_model": {"values": {"fraud": "0"}}}, r"value_model\.values\.fraud.*cannot|defined by the data"),
    ({"value_model": {"values": {"a": "b + 1", "b": "a * 2"}}}, r"cycle.*a, b"),
    ({"metrics": {"x": {"ratio": ["fees", "attempts"]}}}, r"metrics\.x\.ratio.*'fees' is not a sum metric"),
    ({"metrics": {"x": {"sum": "1", "ratio": ["attempts", "attempts"]}}}, r"metrics\.x.*exactly one of sum"),
    ({"metrics": {"auth_rate": {"sum": "1"}}}, r"metrics\.auth_rate.*not a sum metric"),
    ({"metrics": {"blocked_fraud_count": {"sum": "1"}}}, r"cannot be replaced"),
    ({"metrics": {"bad-name": {"sum": "1"}}}, r"not a metric name"),
])
def test_value_model_config_errors_name_the_table(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        parse_config(config)


@pytest.mark.parametrize(("values", "message"), [
    ({"cost": "amount * card_fundin"}, r"value_model\.values\.cost: 'amount \* card_fundin' reads unknown column "
                                       r"'card_fundin'.*did you mean 'card_funding'"),
    ({"cost": "card_funding * 2"}, r"value_model\.values\.cost: 'card_funding \* 2' does not type-check"),
    ({"cost": "card_funding"}, r"value_model\.values\.cost: 'card_funding' gives String, not a number"),
])
def test_expressions_that_do_not_fit_the_data_are_config_errors(values: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        overall({"value_model": {"values": values}})


def test_an_expression_null_on_some_rows_is_refused_with_an_example() -> None:
    frame = make_transactions(n=300, seed=2)
    frame = frame.with_columns(frame["mcc"].cast(pl.String).scatter([4, 9], None))
    with pytest.raises(InvalidData, match=re.escape("value 'metric.by_mcc' = \"CASE WHEN mcc = '5411' THEN 1.0 END\"")
                       + r": 2\d\d rows evaluate to null"):
        overall({"metrics": {"by_mcc": {"sum": "CASE WHEN mcc = '5411' THEN 1.0 END"}}}, frame)


def test_the_default_preset_has_no_row_values() -> None:
    assert DEFAULT_VALUES.row_values == frozenset()
    custom = value_set(ValueModel(values={"cost": "0.1 * amount"}))
    assert custom.row_values == {"cost", "net_value"}  # net_value reads cost
    assert custom.tabulable == {"cost", "net_value"}  # both read only the action, the amount and the outcomes
    assert value_set(ValueModel(values={"cost": "0.1 * LN(amount)"})).tabulable == {"cost", "net_value"}
    assert value_set(ValueModel(values={"cost": "CASE WHEN card_funding = 'debit' THEN 1 ELSE 2 END"})).tabulable == frozenset()


def test_the_data_decides_whether_a_tabulable_value_keeps_its_table() -> None:
    """An amount tier is not c0 + c1·amount: the shards see it on the rows, and its metrics lose the table's shape."""
    def unverified(cost: str) -> frozenset[str]:
        config = parse_config({"policies": [POLICY], "value_model": {"values": {"cost": cost}}})
        return run_frame(config, FRAME).plan.values.unverified

    assert unverified("0.02 * amount * authorized + 0.25") == frozenset()
    assert unverified("CASE WHEN amount > 80 THEN 1.0 ELSE 0.5 END * authorized") == {"cost", "net_value"}


def test_the_pricing_example_runs_from_the_cli_and_a_bad_expression_exits_2(generated: Path, tmp_path: Path) -> None:
    """configs/pricing.toml reports its own metrics under their names; a misspelt column is a config error (exit 2)
    that names the expression, before any shard runs."""
    data = str(generated / "transactions")
    ok = CliRunner().invoke(app, ["run", str(PRICING), "--data", data, "--out", str(tmp_path / "ok"),
                                  "--engine", "local", "--quiet"])
    assert ok.exit_code == 0, ok.output
    results = pl.read_parquet(tmp_path / "ok" / "results.parquet")
    assert {"amex_auth_volume", "cost_bps"} <= set(results["metric"].unique().to_list())
    bad = tmp_path / "bad.toml"
    bad.write_text(PRICING.read_text().replace("card_funding WHEN", "card_fundin WHEN"))
    failed = CliRunner().invoke(app, ["run", str(bad), "--data", data, "--out", str(tmp_path / "bad"),
                                      "--engine", "local", "--quiet"])
    assert failed.exit_code == 2
    assert "value_model.values.cost" in failed.output and "unknown column 'card_fundin'" in failed.output
    assert not (tmp_path / "bad").exists()
    checked = CliRunner().invoke(app, ["validate", data, "--config", str(bad), "--quiet"])
    assert checked.exit_code == 2 and "unknown column 'card_fundin'" in checked.output  # validate says it too


def test_row_values_do_not_depend_on_shards_or_the_engine_path(tmp_path: Path) -> None:
    """Row values are summed per unit over its rows: one shard or many, and the per-row path of a python
    policy (every row its own unit) give the same results."""
    from simulator import run
    from simulator.engine.execution import Execution

    frame = make_transactions(n=900, seed=7)
    path = tmp_path / "log.parquet"
    frame.write_parquet(path)
    config = parse_config({"policies": [POLICY], "segments": SEGMENTS, "value_model": {"values": {
        "cost": "CASE WHEN amount > 80 THEN 1.0 ELSE 0.5 END * authorized + 0.3 * (1 - blocked)"}},
        "metrics": {"by_funding": {"sum": "CASE WHEN card_funding = 'debit' THEN amount ELSE -amount END * authorized"}}})
    one = run(config, path, execution=Execution(engine="local", shard_rows=10_000)).results
    many = run(config, path, execution=Execution(engine="local", shard_rows=97)).results
    assert one.select("policy", "segment", "metric").equals(many.select("policy", "segment", "metric"))
    for column in ("estimate", "delta", "ci_low", "ci_high", "delta_ci_low", "delta_ci_high"):
        np.testing.assert_allclose(many[column].to_numpy(), one[column].to_numpy(), rtol=1e-9, atol=1e-9,
                                   equal_nan=True, err_msg=column)


GOLDEN = Path(__file__).parent / "data" / "default_preset.parquet"


def test_the_default_preset_reproduces_the_results_from_before_it_was_configurable() -> None:
    """tests/simulator/model/data/default_preset.parquet was written by the code before the value model became
    configuration (a846d1a): the six numbers alone give the same results (bit for bit on one machine, checked
    when it was written; within 1e-12 here, as numpy's SIMD sums may differ between CPUs)."""
    golden = pl.read_parquet(GOLDEN)
    policies = [{"name": "a", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.3, "block_above": 0.7},
                {"name": "r", "kind": "rules", "fallback": "allow",
                 "rules": [{"when": "amount >= 200 AND fraud_score >= 0.4", "action": "block"}]}]
    frames = []
    for estimation in ({}, {"population": "finite"}, {"estimator": "ipw"}):
        config = parse_config({"policies": policies, "segments": {"by": [["card_funding"]]}, "estimation": estimation})
        results = run_frame(config, make_transactions(n=3000, seed=21)).results
        frames.append(results.with_columns(pl.lit(str(estimation)).alias("estimation")).select(golden.columns))
    now = pl.concat(frames)
    assert now.select("estimation", "policy", "segment", "metric").equals(
        golden.select("estimation", "policy", "segment", "metric"))
    # the estimates are the value model's alone; the intervals were identical too when the file was written, and
    # have changed since only where the rare-event floor was corrected (docs/estimation.md, money widths)
    for column in ("estimate", "delta"):
        np.testing.assert_allclose(now[column].to_numpy(), golden[column].to_numpy(), rtol=1e-12, atol=1e-9,
                                   equal_nan=True, err_msg=column)


def test_a_value_that_reads_other_columns_keeps_a_floor_read_off_its_rows() -> None:
    """The built-in cost written in SQL through another column (so it has no table): the rare-event floor reads
    each row's value under every action and outcome, and its intervals are about those of the built-in cost, not
    the explored rows' own spread alone (net_value's delta standard error was 0.40 of the built-in's without)."""
    from simulator.model.value import counterfactual_columns
    from simulator.synthetic.fresh import as_of, fresh_population

    log, _ = fresh_population(30_000, 1_000_003)
    model = ValueModel()
    sql = (f"CASE WHEN card_funding = 'debit' THEN {model.fee_rate} ELSE {model.fee_rate} END * amount * authorized"
           f" + {model.fee_fixed} * (1.0 - blocked) + {model.challenge_cost} * challenged")
    config = {"data": {"as_of": as_of()}, "baseline": {"policy": "production"},
              "policies": [{"name": "p", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.02,
                            "block_above": 0.2}]}
    built_in = run_frame(parse_config(config), log)
    written = run_frame(parse_config(config | {"value_model": {"values": {"cost": sql}}}), log)
    assert written.plan.values.untabulated == {"cost", "net_value"}
    # cost and net_value, each under allow and challenge declined, approved or lost with its square (the floor's),
    # and under block declined alone (the exact total)
    assert len(counterfactual_columns(written.plan.values, written.plan.actions)) == 2 * ((3 + 3) * 2 + 1)
    a, b = (r.overall().filter(pl.col("policy") == "p") for r in (built_in, written))
    for metric in ("cost", "net_value"):
        assert row(b, metric)["estimate"] == pytest.approx(row(a, metric)["estimate"], rel=1e-12)
        # the same floor up to the table's own amount moments (within 0.7 % on this population)
        assert row(b, metric)["se"] == pytest.approx(row(a, metric)["se"], rel=0.03), metric
        assert row(b, metric)["delta_se"] == pytest.approx(row(a, metric)["delta_se"], rel=0.03), metric
        assert row(b, metric)["flag"] == row(a, metric)["flag"]  # a block's value is exact for both


def test_a_value_that_varies_row_by_row_gets_a_floor_from_its_rows() -> None:
    """One brand's approved volume: most rows carry 0, so the explored rows' own spread understates it (on a small
    stratum all of them can be 0); the floor sees every row's value had it been approved, pulled towards the
    segment's per amount. Its delta standard error is then about √(the brand's share) of authorized_volume's
    (0.82-1.10 of that on these seeds; 0.01-0.14 without the floor)."""
    from simulator.synthetic.fresh import as_of, fresh_population

    config = parse_config({
        "data": {"as_of": as_of()}, "baseline": {"policy": "production"},
        "policies": [{"name": "p", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.05,
                      "block_above": 0.3}],
        "metrics": {"amex": {"sum": "CASE WHEN card_brand = 'amex' THEN amount * authorized ELSE 0 END"}}})
    for seed in (1_000_003, 1_000_004, 1_000_005):
        log, _ = fresh_population(30_000, seed)
        result = run_frame(config, log).overall().filter(pl.col("policy") == "p")
        share = log.filter(pl.col("card_brand") == "amex")["amount"].sum() / log["amount"].sum()
        ratio = row(result, "amex")["delta_se"] / row(result, "authorized_volume")["delta_se"] / np.sqrt(share)
        assert ratio > 0.5, (seed, ratio)


def test_a_ratio_of_values_that_move_together_is_not_floored_as_if_they_did_not() -> None:
    """Twice the approved volume over the approved volume is 2 on every row: no interval around it. The rare-event
    floor of its numerator and denominator (the same rows) combines with the rows' correlation between them; added
    as if independent it gave this ratio an interval of ±several units."""
    from simulator.synthetic.fresh import as_of, fresh_population

    log, _ = fresh_population(30_000, 1_000_003)
    config = parse_config({
        "data": {"as_of": as_of()}, "baseline": {"policy": "production"},
        "policies": [{"name": "p", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.02,
                      "block_above": 0.2}],
        "metrics": {"double": {"sum": "2 * amount * authorized"}, "two": {"ratio": ["double", "authorized_volume"]}}})
    two = row(run_frame(config, log).overall().filter(pl.col("policy") == "p"), "two")
    assert two["estimate"] == pytest.approx(2.0, rel=1e-12)
    assert two["se"] < 1e-6 and two["delta_se"] < 1e-6, two
