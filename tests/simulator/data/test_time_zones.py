"""Timestamps without a zone (read as UTC) or in another zone give the results of UTC data."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.config import parse_config
from simulator.workflows.run import run, run_frame
from tests.conftest import LOCAL

CONFIG = {"segments": {"by": [["card_country"]]},
          "policies": [{"name": "strict", "kind": "threshold", "score": "fraud_score", "block_above": 0.3}]}
COLUMNS = ["policy", "segment", "metric", "estimate", "ci_low", "ci_high", "delta", "rows", "flag"]


def _zoned(frame: pl.DataFrame, zone: str | None) -> pl.DataFrame:
    stamps = ("created_at", "disputed_at")
    if zone is None:
        return frame.with_columns(pl.col(c).dt.replace_time_zone(None) for c in stamps)
    return frame.with_columns(pl.col(c).dt.convert_time_zone(zone) for c in stamps)


@pytest.fixture(scope="module")
def utc(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The generated log (UTC) and its results, computed once for every zone below."""
    frame = pl.read_parquet(generated / "transactions")
    path = tmp_path_factory.mktemp("utc") / "utc.parquet"
    frame.write_parquet(path)  # one file, like the zoned copy: the same summation order
    return frame, run(parse_config(CONFIG), path, execution=LOCAL).results.select(COLUMNS)


@pytest.mark.parametrize("zone", [None, "Europe/Paris", "America/Sao_Paulo"])
def test_zones_do_not_change_results(utc: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path, zone: str | None) -> None:
    frame, expected = utc
    path = tmp_path / "zoned.parquet"
    _zoned(frame, zone).write_parquet(path)
    assert run(parse_config(CONFIG), path, execution=LOCAL).results.select(COLUMNS).equals(expected)
    assert run_frame(parse_config(CONFIG), _zoned(frame, zone)).results.select(COLUMNS).equals(expected)


def test_error_messages_keep_their_brackets(tmp_path: Path) -> None:
    frame = pl.DataFrame({"transaction_id": ["a"]})
    frame.write_parquet(tmp_path / "bad.parquet")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "bad.parquet")])
    assert result.exit_code == 2
    assert "[data.columns]" in result.output
