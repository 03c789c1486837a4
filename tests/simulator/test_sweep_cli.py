"""`policysim sweep`: outputs, the recommendation, per-value thresholds, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from simulator.cli import app

CONFIG = """
[segments]
by = [["card_country"], ["card_funding"]]
top_k = { card_country = 5 }

[estimation]
bootstrap = 20
seed = 4

[sweep]
score = "fraud_score"
challenge_above = [0.02, 0.05, 0.1]
block_above = { start = 0.2, stop = 0.8, num = 7 }
by = "card_funding"

[sweep.objective]
maximize = "net_value"
constraints = [{ metric = "auth_rate", min = 0.8 }]
"""


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def test_sweep_writes_every_output_and_recommends(generated: Path, tmp_path: Path) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    result = invoke("sweep", str(config), "--data", str(generated / "transactions"), "--out", str(out), "--engine", "local")
    assert result.exit_code == 0, result.output
    assert "recommendation" in result.output and "bootstrap replicates" in result.output
    table = pl.read_parquet(out / "sweep.parquet")
    assert table["point"].n_unique() == 21 and {"challenge_above", "block_above"} <= set(table.columns)
    frontier = pl.read_parquet(out / "frontier.parquet")
    assert set(frontier["frontier"].unique()) == {"net_value~fraud_rate_bps", "auth_rate~fraud_rate_bps"}
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "frontier.html").read_text()
    assert "<script src=\"http" not in html and "plotly" in html.lower()
    recommendation = json.loads((out / "recommendation.json").read_text())
    assert recommendation["point"] is not None and 0.0 <= recommendation["bootstrap_share"] <= 1.0
    assert recommendation["baseline_policy"] == "production"  # the deltas say what they compare with
    assert recommendation["by_segment_policy"]["kind"] == "segment_threshold"
    per_value = pl.read_parquet(out / "by_segment.parquet")
    assert set(per_value["segment"]) == {"card_funding=credit", "card_funding=debit", "card_funding=prepaid"}
    assert pl.read_parquet(out / "by_segment_results.parquet")["policy"].unique().to_list() == ["by_segment"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["grid"]["points"] == 21 and summary["grid"]["evaluation"].startswith("binned")


def test_objective_option_overrides_and_bad_ones_exit_2(generated: Path, tmp_path: Path) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text(CONFIG.replace('by = "card_funding"\n', ""))
    data = str(generated / "transactions")
    result = invoke("sweep", str(config), "--data", data, "--out", str(tmp_path / "a"), "--engine", "local",
                    "--objective", "minimize fraud_loss; auth_rate>=0.85", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "a" / "recommendation.json").read_text())["metric"] == "fraud_loss"
    result = invoke("sweep", str(config), "--data", data, "--out", str(tmp_path / "b"), "--engine", "local",
                    "--objective", "net_valeu")
    assert result.exit_code == 2 and "did you mean 'net_value'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "b").exists()


def test_a_config_without_sweep_exits_2(generated: Path, tmp_path: Path) -> None:
    config = tmp_path / "plain.toml"
    config.write_text("[estimation]\nbootstrap = 0\n")
    result = invoke("sweep", str(config), "--data", str(generated / "transactions"), "--out", str(tmp_path / "o"),
                    "--engine", "local")
    assert result.exit_code == 2 and "no [sweep] table" in result.output
