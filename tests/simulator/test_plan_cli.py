"""`policysim plan`: exit codes, the files it writes, and its table at 80 columns."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console
from typer.testing import CliRunner

from simulator.cli import app
from simulator.config import load_config
from simulator.report.plan import plan_table
from simulator.workflows.plan import plan
from tests.conftest import LOCAL

CONFIGS = Path(__file__).parents[2] / "configs"


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan_cli")
    result = invoke("generate", "--rows", "30000", "--out", str(out), "--seed", "7", "--quiet")
    assert result.exit_code == 0, result.output
    return out / "transactions"


def test_plan_writes_its_files_and_prints_the_smallest_designs(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    result = invoke("plan", str(CONFIGS / "block_risky.toml"), "--data", str(data), "--out", str(out),
                    "--engine", "local", "--days", "30,90,365", "--exploration", "0.01,0.1")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["plan.md", "plan.parquet", "plan.png", "summary.json"]
    grid = pl.read_parquet(out / "plan.parquet")
    assert set(grid["name"]) == {"fraud_rate_bps max_increase 1", "net_value min_delta 0", "auth_rate min_delta -0.002"}
    assert {"days", "exploration", "half_width", "distance", "conclusive", "monthly_cost"} <= set(grid.columns)
    assert sorted(set(grid["exploration"])) == [0.01, 0.05, 0.1]  # the log's own share is in the grid
    assert (out / "plan.png").read_bytes()[:4] == b"\x89PNG"
    markdown = (out / "plan.md").read_text()
    assert "smallest conclusive design" in markdown and "(plan.png)" in markdown
    assert json.loads((out / "summary.json").read_text())["plan"]["exploration"] == pytest.approx(0.05)
    assert "block_risky_challenges against production: smallest conclusive design" in result.output
    assert "net_value min_delta 0" in result.output
    again = invoke("plan", str(CONFIGS / "block_risky.toml"), "--data", str(data), "--out", str(out),
                   "--engine", "local", "--quiet", "--overwrite")
    assert again.exit_code == 0 and "smallest conclusive design" in again.output  # the answer, even --quiet


def test_the_plan_table_fits_80_columns_uncut(data: Path) -> None:
    result = plan(load_config(CONFIGS / "block_risky.toml"), data, execution=LOCAL)
    console = Console(width=80, record=True, color_system=None)
    console.print(plan_table(result))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for name in result.current["name"]:
        assert name in text  # a guardrail's name is never folded


@pytest.mark.parametrize(("toml", "message"), [
    ('[[policies]]\nname = "p"\nkind = "threshold"\nscore = "fraud_score"\nblock_above = 0.5\n\n[review]\n'
     'candidate = "p"\n\n[[review.guardrails]]\nmetric = "net_valeu"\nmin_delta = 0\n', "net_valeu"),
    ('[estimation]\nestimator = "snipw"\n', "nothing to plan"),
])
def test_a_bad_config_exits_2_before_any_work(data: Path, tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    result = invoke("plan", str(config), "--data", str(data), "--out", str(tmp_path / "out"), "--engine", "local")
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("flag", "value"), [("--exploration", "0.05,1.5"), ("--days", "0,30"), ("--days", "x")])
def test_a_bad_grid_exits_2(data: Path, tmp_path: Path, flag: str, value: str) -> None:
    result = invoke("plan", str(CONFIGS / "block_risky.toml"), "--data", str(data), "--out", str(tmp_path / "o"),
                    "--engine", "local", flag, value)
    assert result.exit_code == 2 and flag in result.output and "Traceback" not in result.output
