"""The decision-change table `run` prints, and the files it writes (SPEC §9)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from rich.console import Console

from simulator.config import parse_config
from simulator.report.changes import changes_table
from simulator.workflows.run import run
from tests.conftest import LOCAL
from tests.simulator.conftest import CliRun

CONFIG = {
    "segments": {"by": [["card_country"]]},
    "policies": [
        {"name": "a_rather_long_policy_name", "kind": "threshold", "score": "fraud_score",
         "challenge_above": 0.02, "block_above": 0.3},
        {"name": "share", "kind": "python", "object": "tests.policies.example_user_policy:BlockShareByAuthScore"},
    ],
}


def test_the_table_fits_80_columns_without_cutting_anything(generated: Path) -> None:
    result = run(parse_config(CONFIG), generated / "transactions", execution=LOCAL)
    console = Console(width=80, record=True)
    console.print(changes_table(result.changes, result.plan.baseline))
    text = console.export_text()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in text
    assert "allow→challenge" in text and "a_rather_" in text  # a long policy name wraps, it is not cut
    assert "—: delta not split by transition" in text  # the python policy and the logging policy's exploration
    printed = {r[0] for r in result.changes.filter(pl.col("segment") == "ALL").select("policy").rows()}
    assert printed == {"logged", "a_rather_long_policy_name", "share"}


def test_cli_run_writes_both_files_and_prints_the_transitions(thresholds_cli_run: CliRun) -> None:
    result = thresholds_cli_run  # configs/thresholds.toml on the generated log, local engine, 80 columns
    assert result.exit_code == 0, result.output
    assert "decision changes against 'production' (ALL)" in result.output
    changes = pl.read_parquet(result.out / "changes.parquet")
    examples = pl.read_parquet(result.out / "examples.parquet")
    keys = ["policy", "segment", "from_action", "to_action"]
    assert set(keys + ["rows", "volume", "metric", "delta", "delta_ci_low", "delta_ci_high", "flag"]) <= set(changes.columns)
    assert set(keys + ["transaction_id", "amount", "fraud_score"]) <= set(examples.columns)
    results = pl.read_parquet(result.out / "results.parquet")
    assert set(changes["segment"]) <= set(results["segment"])
