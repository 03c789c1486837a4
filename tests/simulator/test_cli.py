"""The command line: exit codes, key lines, outputs; user errors never show a traceback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from click.testing import Result
from typer.testing import CliRunner

from simulator.cli import app
from tests.conftest import LOCAL

RUNNER = CliRunner()
CONFIGS = Path(__file__).parents[2] / "configs"


def invoke(*args: str):
    return RUNNER.invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli")
    result = invoke("generate", "--rows", "20000", "--out", str(out), "--files", "2", "--seed", "3", "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_generate_writes_log_ground_truth_and_metadata(data: Path) -> None:
    assert len(list((data / "transactions").glob("*.parquet"))) == 2
    assert len(list((data / "ground_truth").glob("*.parquet"))) == 2
    assert json.loads((data / "generation.json").read_text())["spec"]["rows"] == 20000


def test_generate_rejects_bad_arguments(tmp_path: Path) -> None:
    result = invoke("generate", "--rows", "0", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "rows" in result.output and "Traceback" not in result.output


def test_validate_prints_a_summary(data: Path) -> None:
    result = invoke("validate", str(data / "transactions"))
    assert result.exit_code == 0, result.output
    assert "20,000" in result.output and "challenge" in result.output


def test_validate_bad_data_exits_2_naming_column_count_and_example(data: Path, tmp_path: Path) -> None:
    frame = pl.read_parquet(data / "transactions")
    broken = frame.with_columns(pl.when(pl.int_range(pl.len()) < 3).then(0.0).otherwise(pl.col("propensity")).alias("propensity"))
    broken.write_parquet(tmp_path / "bad.parquet")
    result = invoke("validate", str(tmp_path / "bad.parquet"))
    assert result.exit_code == 2
    assert "propensity" in result.output and "3 rows" in result.output
    assert frame["transaction_id"][0] in result.output
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def ran(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], tuple[Result, Path]]:
    """`ran(config)`: `policysim run CONFIG --engine local` on the module's log, once per config (not quiet).

    The tests below only read what a run printed and wrote, so one run of thresholds.toml serves both the
    example-config check and the check of its outputs.
    """
    done: dict[Path, tuple[Result, Path]] = {}

    def ran_(config: Path) -> tuple[Result, Path]:
        if config not in done:
            out = tmp_path_factory.mktemp(f"run-{config.stem}") / "out"
            done[config] = invoke("run", str(config), "--data", str(data / "transactions"), "--out", str(out),
                                  "--engine", "local"), out
        return done[config]

    return ran_


def test_run_writes_results_and_summary(ran: Callable[[Path], tuple[Result, Path]]) -> None:
    result, out = ran(CONFIGS / "thresholds.toml")
    assert result.exit_code == 0, result.output
    results = pl.read_parquet(out / "results.parquet")
    spec_columns = ["policy", "segment", "metric", "estimate", "ci_low", "ci_high", "baseline", "delta",
                    "delta_ci_low", "delta_ci_high", "rows", "ess", "flag"]
    assert set(spec_columns) <= set(results.columns)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["as_of"] and summary["data"]["fingerprint"] and summary["rows"] == 20000
    assert summary["labels"]["immature_labels"] == "develop" and "fraud labels developed from" in result.output
    assert "block_more" in result.output and "net_value" in result.output
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temporary files


def test_run_bad_config_exits_2(data: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[policies]]\nname = "x"\nkind = "treshold"\nscore = "fraud_score"\nblock_above = 0.5\n')
    result = invoke("run", str(config), "--data", str(data / "transactions"), "--out", str(tmp_path / "out"),
                    "--engine", "local")
    assert result.exit_code == 2
    assert "did you mean 'threshold'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_every_example_config_runs_on_demo_data(config: Path, ran: Callable[[Path], tuple[Result, Path]]) -> None:
    result, out = ran(config)
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out / "results.parquet").height > 0


def test_run_on_ray_by_default(ray_cluster, data: Path, tmp_path: Path) -> None:
    config = Path(__file__).parents[2] / "configs" / "thresholds.toml"
    result = invoke("run", str(config), "--data", str(data / "transactions"), "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "on ray" in result.output
    assert json.loads((tmp_path / "summary.json").read_text())["engine"].startswith("ray")


def test_validate_reads_column_names_from_a_config(data: Path, tmp_path: Path) -> None:
    renamed = pl.read_parquet(data / "transactions").rename({"propensity": "p_logged", "amount": "amt"})
    renamed.write_parquet(tmp_path / "renamed.parquet")
    assert invoke("validate", str(tmp_path / "renamed.parquet")).exit_code == 2
    config = tmp_path / "columns.toml"
    config.write_text('[data.columns]\npropensity = "p_logged"\namount = "amt"\n')
    result = invoke("validate", str(tmp_path / "renamed.parquet"), "--config", str(config))
    assert result.exit_code == 0, result.output


def test_library_api_is_importable_from_the_package(data: Path) -> None:
    from simulator import load_config, run

    config = load_config(Path(__file__).parents[2] / "configs" / "thresholds.toml")
    result = run(config, data / "transactions", execution=LOCAL)
    assert result.overall().filter(pl.col("policy") == "block_more").height == 18
