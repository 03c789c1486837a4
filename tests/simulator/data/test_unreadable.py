"""Unreadable, truncated or corrupt files, and where a relative data path points (SPEC §2).

Each is a clear data error naming the file, exit 2 from the CLI without a
traceback, on the local engine and inside a Ray task alike.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.config import load_config, parse_config
from simulator.data.load import open_source, scan_dataset
from simulator.data.validate import check_dataset
from simulator.engine.execution import Execution, execute
from simulator.errors import InvalidData
from simulator.plan.compiled import compile_plan
from simulator.schema import Schema
from simulator.workflows.run import run
from tests.conftest import LOCAL
from tests.factories import make_transactions, write_parquet

POLICY = '[[policies]]\nname = "stricter"\nkind = "threshold"\nscore = "fraud_score"\nblock_above = 0.3\n'


def truncated(path: Path) -> Path:
    """`path` cut in half, as an interrupted copy leaves it (no footer: polars says it must end with PAR1)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def corrupted_pages(path: Path) -> Path:
    """`path` with its column data overwritten but its footer intact: readable metadata, unreadable rows."""
    data = bytearray(path.read_bytes())
    data[8: len(data) // 2] = b"\xff" * (len(data) // 2 - 8)
    path.write_bytes(bytes(data))
    return path


def test_a_truncated_parquet_file_is_named(tmp_path: Path) -> None:
    path = truncated(write_parquet(make_transactions(n=200), tmp_path / "log.parquet"))
    with pytest.raises(InvalidData, match=re.escape(f"cannot read {path}: ")):
        check_dataset(path, Schema())


def test_a_truncated_file_among_others_is_named(tmp_path: Path) -> None:
    frame = make_transactions(n=300)
    write_parquet(frame.head(150), tmp_path / "dt=1" / "part-0.parquet")
    bad = truncated(write_parquet(frame.tail(150), tmp_path / "dt=2" / "part-0.parquet"))
    with pytest.raises(InvalidData, match=re.escape(f"cannot read {bad}: ")):
        check_dataset(tmp_path, Schema())


def test_corrupt_column_data_is_named(tmp_path: Path) -> None:
    frame = make_transactions(n=300)
    write_parquet(frame.head(150), tmp_path / "part-0.parquet")
    bad = corrupted_pages(write_parquet(frame.tail(150), tmp_path / "part-1.parquet"))
    with pytest.raises(InvalidData, match=re.escape(f"cannot read {bad}: ")):
        check_dataset(tmp_path, Schema())


def test_the_cli_exits_2_without_a_traceback(tmp_path: Path) -> None:
    path = truncated(write_parquet(make_transactions(n=200), tmp_path / "log.parquet"))
    config = tmp_path / "config.toml"
    config.write_text(POLICY)
    runner = CliRunner()
    for args in (["validate", str(path)],
                 ["run", str(config), "--data", str(path), "--out", str(tmp_path / "out"), "--engine", "local"]):
        result = runner.invoke(app, args, terminal_width=400)
        assert result.exit_code == 2, result.output
        assert f"cannot read {path}" in result.output and "Traceback" not in result.output


def test_a_file_that_breaks_inside_a_ray_task_surfaces_as_the_same_error(ray_cluster: None, tmp_path: Path) -> None:
    path = write_parquet(make_transactions(n=300), tmp_path / "log.parquet")
    config = parse_config({"policies": [{"name": "stricter", "kind": "threshold", "score": "fraud_score",
                                         "block_above": 0.3}]})
    schema = config.data.schema()
    source = open_source(path, schema)
    plan = compile_plan(config, scan_dataset(source, schema))
    corrupted_pages(path)  # after planning: only the task reading the rows meets it
    with pytest.raises(InvalidData, match=re.escape(f"cannot read {path}: ")) as raised:
        execute(plan, source, schema, Execution(engine="ray"))
    assert "RayTaskError" not in str(raised.value) and type(raised.value) is InvalidData


def test_a_relative_data_path_is_the_config_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_parquet(make_transactions(n=300), tmp_path / "data" / "log.parquet")
    (tmp_path / "configs").mkdir()
    config = tmp_path / "configs" / "run.toml"
    config.write_text('[data]\npath = "../data/log.parquet"\n' + POLICY)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_config(Path(os.path.relpath(config)))
    assert loaded.data.path == str(tmp_path / "data" / "log.parquet")
    assert run(loaded, execution=LOCAL).stats.rows == 300


def test_a_missing_relative_data_path_is_shown_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "run.toml"
    config.write_text('[data]\npath = "nowhere/log.parquet"\n' + POLICY)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "run.toml", "--out", "out", "--engine", "local"], terminal_width=400)
    assert result.exit_code == 2
    assert f"data path {tmp_path / 'nowhere' / 'log.parquet'} does not exist" in result.output


def test_an_object_storage_path_is_not_made_relative(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('[data]\npath = "s3://bucket/logs/"\n')
    assert load_config(config).data.path == "s3://bucket/logs/"
