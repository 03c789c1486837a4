"""The data contract of SPEC §2: one test per rule, then summaries, renaming and layouts (simulator/data/validate.py).

Each rule breaks a valid factory frame on a few rows, writes it to Parquet and
checks that the error names the column, the count of offending rows and the
id of the first one, and that no other problem is reported.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from simulator.errors import InvalidData
from simulator.schema import REQUIRED_COLUMNS, Schema
from simulator.data.validate import Problem, check_dataset, find_problems
from tests.factories import make_transactions, write_parquet

LOGGING_PROBS = ("logging_prob_allow", "logging_prob_challenge", "logging_prob_block")
ROWS = [7, 42]  # the rows a rule breaks when it does not need particular rows
FIXED = None  # a case's row predicate: break the ROWS above


def valid(*, logging_probs: bool = False) -> pl.DataFrame:
    """A valid frame; without logging probabilities unless asked, so a broken propensity breaks one rule only."""
    frame = make_transactions(n=300, seed=3)
    return frame if logging_probs else frame.drop(LOGGING_PROBS)


def break_rows(
    frame: pl.DataFrame, column: str, where: pl.Expr | None, value: object
) -> tuple[pl.DataFrame, list[int]]:
    """`frame` with `column` set to `value` on two rows (ROWS, or the first two matching `where`), and those rows."""
    rows = ROWS if where is None else frame.with_row_index().filter(where)["index"].head(2).to_list()
    assert len(rows) == 2, f"the factory frame has fewer than 2 rows where {where}"
    new = value if isinstance(value, pl.Expr) else pl.lit(value)
    broken = frame.with_columns(
        pl.when(pl.int_range(pl.len()).is_in(rows)).then(new).otherwise(pl.col(column)).alias(column)
    )
    return broken.cast({column: frame.schema[column]}), rows


def invalid(tmp_path: Path, frame: pl.DataFrame, schema: Schema | None = None) -> InvalidData:
    """The `InvalidData` that validating `frame` raises."""
    path = write_parquet(frame, tmp_path / "data.parquet")
    with pytest.raises(InvalidData) as err:
        check_dataset(path, schema or Schema())
    return err.value


def found(error: InvalidData) -> set[tuple[str, str]]:
    """(column, rule) of every problem in `error`."""
    return {(problem.column, problem.rule) for problem in error.problems if isinstance(problem, Problem)}


def problem(error: InvalidData, column: str, rule: str) -> Problem:
    """The one problem of `error` for (column, rule)."""
    (match,) = [p for p in error.problems if isinstance(p, Problem) and (p.column, p.rule) == (column, rule)]
    return match


def tx(row: int) -> str:
    return f"tx_{row:06d}"


action, authorized, fraud_dispute = pl.col("action"), pl.col("authorized"), pl.col("fraud_dispute")
NAN = float("nan")

ROW_RULES = [
    # (column broken, rows, value, rule reported for that column)
    pytest.param("created_at", FIXED, None, "null", id="null-created_at"),
    pytest.param("amount", FIXED, None, "null", id="null-amount"),
    pytest.param("action", FIXED, None, "null", id="null-action"),
    pytest.param("propensity", FIXED, None, "null", id="null-propensity"),
    pytest.param("fraud_score", FIXED, None, "null", id="null-score"),
    pytest.param("amount", FIXED, 0.0, "range", id="amount-zero"),
    pytest.param("amount", FIXED, -3.5, "range", id="amount-negative"),
    pytest.param("amount", FIXED, NAN, "range", id="amount-nan"),
    pytest.param("propensity", FIXED, 0.0, "range", id="propensity-zero"),
    pytest.param("propensity", FIXED, 1.5, "range", id="propensity-above-one"),
    pytest.param("propensity", FIXED, NAN, "range", id="propensity-nan"),
    pytest.param("fraud_score", FIXED, 1.2, "range", id="score-above-one"),
    pytest.param("auth_score", FIXED, -0.1, "range", id="score-negative"),
    pytest.param("fraud_score", FIXED, NAN, "range", id="score-nan"),
    pytest.param("action", FIXED, "review", "unknown_action", id="unknown-action"),
    pytest.param("authorized", action == "block", False, "contradiction", id="authorized-on-blocked"),
    pytest.param("authorized", (action != "block") & ~authorized, None, "contradiction", id="authorized-null"),
    pytest.param("fraud_dispute", ~authorized, False, "contradiction", id="dispute-on-declined"),
    pytest.param("fraud_dispute", authorized & ~fraud_dispute, None, "contradiction", id="dispute-null"),
    pytest.param("dispute_lost", ~fraud_dispute, False, "contradiction", id="lost-without-dispute"),
    pytest.param("dispute_lost", fraud_dispute, None, "contradiction", id="lost-null"),
    pytest.param("disputed_at", ~fraud_dispute, pl.col("created_at"), "contradiction", id="disputed-at-no-dispute"),
    pytest.param(
        "disputed_at", fraud_dispute, pl.col("created_at") - timedelta(days=1), "contradiction", id="disputed-early"
    ),
]


@pytest.mark.parametrize(("column", "where", "value", "rule"), ROW_RULES)
def test_row_rule(tmp_path: Path, column: str, where: pl.Expr | None, value: object, rule: str) -> None:
    frame, rows = break_rows(valid(), column, where, value)
    error = invalid(tmp_path, frame)
    assert found(error) == {(column, rule)}
    reported = problem(error, column, rule)
    assert (reported.count, reported.example_id) == (2, tx(rows[0]))
    assert f"{column}: 2 rows {reported.detail}, e.g. transaction_id={tx(rows[0])}" in str(error)


def test_null_transaction_id(tmp_path: Path) -> None:
    frame, _ = break_rows(valid(), "transaction_id", FIXED, None)
    error = invalid(tmp_path, frame)
    assert found(error) == {("transaction_id", "null")}
    assert "transaction_id: 2 rows null" in str(error)


def test_duplicate_transaction_id_counts_every_row_involved(tmp_path: Path) -> None:
    frame, _ = break_rows(valid(), "transaction_id", pl.int_range(pl.len()).is_in([9, 12]), tx(4))
    error = invalid(tmp_path, frame)
    assert found(error) == {("transaction_id", "duplicate")}
    # rows 4, 9 and 12 now share tx_000004
    assert (
        problem(error, "transaction_id", "duplicate").count,
        problem(error, "transaction_id", "duplicate").example_id,
    ) == (3, tx(4))
    assert "transaction_id: 3 rows share their transaction_id with another row, e.g. transaction_id=tx_000004" in str(
        error
    )


def test_integer_transaction_ids_are_accepted_and_checked(tmp_path: Path) -> None:
    frame = valid().with_columns(transaction_id=pl.int_range(pl.len(), dtype=pl.Int64) * 10)
    check_dataset(write_parquet(frame, tmp_path / "ok.parquet"), Schema())
    frame, _ = break_rows(frame, "transaction_id", FIXED, 30)
    error = invalid(tmp_path, frame)
    assert "transaction_id: 3 rows share their transaction_id with another row, e.g. transaction_id=30" in str(error)


@pytest.mark.parametrize("column", REQUIRED_COLUMNS)
def test_missing_column(tmp_path: Path, column: str) -> None:
    error = invalid(tmp_path, valid().drop(column))
    assert found(error) == {(column, "missing")}
    assert f"{column}: missing column" in str(error)
    assert "map it in [data.columns]" in str(error)


@pytest.mark.parametrize(
    ("column", "mistyped"),
    [
        pytest.param("transaction_id", pl.int_range(pl.len()).cast(pl.Float64), id="transaction_id-float"),
        pytest.param("created_at", pl.col("created_at").dt.epoch("s"), id="created_at-epoch"),
        pytest.param("created_at", pl.col("created_at").cast(pl.Date), id="created_at-date"),
        pytest.param("amount", pl.col("amount").cast(pl.String), id="amount-string"),
        pytest.param("action", pl.col("action").rank("dense"), id="action-integer"),
        pytest.param("propensity", pl.col("propensity").cast(pl.String), id="propensity-string"),
        pytest.param("authorized", pl.col("authorized").cast(pl.Int8), id="authorized-integer"),
        pytest.param("fraud_dispute", pl.col("fraud_dispute").cast(pl.String), id="fraud_dispute-string"),
        pytest.param("dispute_lost", pl.col("dispute_lost").cast(pl.Int64), id="dispute_lost-integer"),
        pytest.param("disputed_at", pl.col("disputed_at").dt.epoch("s"), id="disputed_at-epoch"),
        pytest.param("fraud_score", pl.col("fraud_score").cast(pl.String), id="score-string"),
    ],
)
def test_wrong_dtype(tmp_path: Path, column: str, mistyped: pl.Expr) -> None:
    frame = valid().with_columns(mistyped.alias(column))
    error = invalid(tmp_path, frame)
    assert found(error) == {(column, "dtype")}
    assert f"{column}: has type {frame.schema[column]}, expected " in str(error)


def test_accepted_dtypes(tmp_path: Path) -> None:
    """Categorical actions, integer amounts, naive timestamps and all-null outcome columns are fine."""
    frame = valid().filter(pl.col("action") == "block").drop("disputed_at")
    frame = frame.with_columns(
        pl.col("action").cast(pl.Categorical),
        pl.col("amount").round().cast(pl.Int32) + 1,
        pl.col("created_at").dt.replace_time_zone(None),
        pl.lit(None).alias("authorized"),
        pl.lit(None).alias("fraud_dispute"),
        pl.lit(None).alias("dispute_lost"),
    )
    assert frame.schema["authorized"] == pl.Null
    summary = check_dataset(write_parquet(frame, tmp_path / "data.parquet"), Schema())
    assert summary.actions == {"allow": 0, "challenge": 0, "block": frame.height}
    assert summary.auth_rate is None
    assert summary.fraud_rate_bps_count is None


def test_empty_dataset(tmp_path: Path) -> None:
    error = invalid(tmp_path, valid().head(0))
    assert found(error) == {("dataset", "empty")}
    assert "dataset: has no rows" in str(error)


def test_logging_prob_missing_for_an_action(tmp_path: Path) -> None:
    error = invalid(tmp_path, valid(logging_probs=True).drop("logging_prob_block"))
    assert found(error) == {("logging_prob_block", "missing")}
    assert "logging_prob_block: missing column (every action needs one when logging_prob_allow is present)" in str(
        error
    )


def test_logging_prob_out_of_range(tmp_path: Path) -> None:
    frame, rows = break_rows(valid(logging_probs=True), "logging_prob_challenge", action == "allow", 1.5)
    error = invalid(tmp_path, frame)
    # The rows no longer sum to 1 either.
    assert found(error) == {("logging_prob_challenge", "range"), ("logging_prob_*", "sum")}
    assert problem(error, "logging_prob_challenge", "range").example_id == tx(rows[0])
    example = f"e.g. transaction_id={tx(rows[0])} (logging_prob_challenge=1.5)"
    assert f"logging_prob_challenge: 2 rows outside [0, 1] or NaN, {example}" in str(error)


def test_logging_probs_not_summing_to_one(tmp_path: Path) -> None:
    where = action != "block"  # leaves the logged action's probability, hence propensity, consistent
    frame, rows = break_rows(
        valid(logging_probs=True), "logging_prob_block", where, pl.col("logging_prob_block") + 0.01
    )
    error = invalid(tmp_path, frame)
    assert found(error) == {("logging_prob_*", "sum")}
    example = f"e.g. transaction_id={tx(rows[0])} (logging_prob_*=1.01"
    assert f"logging_prob_*: 2 rows not summing to 1 (tolerance 1e-06), {example}" in str(error)


def test_propensity_contradicting_logging_prob(tmp_path: Path) -> None:
    good = valid(logging_probs=True)
    frame, rows = break_rows(good, "propensity", action == "challenge", pl.col("propensity") / 2)
    error = invalid(tmp_path, frame)
    assert found(error) == {("propensity", "contradiction")}
    reported = problem(error, "propensity", "contradiction")
    assert (reported.count, reported.example_id) == (2, tx(rows[0]))
    logged = good["logging_prob_challenge"][rows[0]]
    assert reported.example_value == f"{logged / 2}, action=challenge, logging_prob_<action>={logged}"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    frame, _ = break_rows(valid(), "propensity", FIXED, 0.0)
    frame, _ = break_rows(frame, "action", pl.int_range(pl.len()).is_in([3, 5]), "review")
    frame, _ = break_rows(frame, "transaction_id", pl.int_range(pl.len()).is_in([11, 12]), tx(10))
    frame = frame.drop("fraud_score").with_columns(pl.col("authorized").cast(pl.Int8))
    error = invalid(tmp_path, frame, Schema(score_columns=("fraud_score",)))
    assert found(error) == {
        ("authorized", "dtype"),  # mistyped: the outcome rules that need it are skipped, not crashed on
        ("fraud_score", "missing"),
        ("propensity", "range"),
        ("action", "unknown_action"),
        ("transaction_id", "duplicate"),
    }
    assert str(error).startswith(f"{tmp_path / 'data.parquet'}: 5 problems with the logged transactions")
    assert len(error.problems) == 5 == str(error).count("\n  - ")


def test_problem_message() -> None:
    problem = Problem("propensity", "range", 12, "tx_000417", "0.0", "outside (0, 1]")
    assert problem.message() == "propensity: 12 rows outside (0, 1], e.g. transaction_id=tx_000417 (propensity=0.0)"
    one = Problem("authorized", "contradiction", 1, "tx_000001", "true, action=block", "set on a blocked row")
    assert (
        one.message()
        == "authorized: 1 row set on a blocked row, e.g. transaction_id=tx_000001 (authorized=true, action=block)"
    )


def test_find_problems_on_a_frame_in_memory() -> None:
    frame = make_transactions(n=50)
    assert find_problems(frame, Schema()) == []
    assert find_problems(frame.lazy().with_columns(amount=-pl.col("amount")), Schema())[0].count == 50


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_factory_builds_valid_data_with_an_informative_fraud_score(tmp_path: Path, seed: int) -> None:
    frame = make_transactions(n=5_000, seed=seed)
    assert find_problems(frame, Schema()) == []
    scores = frame.group_by("fraud_dispute").agg(pl.col("fraud_score").mean()).drop_nulls()
    by_label = dict(zip(scores["fraud_dispute"], scores["fraud_score"], strict=True))
    assert by_label[True] > by_label[False] + 0.2


def hand_checked() -> pl.DataFrame:
    """Six rows whose summary is derived by hand in `test_summary_of_a_valid_dataset`."""
    day = [datetime(2026, month, 1, tzinfo=UTC) for month in range(1, 7)]
    frame = make_transactions(
        n=6,
        created_at=day,
        amount=[10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
        action=["allow", "allow", "allow", "challenge", "challenge", "block"],
        propensity=[0.9, 0.9, 0.8, 0.5, 0.25, 0.1],
        authorized=[True, True, False, True, False, None],
        fraud_dispute=[False, True, None, True, None, None],
        dispute_lost=[None, True, None, False, None, None],
        disputed_at=[None, day[1] + timedelta(days=30), None, day[3] + timedelta(days=10), None, None],
        fraud_score=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        card_country=["FR", "FR", "DE", "DE", "US", "US"],
    )
    return frame.drop(LOGGING_PROBS).with_columns(
        store=pl.Series([1, 1, 2, 2, 3, 3], dtype=pl.Int32),  # an integer segment column
        basket_size=pl.lit(2.5),  # floats and booleans are not segments
        recurring=pl.lit(True),
    )


def test_summary_of_a_valid_dataset(tmp_path: Path) -> None:
    frame = hand_checked()
    summary = check_dataset(write_parquet(frame, tmp_path / "data.parquet"), Schema())
    assert (summary.rows, summary.files) == (6, 1)
    assert summary.actions == {"allow": 3, "challenge": 2, "block": 1}
    assert (summary.propensity_min, summary.propensity_max) == (0.1, 0.9)
    assert summary.auth_rate == pytest.approx(3 / 5, rel=1e-12)  # rows 0, 1, 3 authorized of the 5 not blocked
    assert summary.fraud_rate_bps_count == pytest.approx(2 / 3 * 10_000, rel=1e-12)  # rows 1 and 3 of 3 authorized
    assert summary.fraud_rate_bps_volume == pytest.approx((20 + 40) / (10 + 20 + 40) * 10_000, rel=1e-12)
    assert summary.dispute_lost_share == pytest.approx(1 / 2, rel=1e-12)
    assert (summary.created_at_min, summary.created_at_max) == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 6, 1, tzinfo=UTC),
    )
    # as_of = the latest of created_at (June 1) and disputed_at (March 3, April 11); labels created after
    # June 1 - 90 days = March 3 are immature: April 1, May 1, June 1.
    assert summary.as_of == datetime(2026, 6, 1, tzinfo=UTC)
    assert (summary.label_maturity_days, summary.immature_rows) == (90, 3)
    fraud_score = summary.scores["fraud_score"]
    assert (fraud_score.min, fraud_score.max) == (0.1, 0.6)
    assert fraud_score.mean == pytest.approx(0.35, abs=1e-12)
    assert set(summary.scores) == {"fraud_score", "auth_score"}
    assert summary.segments["card_country"] == 3
    assert summary.segments["store"] == 3
    assert set(summary.segments) == {
        "card_country",
        "card_brand",
        "card_funding",
        "mcc",
        "channel",
        "merchant_id",
        "store",
    }
    assert summary.has_logging_probs is False
    assert json.loads(json.dumps(summary.to_dict()))["as_of"] == "2026-06-01T00:00:00+00:00"
    assert ("rows", "6 in 1 file") in summary.display_rows()


def test_summary_with_an_explicit_as_of_and_window(tmp_path: Path) -> None:
    path = write_parquet(hand_checked(), tmp_path / "data.parquet")
    # a naive as_of is UTC; created after May 2 (June 1 - 30 days): only June 1
    summary = check_dataset(path, Schema(), as_of=datetime(2026, 6, 1), label_maturity_days=30)
    assert (summary.as_of, summary.immature_rows) == (datetime(2026, 6, 1, tzinfo=UTC), 1)


def test_renamed_columns_are_validated_and_reported_under_the_files_names(tmp_path: Path) -> None:
    rename = {"transaction_id": "txn", "propensity": "p_logged", "action": "decision"}
    schema = Schema(rename=rename)
    frame = valid().rename({canonical: source for canonical, source in rename.items()})
    assert check_dataset(write_parquet(frame, tmp_path / "ok.parquet"), schema).rows == 300
    broken, rows = break_rows(frame, "p_logged", FIXED, 0.0)
    error = invalid(tmp_path, broken, schema)
    assert found(error) == {("propensity", "range")}
    assert f"p_logged (propensity): 2 rows outside (0, 1] or NaN, e.g. txn={tx(rows[0])} (p_logged=0.0)" in str(error)


def test_hive_partitioned_directory(tmp_path: Path) -> None:
    frame = valid()
    write_parquet(frame.head(100), tmp_path / "region=eu" / "part-0.parquet")
    write_parquet(frame.tail(200), tmp_path / "region=us" / "part-0.parquet")
    (tmp_path / "_SUCCESS").touch()
    summary = check_dataset(tmp_path, Schema())
    assert (summary.rows, summary.files) == (300, 2)
    assert summary.segments["region"] == 2  # the partition key is a segment column like any other


def test_files_with_mismatched_schemas(tmp_path: Path) -> None:
    frame = valid()
    write_parquet(frame.head(100), tmp_path / "part-0.parquet")
    other = write_parquet(frame.tail(200).cast({"amount": pl.Float32}), tmp_path / "part-1.parquet")
    with pytest.raises(InvalidData, match=re.escape(f"{other}: column 'amount' has type Float32")):
        check_dataset(tmp_path, Schema())
