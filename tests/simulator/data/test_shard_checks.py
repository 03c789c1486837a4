"""`run` validates the data in the shards' own read (simulator/data/shard_checks.py): same problems, same summary.

Each case splits a log over several files and shards, breaks rows in more than
one of them, and compares what `run` raises (validation folded into the shard
pass) with what the one-pass validator `check_dataset` raises.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import polars as pl
import pytest

from simulator.config import parse_config
from simulator.data.validate import check_dataset
from simulator.engine.execution import Execution
from simulator.errors import InvalidData
from simulator.workflows import run as workflow
from simulator.workflows.run import run
from tests.factories import make_transactions, write_parquet

CONFIG = parse_config({"segments": {"by": [["card_country"]]},
                       "policies": [{"name": "s", "kind": "threshold", "score": "fraud_score", "block_above": 0.3}]})
SMALL_SHARDS = Execution(engine="local", shard_rows=100)


def at(rows: list[int], value: object, column: str) -> pl.Expr:
    """`column` with `value` on the given rows."""
    return pl.when(pl.int_range(pl.len()).is_in(rows)).then(pl.lit(value)).otherwise(pl.col(column)).alias(column)


def split(frame: pl.DataFrame, folder: Path, parts: int = 3) -> Path:
    """`frame` in `parts` files of equal size (rows in order), under `folder`."""
    size = -(-frame.height // parts)
    for index in range(parts):
        write_parquet(frame.slice(index * size, size), folder / f"part-{index}.parquet")
    return folder


def messages(path: Path) -> tuple[str, str]:
    """What the one-pass validator raises, and what `run` raises, on the data at `path`."""
    with pytest.raises(InvalidData) as one_pass:
        check_dataset(path, CONFIG.data.schema(), as_of=CONFIG.data.as_of,
                      label_maturity_days=CONFIG.data.label_maturity_days)
    with pytest.raises(InvalidData) as folded:
        run(CONFIG, path, execution=SMALL_SHARDS)
    return str(one_pass.value), str(folded.value)


BROKEN = {
    "ranges_and_nulls_in_several_files": lambda f: f.with_columns(at([250, 420, 590], 0.0, "propensity"))
    .with_columns(at([330], None, "amount")),
    "unknown_action_and_nan_scores": lambda f: f.with_columns(at([12, 598], float("nan"), "fraud_score"))
    .with_columns(at([410], "review", "action")),
    "duplicated_id_across_files": lambda f: f.with_columns(at([590], f["transaction_id"][3], "transaction_id")),
    "no_rows": lambda f: f.head(0),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_run_reports_what_the_one_pass_validator_reports(tmp_path: Path, case: str) -> None:
    path = split(BROKEN[case](make_transactions(n=600, seed=5)), tmp_path / "data")
    one_pass, folded = messages(path)
    assert folded == one_pass


def test_schema_problems_are_left_to_the_one_pass_validator(tmp_path: Path) -> None:
    path = split(make_transactions(n=300).drop("propensity"), tmp_path / "data")
    one_pass, folded = messages(path)
    assert folded == one_pass and "propensity" in folded


def test_run_summarises_the_data_as_the_validator_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = split(make_transactions(n=900, seed=8), tmp_path / "data")
    summary = check_dataset(path, CONFIG.data.schema(), as_of=CONFIG.data.as_of,
                            label_maturity_days=CONFIG.data.label_maturity_days)

    def no_second_pass(*args: object, **kwargs: object) -> None:
        raise AssertionError("run read the data twice: its shards should have validated it")

    monkeypatch.setattr(workflow, "check_dataset", no_second_pass)
    monkeypatch.setattr(workflow, "validated_data", no_second_pass)
    folded = run(CONFIG, path, execution=SMALL_SHARDS).data
    assert folded is not None
    for item in dataclasses.fields(summary):
        mine, theirs = getattr(folded, item.name), getattr(summary, item.name)
        if isinstance(theirs, float):  # sums of floats, per shard here, may differ in the last bits
            assert mine == pytest.approx(theirs, rel=1e-12), item.name
        elif item.name == "scores":
            assert {k: (v.min, v.max) for k, v in mine.items()} == {k: (v.min, v.max) for k, v in theirs.items()}
            assert all(mine[k].mean == pytest.approx(v.mean, rel=1e-12) for k, v in theirs.items())
        else:
            assert mine == theirs, item.name
