"""A declared logging policy (`[data.logging_policy]`, SPEC §2): derived propensities, the audit, and refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.config import parse_config
from simulator.data.load import scan_dataset
from simulator.data.validate import check_dataset
from simulator.errors import InvalidConfig, InvalidData
from simulator.workflows.run import run, run_frame, write_run_outputs
from tests.conftest import LOCAL

# The session's generated log (tests/simulator/conftest.py): threshold on fraud_score, 20 % exploration.
DECLARED = {"kind": "threshold", "score": "fraud_score", "challenge_above": 0.05, "block_above": 0.4,
            "exploration": 0.2}
PROBS = ["logging_prob_allow", "logging_prob_challenge", "logging_prob_block"]


def config(path: Path, declared: dict | None = DECLARED, **tables: object) -> dict:
    data = {"path": str(path)} | ({"logging_policy": declared} if declared is not None else {})
    policies = [{"name": "stricter", "kind": "threshold", "score": "fraud_score", "block_above": 0.3}]
    return {"data": data, "policies": policies, "segments": {"by": [["card_country"]]}} | tables


@pytest.fixture(scope="module")
def without_propensities(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("logging") / "log.parquet"
    pl.read_parquet(generated / "transactions").drop("propensity", *PROBS).write_parquet(path)
    return path


def test_propensities_are_derived_from_the_declared_policy(generated: Path, without_propensities: Path) -> None:
    schema = parse_config(config(without_propensities)).data.schema()
    derived = scan_dataset(without_propensities, schema).select("propensity", *PROBS).collect()
    logged = pl.read_parquet(generated / "transactions").select("propensity", *PROBS)
    # (1 − 0.2) · 1 + 0.2 / 3 on the policy's action, 0.2 / 3 elsewhere: the generator's numbers up to rounding
    assert (derived.to_numpy() - logged.to_numpy()).__abs__().max() < 1e-12


def test_a_declared_policy_identifies_production_and_runs_like_logged_propensities(
        generated: Path, without_propensities: Path) -> None:
    derived = run(parse_config(config(without_propensities)), execution=LOCAL)
    logged = run(parse_config(config(generated / "transactions", declared=None)), execution=LOCAL)
    assert derived.plan.baseline == logged.plan.baseline == "production"
    assert derived.data is not None and derived.data.derived == ("logging_prob_allow", "logging_prob_block",
                                                                 "logging_prob_challenge", "propensity")
    joined = derived.overall().join(logged.overall(), on=["policy", "metric"], suffix="_logged")
    assert joined.height == logged.overall().height
    assert (joined["estimate"] - joined["estimate_logged"]).abs().max() < 1e-6 * joined["estimate"].abs().max()


def test_run_frame_derives_them_too(without_propensities: Path) -> None:
    frame = pl.read_parquet(without_propensities)
    result = run_frame(parse_config(config(without_propensities)), frame)
    assert result.plan.baseline == "production"


def test_a_log_with_neither_propensities_nor_a_declaration_is_refused_with_both_ways_forward(
        without_propensities: Path) -> None:
    with pytest.raises(InvalidData) as raised:
        check_dataset(without_propensities, parse_config(config(without_propensities, declared=None)).data.schema())
    message = str(raised.value)
    assert "propensity: missing column: the estimates divide by it" in message
    assert "map the column of your files that holds the logged action's probability in [data.columns]" in message
    assert "declare the policy that logged the data in [data.logging_policy]" in message


def test_a_declared_policy_that_never_takes_the_logged_action_names_its_cause(without_propensities: Path) -> None:
    no_exploration = DECLARED | {"exploration": 0.0}
    with pytest.raises(InvalidData) as raised:
        check_dataset(without_propensities, parse_config(config(without_propensities, no_exploration)).data.schema())
    assert re.search(r"propensity: \d+ rows outside \(0, 1\] or NaN \(derived from \[data.logging_policy\]: the "
                     r"declared policy never takes the logged action there; is exploration missing\?\)", str(raised.value))


def test_a_declared_policy_reading_a_missing_column(without_propensities: Path) -> None:
    declared = DECLARED | {"score": "risk_score"}
    with pytest.raises(InvalidData, match=re.escape("propensity: missing column: [data.logging_policy] derives it "
                                                    "from columns the data lacks: risk_score")):
        check_dataset(without_propensities, parse_config(config(without_propensities, declared)).data.schema())


def test_the_audit_finds_no_disagreement_when_the_declaration_is_right(generated: Path) -> None:
    summary = check_dataset(generated / "transactions", parse_config(config(generated / "transactions")).data.schema())
    assert summary.audit is not None
    assert (summary.audit.rows, summary.audit.disagree) == (40_000, 0)


def test_the_audit_reports_the_share_that_disagrees_and_the_worst_segments(generated: Path, tmp_path: Path) -> None:
    wrong = DECLARED | {"block_above": 0.5}  # rows scored in [0.4, 0.5) were blocked, the declaration allows them
    summary = check_dataset(generated / "transactions", parse_config(config(generated / "transactions", wrong)).data.schema())
    audit = summary.audit
    assert audit is not None and 0 < audit.disagree < audit.rows == 40_000
    log = pl.read_parquet(generated / "transactions")
    # there, allow and block swap probabilities (0.2 / 3 against 1 − 0.2 + 0.2 / 3); challenge keeps 0.2 / 3
    moved = log.filter(pl.col("fraud_score").is_between(0.4, 0.5, closed="left") & (pl.col("action") != "challenge"))
    assert audit.disagree == moved.height
    assert audit.worst and audit.worst[0].share == max(w.share for w in audit.worst)
    assert all(w.rows >= 400 for w in audit.worst)  # values with 1 % of the rows or more
    assert "differ from the declared logging policy" in dict(summary.display_rows())["propensity audit"]
    # every run's summary.json records it
    result = run(parse_config(config(generated / "transactions", wrong)), execution=LOCAL)
    write_run_outputs(result, parse_config(config(generated / "transactions", wrong)), generated / "transactions", "test", tmp_path)
    recorded = json.loads((tmp_path / "summary.json").read_text())["data"]["audit"]
    assert (recorded["disagree"], recorded["rows"]) == (audit.disagree, 40_000) and recorded["worst"]


def test_validate_prints_the_audit(generated: Path, tmp_path: Path) -> None:
    toml = tmp_path / "declared.toml"
    toml.write_text('[data.logging_policy]\nkind = "threshold"\nscore = "fraud_score"\nchallenge_above = 0.05\n'
                    'block_above = 0.5\nexploration = 0.2\n')
    result = CliRunner().invoke(app, ["validate", str(generated / "transactions"), "--config", str(toml)],
                                terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "propensity audit" in result.output and "differ from the declared logging policy" in result.output


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        pytest.param({k: v for k, v in DECLARED.items() if k != "exploration"}, "data.logging_policy.exploration: missing",
                     id="no-exploration"),
        pytest.param(DECLARED | {"exploration": 1.5}, "data.logging_policy.exploration: must be a number in [0, 1]",
                     id="exploration-above-1"),
        pytest.param({"kind": "production", "exploration": 0.1}, "data.logging_policy.kind: 'production' is defined by",
                     id="kind-production"),
        pytest.param(DECLARED | {"block_above": 1.4}, "data.logging_policy.block_above: must be <= 1, got 1.4",
                     id="bad-parameter"),
        pytest.param(DECLARED | {"kind": "treshold"}, "did you mean 'threshold'", id="unknown-kind"),
    ],
)
def test_a_bad_declaration_is_a_config_error(declared: dict, message: str) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        parse_config(config(Path("x"), declared))
