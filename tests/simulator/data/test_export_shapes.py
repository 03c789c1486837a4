"""A log exported by another system, described in the config (SPEC §2): the same estimates as the canonical log.

The foreign log is the session's generated log transformed by
`simulator.synthetic.foreign` (columns `txn_id, ts, amount_usd, decision,
risk_score 0–100, p_logged`, text timestamps, a CSV file); its canonical twin
carries exactly the same information in Parquet.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from simulator.config import parse_config
from simulator.data.load import scan_dataset
from simulator.data.validate import check_dataset
from simulator.errors import InvalidConfig, InvalidData
from simulator.synthetic.foreign import ACTION_VALUES, COLUMNS, TIMESTAMP_FORMAT, exported, foreign_export
from simulator.workflows.run import run
from tests.conftest import LOCAL

EXPLORATION = 0.2  # the session's generated log (tests/simulator/conftest.py)
SEGMENTS = {"by": [["card_country"], ["card_funding", "channel"]]}
ESTIMATION = {"bootstrap": 20, "seed": 3}


def canonical_config(path: Path) -> dict:
    return {
        "data": {"path": str(path), "logging_policy": {"kind": "threshold", "score": "fraud_score", "challenge_above": 0.05,
                                                      "block_above": 0.4, "exploration": EXPLORATION}},
        "segments": SEGMENTS,
        "estimation": ESTIMATION,
        "policies": [{"name": "stricter", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.03,
                      "block_above": 0.3}],
    }


def foreign_data(path: Path) -> dict:
    """The `[data]` table describing the foreign export (as configs/foreign/foreign.toml does)."""
    return {
        "path": str(path),
        "columns": COLUMNS,
        "action_values": ACTION_VALUES,
        "score_range": {"risk_score": [0, 100]},
        "timestamp_format": {"created_at": TIMESTAMP_FORMAT, "disputed_at": TIMESTAMP_FORMAT},
        "logging_policy": {"kind": "threshold", "score": "risk_score", "challenge_above": 5, "block_above": 40,
                           "exploration": EXPLORATION},
    }


def foreign_config(path: Path) -> dict:
    return {
        "data": foreign_data(path),
        "segments": SEGMENTS,
        "estimation": ESTIMATION,
        "policies": [{"name": "stricter", "kind": "threshold", "score": "risk_score", "challenge_above": 3,
                      "block_above": 30}],
    }


@pytest.fixture(scope="module")
def logs(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(canonical Parquet, foreign CSV) of the same log."""
    out = tmp_path_factory.mktemp("shapes")
    log = pl.read_parquet(generated / "transactions")
    exported(log).write_parquet(out / "canonical.parquet")
    foreign_export(log).write_csv(out / "foreign.csv")
    return out / "canonical.parquet", out / "foreign.csv"


def test_a_foreign_csv_log_gives_exactly_the_estimates_of_the_canonical_parquet_log(logs: tuple[Path, Path]) -> None:
    canonical, foreign = logs
    expected = run(parse_config(canonical_config(canonical)), execution=LOCAL)
    result = run(parse_config(foreign_config(foreign)), execution=LOCAL)
    assert result.plan.baseline == expected.plan.baseline == "production"  # identified by the declared policy
    assert expected.results.filter(pl.col("policy") == "stricter").height > 0
    assert_frame_equal(result.results, expected.results, check_exact=True)
    assert result.data is not None and result.data.audit is not None and result.data.audit.disagree == 0


def test_every_consumer_sees_canonical_names_and_values(logs: tuple[Path, Path]) -> None:
    _, foreign = logs
    schema = parse_config(foreign_config(foreign)).data.schema()
    frame = scan_dataset(foreign, schema).collect()
    assert {"transaction_id", "created_at", "action", "propensity", "logging_prob_block"} <= set(frame.columns)
    assert not {"txn_id", "ts", "decision", "p_logged"} & set(frame.columns)
    assert set(frame["action"].unique()) == {"allow", "challenge", "block"}
    assert frame.schema["created_at"] == pl.Datetime("us", "UTC")


def test_csv_columns_are_typed_by_the_contract_not_guessed(tmp_path: Path) -> None:
    rows = 1_500  # an outcome column empty for its first thousand rows is still a bool
    lines = ["transaction_id,created_at,amount,action,propensity,authorized,fraud_dispute,dispute_lost,mcc"]
    lines += [f"{i:05d},2026-01-01T00:00:00,10,block,0.5,,,,5411" for i in range(rows)]
    lines += ["99999,2026-01-02T00:00:00Z,12.5,allow,0.5,true,false,,5411"]
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    types = scan_dataset(path, parse_config({}).data.schema()).collect_schema()
    assert (types["authorized"], types["fraud_dispute"], types["dispute_lost"]) == (pl.Boolean,) * 3
    assert types["transaction_id"] == pl.String and types["amount"] == pl.Float64  # "00007" stays text
    assert check_dataset(path, parse_config({}).data.schema()).rows == rows + 1


def test_gzipped_csv(logs: tuple[Path, Path], tmp_path: Path) -> None:
    _, foreign = logs
    (tmp_path / "log.csv.gz").write_bytes(gzip.compress(foreign.read_bytes()))
    schema = parse_config(foreign_config(foreign)).data.schema()
    assert check_dataset(tmp_path / "log.csv.gz", schema).rows == check_dataset(foreign, schema).rows


def test_a_glob_of_parquet_files(generated: Path, tmp_path: Path) -> None:
    pattern = generated / "transactions" / "*.parquet"
    summary = check_dataset(str(pattern), parse_config({}).data.schema())
    assert (summary.rows, summary.files) == (40_000, 2)


# --- each bad input, its own message naming the user's columns ---------------------------------------------------


def broken_foreign(logs: tuple[Path, Path], tmp_path: Path, column: str, row: int, value: str) -> Path:
    """The foreign CSV with one text value replaced."""
    frame = pl.read_csv(logs[1], infer_schema=False)
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(column))
                               .alias(column))
    frame.write_csv(tmp_path / "broken.csv")
    return tmp_path / "broken.csv"


def invalid(path: Path) -> str:
    schema = parse_config(foreign_config(path)).data.schema()
    with pytest.raises(InvalidData) as raised:
        check_dataset(path, schema)
    return str(raised.value)


def test_a_timestamp_not_in_the_declared_format(logs: tuple[Path, Path], tmp_path: Path) -> None:
    message = invalid(broken_foreign(logs, tmp_path, "ts", 4, "04/01/2026 10:00"))
    assert ("ts (created_at): 1 row null or not in the format '%Y-%m-%d %H:%M:%S' ([data.timestamp_format]), "
            "e.g. txn_id=tx_0000000004") in message


def test_an_action_value_the_mapping_does_not_name(logs: tuple[Path, Path], tmp_path: Path) -> None:
    message = invalid(broken_foreign(logs, tmp_path, "decision", 7, "review"))
    assert ("decision (action): 1 row not one of the values 'approve' (allow), '3ds' (challenge), 'decline' (block) "
            "of [data.action_values], e.g. txn_id=tx_0000000007 (decision=review)") in message


def test_a_canonical_action_name_the_files_spell_otherwise_is_not_accepted(logs: tuple[Path, Path], tmp_path: Path) -> None:
    message = invalid(broken_foreign(logs, tmp_path, "decision", 7, "allow"))
    assert "decision (action): 1 row not one of the values" in message
    assert "(decision=allow (not a value of [data.action_values]))" in message


def test_a_score_outside_its_declared_range(logs: tuple[Path, Path], tmp_path: Path) -> None:
    message = invalid(broken_foreign(logs, tmp_path, "risk_score", 2, "140.0"))
    assert "risk_score: 1 row outside [0, 100] or NaN, e.g. txn_id=tx_0000000002 (risk_score=140.0)" in message


def test_a_csv_value_that_is_not_of_its_columns_type_names_file_and_column(logs: tuple[Path, Path], tmp_path: Path) -> None:
    path = broken_foreign(logs, tmp_path, "authorized", 3, "maybe")
    message = invalid(path)
    assert f"cannot read {path}" in message and "could not parse `maybe` as dtype `bool` at column 'authorized'" in message


def test_a_threshold_outside_the_declared_range_is_refused(logs: tuple[Path, Path]) -> None:
    config = foreign_config(logs[1])
    config["policies"][0]["block_above"] = 130
    message = "policies[0].block_above: must be <= 100 (risk_score is declared on [0, 100] in [data.score_range]), got 130"
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        run(parse_config(config), execution=LOCAL)


def test_thresholds_above_1_are_refused_on_an_undeclared_score(logs: tuple[Path, Path]) -> None:
    config = foreign_config(logs[1])
    config["data"].pop("score_range")
    with pytest.raises(InvalidConfig, match=re.escape("data.logging_policy.block_above: must be <= 1, got 40")):
        parse_config(config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param({"action_values": {"refuse": "decline"}}, "data.action_values: keys are actions of the action set",
                     id="action_values-unknown-action"),
        pytest.param({"action_values": {"allow": "ok", "block": "ok"}}, "each action needs its own non-empty value",
                     id="action_values-repeated"),
        pytest.param({"score_range": {"risk_score": [100, 0]}}, "data.score_range.risk_score: needs [low, high]",
                     id="score_range-reversed"),
        pytest.param({"timestamp_format": {"ts": "%Y"}}, "data.timestamp_format: keys are canonical timestamp columns",
                     id="timestamp_format-file-name"),
    ],
)
def test_a_bad_description_of_the_export_is_a_config_error(logs: tuple[Path, Path], change: dict, message: str) -> None:
    config = foreign_config(logs[1])
    config["data"] |= change
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        parse_config(config)


def test_the_foreign_example_config_reviews_its_export(tmp_path: Path) -> None:
    """configs/foreign/foreign.toml, from export to review, as docs/bring-your-own-data.md walks through it."""
    import json

    from typer.testing import CliRunner

    from simulator.cli import app
    from simulator.synthetic.foreign import main as export
    from simulator.synthetic.generate import GenerateSpec, generate

    generate(GenerateSpec(rows=20_000, files=1, seed=7), tmp_path / "demo")  # the demo's logging policy
    csv = tmp_path / "foreign" / "transactions.csv"
    assert export([str(tmp_path / "demo" / "transactions" / "part-00000.parquet"), str(csv)]) == 0
    config = str(Path(__file__).parents[3] / "configs" / "foreign" / "foreign.toml")
    runner = CliRunner()
    validated = runner.invoke(app, ["validate", str(csv), "--config", config], terminal_width=200)
    assert validated.exit_code == 0, validated.output
    assert "all 20,000 logged propensities agree with the declared logging policy" in validated.output
    reviewed = runner.invoke(app, ["review", config, "--data", str(csv), "--out", str(tmp_path / "out"),
                                   "--engine", "local", "--quiet"], terminal_width=200)
    assert reviewed.exit_code in (0, 1, 3), reviewed.output
    assert "review of 'stricter' against 'production'" in reviewed.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["data"]["audit"]["disagree"] == 0 and summary["data"]["path"] == str(csv)


def test_a_sweep_is_written_in_the_scores_declared_units(logs: tuple[Path, Path]) -> None:
    from simulator.workflows.sweep import sweep

    config = foreign_config(logs[1]) | {"sweep": {"score": "risk_score", "block_above": {"start": 20, "stop": 80, "num": 4},
                                                  "challenge_above": [3, 5]}}
    swept = sweep(parse_config(config), execution=LOCAL)
    assert sorted(swept.points["block_above"].unique()) == [20.0, 40.0, 60.0, 80.0]
    config["sweep"]["block_above"] = [150]
    with pytest.raises(InvalidConfig, match=re.escape("sweep.block_above: thresholds must be in [0, 100], got 150")):
        sweep(parse_config(config), execution=LOCAL)
