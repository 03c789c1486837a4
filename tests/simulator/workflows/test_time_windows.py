"""`[segments] time` through every verb: run (local and Ray), sweep, review, foreign logs and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.config import parse_config
from simulator.engine.execution import Execution
from simulator.synthetic.foreign import exported, foreign_export
from simulator.workflows.review import review
from simulator.workflows.run import run, run_frame
from simulator.workflows.sweep import sweep
from tests.conftest import LOCAL
from tests.factories import in_row_groups, make_transactions
from tests.simulator.data.test_export_shapes import canonical_config, foreign_config

# the generator's year, 2025-10-01 to 2026-10-01 (UTC)
MONTHS = [f"created_at_month=2025-{m}" for m in (10, 11, 12)] + [f"created_at_month=2026-{m:02d}" for m in range(1, 10)]
POLICY = {"name": "strict", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.02, "block_above": 0.3}
CONFIG = {
    "segments": {"by": [["card_country"], ["created_at_week", "card_funding"]], "time": "week"},
    "estimation": {"bootstrap": 20, "seed": 3},
    "policies": [POLICY],
}
NUMBERS = ["estimate", "ci_low", "ci_high", "delta", "delta_ci_low", "delta_ci_high", "ess"]
KEYS = ["policy", "segmentation", "segment", "metric"]


@pytest.fixture(scope="module")
def dataset(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated log in small row groups, so that it splits into several shards."""
    return in_row_groups(generated / "transactions", tmp_path_factory.mktemp("windows"), 5_000)


@pytest.fixture(scope="module")
def local(dataset: Path) -> pl.DataFrame:
    return run(parse_config(CONFIG), dataset, execution=LOCAL).results


def _weeks(dataset: Path) -> pl.DataFrame:
    """The payments of each UTC week (from Monday), counted straight from the log."""
    log = pl.read_parquet(dataset)
    monday = pl.col("created_at").dt.convert_time_zone("UTC").dt.date().dt.truncate("1w").cast(pl.String)
    return log.group_by(("created_at_week=" + monday).alias("segment")).agg(pl.len().alias("payments"))


def test_a_window_s_rows_are_its_payments_and_windows_add_up_to_all(dataset: Path, local: pl.DataFrame) -> None:
    attempts = local.filter(pl.col("policy") == "strict", pl.col("metric") == "attempts")
    windows = attempts.filter(pl.col("segmentation") == "created_at_week")
    assert windows.height == 53  # the generator's year from Wednesday 2025-10-01: Mondays 2025-09-29 to 2026-09-28
    joined = windows.join(_weeks(dataset), on="segment", how="full", coalesce=True)
    assert joined.height == windows.height and (joined["rows"] == joined["payments"]).all()
    total = attempts.filter(pl.col("segment") == "ALL")
    assert windows["rows"].sum() == total["rows"].item() == 40_000
    assert windows["estimate"].sum() == pytest.approx(total["estimate"].item(), rel=1e-9)
    crossed = attempts.filter(pl.col("segmentation") == "created_at_week|card_funding")
    assert crossed["rows"].sum() == 40_000
    assert crossed["segment"].str.contains(r"^created_at_week=\d{4}-\d{2}-\d{2}\|card_funding=").all()


def test_the_all_segment_does_not_change_with_windows(dataset: Path, local: pl.DataFrame) -> None:
    plain = CONFIG | {"segments": {"by": [["card_country"]]}}
    expected = run(parse_config(plain), dataset, execution=LOCAL).results.filter(pl.col("segment") == "ALL").sort(KEYS)
    got = local.filter(pl.col("segment") == "ALL").sort(KEYS)
    assert got["flag"].equals(expected["flag"])
    for column in NUMBERS:
        np.testing.assert_allclose(got[column].to_numpy().astype(float), expected[column].to_numpy().astype(float),
                                   rtol=1e-9, equal_nan=True, err_msg=column)


def test_ray_gives_the_local_results(ray_cluster, dataset: Path, local: pl.DataFrame) -> None:
    result = run(parse_config(CONFIG), dataset, execution=Execution(engine="ray", shard_rows=5_000)).results
    a, b = result.sort(KEYS), local.sort(KEYS)
    assert a.select(KEYS + ["rows", "flag"]).equals(b.select(KEYS + ["rows", "flag"]))
    for column in NUMBERS:
        x, y = a[column].to_numpy().astype(float), b[column].to_numpy().astype(float)
        scale = float(np.nanmax(np.abs(y))) if np.isfinite(y).any() else 1.0
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12 * scale, equal_nan=True, err_msg=column)


def test_a_small_window_is_flagged_like_any_small_segment() -> None:
    # 2,000 payments in the week of 2026-06-01 and 12 on Monday 2026-06-08: too few for an ESS of 30
    stamps = [datetime(2026, 6, 1, tzinfo=UTC) + timedelta(minutes=5 * i) for i in range(2_000)]
    stamps += [datetime(2026, 6, 8, 9, tzinfo=UTC)] * 12
    moved = pl.Series(stamps, dtype=pl.Datetime("us", "UTC"))
    frame = make_transactions(n=2_012, seed=4).with_columns(  # disputes move with their payments
        (pl.col("disputed_at") + (moved - pl.col("created_at"))).alias("disputed_at"), created_at=moved)
    config = parse_config({"segments": {"time": "week"}, "policies": [POLICY]})
    results = run_frame(config, frame).results.filter(pl.col("policy") == "strict", pl.col("metric") == "net_value")
    small = results.filter(pl.col("segment") == "created_at_week=2026-06-08").row(0, named=True)
    large = results.filter(pl.col("segment") == "created_at_week=2026-06-01").row(0, named=True)
    assert small["rows"] == 12 and small["ess"] < 30 and "low_ess" in small["flag"]
    assert large["rows"] == 2_000 and "low_ess" not in large["flag"]


def test_a_foreign_log_gets_the_windows_of_its_canonical_twin(generated: Path, tmp_path: Path) -> None:
    log = pl.read_parquet(generated / "transactions")
    exported(log).write_parquet(tmp_path / "canonical.parquet")
    foreign_export(log).write_csv(tmp_path / "foreign.csv")  # `ts` as text, '%Y-%m-%d %H:%M:%S'
    segments = {"segments": {"by": [["card_country"]], "time": "month"}}
    expected = run(parse_config(canonical_config(tmp_path / "canonical.parquet") | segments), execution=LOCAL)
    result = run(parse_config(foreign_config(tmp_path / "foreign.csv") | segments), execution=LOCAL)
    months = result.results.filter(pl.col("segmentation") == "created_at_month")
    assert months["segment"].unique().sort().to_list() == MONTHS
    assert result.results.equals(expected.results)


def test_a_sweep_reports_every_point_per_window(generated: Path) -> None:
    table = {"segments": {"time": "month"}, "estimation": {"bootstrap": 0},
             "sweep": {"score": "fraud_score", "block_above": [0.3, 0.6], "challenge_above": [0.05]}}
    result = sweep(parse_config(table), generated / "transactions", execution=LOCAL)
    months = result.table.filter(pl.col("segmentation") == "created_at_month", pl.col("metric") == "attempts")
    assert months.group_by("point").agg(pl.col("rows").sum())["rows"].to_list() == [40_000, 40_000]
    assert sorted(months["segment"].unique()) == MONTHS


def test_a_review_checks_every_window(generated: Path) -> None:
    table = {"segments": {"time": "month"}, "estimation": {"bootstrap": 0}, "policies": [POLICY],
             "review": {"candidate": "strict",
                        "guardrails": [{"metric": "fraud_rate_bps", "max_increase": 1.0, "scope": "every_segment"}]}}
    result = review(parse_config(table), generated / "transactions", execution=LOCAL)
    checked = set(result.guardrails["segment"].to_list())
    assert set(MONTHS) <= checked


def test_the_cli_refuses_an_unknown_window_with_exit_2(generated: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[segments]\ntime = "hour"\n')
    result = CliRunner().invoke(app, ["run", str(config), "--data", str(generated / "transactions"),
                                      "--out", str(tmp_path / "out"), "--engine", "local", "--quiet"])
    assert result.exit_code == 2
    assert "segments.time: input should be 'day', 'week' or 'month', got 'hour'" in result.output
