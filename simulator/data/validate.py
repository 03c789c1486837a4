"""Checks of logged transactions against the data contract (SPEC §2).

Bad input never produces numbers silently. Every broken rule yields a `Problem`
naming the column, the count of offending rows and one example; all problems
are collected, then raised once, so a user fixes the data in one round.

Schema problems (a missing or mistyped column) come from the Parquet metadata.
Value checks are aggregations of one lazy query: each check is a boolean
condition, counted with `sum()` and exemplified with `filter(...).first()`. The
same query computes the `DataSummary`; it is collected once, on the streaming
engine, together with a few 1×1 side queries (duplicate ids, distinct counts)
that would otherwise make the engine hold every column in memory. A check
whose columns are missing or mistyped is skipped (the schema problem already
says why), never crashed on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from simulator.data.summary import (
    TEXT_TYPES,
    DataSummary,
    ScoreRange,
    summarise,
    summary_exprs,
    summary_queries,
    utc_timestamp,
)
from simulator.errors import InvalidData
from simulator.data.load import dataset_files, scan_dataset
from simulator.schema import (
    ACTION,
    AMOUNT,
    AUTHORIZED,
    BLOCK,
    CREATED_AT,
    DISPUTE_LOST,
    DISPUTED_AT,
    FRAUD_DISPUTE,
    LOGGING_PROB_PREFIX,
    PROPENSITY,
    REQUIRED_COLUMNS,
    TRANSACTION_ID,
    Schema,
    logging_prob_column,
)

__all__ = ["DataSummary", "Problem", "ScoreRange", "check_dataset", "find_problems"]

DEFAULT_LABEL_MATURITY_DAYS = 90
SUM_TOLERANCE = 1e-6  # the logging_prob_<action> of a row sum to 1 within this
PROPENSITY_TOLERANCE = 1e-9  # propensity equals logging_prob_<logged action> within this
DATASET = "dataset"  # the `column` of a problem about the whole dataset
ALL_LOGGING_PROBS = f"{LOGGING_PROB_PREFIX}*"  # the `column` of the row-sum problem
DUPLICATE_DETAIL = "share their transaction_id with another row"


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule: which column (canonical name), which rule, how many rows, one example.

    `count` is 0 for problems of the schema or the whole dataset (missing
    column, wrong type, no rows); those have no example row.
    """

    column: str
    rule: str
    count: int
    example_id: str | None
    example_value: str | None
    detail: str

    def message(self) -> str:
        """One line, e.g. `propensity: 12 rows outside (0, 1], e.g. transaction_id=tx_000417 (propensity=0.0)`."""
        if self.count == 0:
            return f"{self.column}: {self.detail}"
        text = f"{self.column}: {self.count} {'row' if self.count == 1 else 'rows'} {self.detail}"
        if self.example_id is not None:
            text += f", e.g. {TRANSACTION_ID}={self.example_id}"
        if self.example_value is not None:
            text += f" ({self.column}={self.example_value})"
        return text


@dataclass(frozen=True, slots=True)
class _Check:
    """A row-level rule: the rows where `condition` is true break it.

    `shown` are (label, expression) pairs evaluated on the first offending row
    to make the example: first the column's own value, then context columns.
    """

    column: str
    rule: str
    detail: str
    condition: pl.Expr
    shown: tuple[tuple[str, pl.Expr], ...] = ()


def find_problems(frame: pl.LazyFrame | pl.DataFrame, schema: Schema) -> list[Problem]:
    """Every problem of `frame` (canonical column names) against SPEC §2, in one pass over it."""
    frame = frame.lazy()
    columns = frame.collect_schema()
    schema_problems, usable = _schema_problems(columns, schema)
    value_problems, _ = _evaluate(frame, _value_checks(columns, usable, schema), {}, {})
    return schema_problems + value_problems


def check_dataset(
    path: Path,
    schema: Schema,
    *,
    as_of: datetime | None = None,
    label_maturity_days: int = DEFAULT_LABEL_MATURITY_DAYS,
) -> DataSummary:
    """Validate the dataset at `path` and summarise it, reading the data once.

    `as_of` (naive means UTC) defaults to the latest timestamp in the data,
    created_at or disputed_at. Raises `InvalidData` listing every problem.

    Example::

        summary = check_dataset(Path("data/transactions"), config.data.schema())
        summary.rows, summary.as_of
    """
    path = Path(path)
    files = dataset_files(path)
    frame = scan_dataset(path, schema)
    columns = frame.collect_schema()
    schema_problems, usable = _schema_problems(columns, schema)
    # The summary's aggregations assume well-typed columns: only run them on a sound schema.
    summary = {} if schema_problems else summary_exprs(columns, schema, as_of)
    queries = {} if schema_problems else summary_queries(frame, columns, schema, as_of, label_maturity_days)
    value_problems, values = _evaluate(frame, _value_checks(columns, usable, schema), summary, queries)
    problems = schema_problems + value_problems
    if problems:
        raise InvalidData(_describe(path, problems), problems=tuple(problems))
    return summarise(values, columns, schema, files=len(files), label_maturity_days=label_maturity_days)


def _describe(path: Path, problems: list[Problem]) -> str:
    """The `InvalidData` message: one line per problem, then what to do."""
    count = f"{len(problems)} {'problem' if len(problems) == 1 else 'problems'}"
    lines = [f"{path}: {count} with the logged transactions (SPEC §2):"]
    lines += [f"  - {problem.message()}" for problem in problems]
    if any(problem.rule in ("missing", "dtype") for problem in problems):
        lines.append("If a column exists under another name, map it in [data.columns].")
    return "\n".join(lines)


# --- schema ----------------------------------------------------------------------------------------------------


def _is_number(dtype: pl.DataType) -> bool:
    return dtype.is_float() or dtype.is_integer()


def _is_id(dtype: pl.DataType) -> bool:
    return dtype == pl.String or dtype.is_integer()


def _is_text(dtype: pl.DataType) -> bool:
    return dtype.base_type() in TEXT_TYPES


def _is_timestamp(dtype: pl.DataType) -> bool:
    return dtype.base_type() is pl.Datetime


def _is_flag(dtype: pl.DataType) -> bool:
    # An all-null outcome column (every row blocked, no dispute yet) is stored with type Null.
    return dtype in (pl.Boolean, pl.Null)


def _is_timestamp_or_null(dtype: pl.DataType) -> bool:
    return _is_timestamp(dtype) or dtype == pl.Null


_NUMBER = ("a number (float or integer)", _is_number)
_FLAG = ("a boolean", _is_flag)
EXPECTED_TYPES: dict[str, tuple[str, Callable[[pl.DataType], bool]]] = {
    TRANSACTION_ID: ("a string or an integer", _is_id),
    CREATED_AT: ("a timestamp", _is_timestamp),
    AMOUNT: _NUMBER,
    ACTION: ("a string or categorical", _is_text),
    PROPENSITY: _NUMBER,
    AUTHORIZED: _FLAG,
    FRAUD_DISPUTE: _FLAG,
    DISPUTE_LOST: _FLAG,
    DISPUTED_AT: ("a timestamp", _is_timestamp_or_null),
}


def _schema_problems(columns: pl.Schema, schema: Schema) -> tuple[list[Problem], set[str]]:
    """Missing and mistyped columns, and the set of checked columns present with a usable type."""
    expected = {name: EXPECTED_TYPES[name] for name in REQUIRED_COLUMNS}
    if DISPUTED_AT in columns:
        expected[DISPUTED_AT] = EXPECTED_TYPES[DISPUTED_AT]
    expected |= {name: _NUMBER for name in schema.resolved_scores(list(columns))}
    logging_probs = [logging_prob_column(action) for action in schema.actions]
    present = [name for name in logging_probs if name in columns]
    expected |= {name: _NUMBER for name in logging_probs if present}
    problems: list[Problem] = []
    for name, (wanted, accepts) in expected.items():
        if name not in columns:
            why = f" (every action needs one when {present[0]} is present)" if name in logging_probs else ""
            problems.append(Problem(name, "missing", 0, None, None, f"missing column{why}"))
        elif not accepts(dtype := columns[name]):
            problems.append(Problem(name, "dtype", 0, None, str(dtype), f"has type {dtype}, expected {wanted}"))
    broken = {problem.column for problem in problems}
    return problems, {name for name in expected if name not in broken}


# --- value checks ----------------------------------------------------------------------------------------------


def _value_checks(columns: pl.Schema, usable: set[str], schema: Schema) -> list[_Check]:
    """Every row-level check whose columns are usable, in the order the problems are reported."""
    probs = [logging_prob_column(action) for action in schema.actions]
    never_null = (TRANSACTION_ID, CREATED_AT, AMOUNT, ACTION, PROPENSITY)
    checks = [_Check(name, "null", "null", pl.col(name).is_null()) for name in never_null if name in usable]
    if AMOUNT in usable:
        checks.append(_range(AMOUNT, "not a finite number > 0", lambda x: x.is_finite() & (x > 0)))
    if PROPENSITY in usable:
        checks.append(_range(PROPENSITY, "outside (0, 1] or NaN", lambda x: (x > 0) & (x <= 1)))
    for name in [*schema.resolved_scores(list(columns)), *probs]:
        if name in usable:
            checks.append(_Check(name, "null", "null", pl.col(name).is_null()))
            checks.append(_range(name, "outside [0, 1] or NaN", lambda x: (x >= 0) & (x <= 1)))
    if ACTION in usable:
        action = pl.col(ACTION).cast(pl.String)
        unknown = action.is_not_null() & ~action.is_in(schema.actions)
        detail = f"not one of the actions {', '.join(schema.actions)}"
        checks.append(_Check(ACTION, "unknown_action", detail, unknown, ((ACTION, action),)))
    checks += _outcome_checks(columns, usable, schema)
    if all(name in usable for name in probs):
        checks += _logging_prob_checks(probs, usable, schema)
    return checks


def _range(name: str, detail: str, inside: Callable[[pl.Expr], pl.Expr]) -> _Check:
    """Rows whose non-null value of `name` is NaN or not `inside` (nulls have their own check)."""
    value = pl.col(name).cast(pl.Float64)
    # polars orders NaN above every number, so NaN passes `> 0`: reject it explicitly.
    outside = value.is_not_null() & (value.is_nan() | ~inside(value))
    return _Check(name, "range", detail, outside, ((name, pl.col(name)),))


def _outcome_checks(columns: pl.Schema, usable: set[str], schema: Schema) -> list[_Check]:
    """Outcomes contradicting the action or each other (the SPEC §2 null pattern), and dispute dates.

    Each rule is (column, detail, condition, the column it depends on, shown as context).
    """
    action = pl.col(ACTION).cast(pl.String)
    authorized, fraud, lost = (pl.col(name).cast(pl.Boolean) for name in (AUTHORIZED, FRAUD_DISPUTE, DISPUTE_LOST))
    was_authorized, had_fraud = authorized.fill_null(False), fraud.fill_null(False)
    not_blocked = action.is_in(schema.actions) & (action != BLOCK)
    rules = [
        (AUTHORIZED, "set on a blocked row", (action == BLOCK) & authorized.is_not_null(), ACTION),
        (AUTHORIZED, "null on a row that was not blocked", not_blocked & authorized.is_null(), ACTION),
        (FRAUD_DISPUTE, "set on a row that was not authorized", ~was_authorized & fraud.is_not_null(), AUTHORIZED),
        (FRAUD_DISPUTE, "null on an authorized row", was_authorized & fraud.is_null(), AUTHORIZED),
        (DISPUTE_LOST, "set on a row without a fraud dispute", ~had_fraud & lost.is_not_null(), FRAUD_DISPUTE),
        (DISPUTE_LOST, "null on a row with a fraud dispute", had_fraud & lost.is_null(), FRAUD_DISPUTE),
        (
            DISPUTED_AT,
            "set on a row without a fraud dispute",
            ~had_fraud & pl.col(DISPUTED_AT).is_not_null(),
            FRAUD_DISPUTE,
        ),
        (DISPUTED_AT, "before created_at", _utc(DISPUTED_AT, columns) < _utc(CREATED_AT, columns), CREATED_AT),
    ]
    return [
        _Check(name, "contradiction", detail, condition, ((name, pl.col(name)), (context, pl.col(context))))
        for name, detail, condition, context in rules
        if name in usable and context in usable
    ]


def _utc(name: str, columns: pl.Schema) -> pl.Expr:
    """`name` as a UTC timestamp when it is a timestamp column; a placeholder when absent or mistyped.

    The placeholder keeps the rule table above simple; rules on unusable columns are dropped anyway.
    """
    if name in columns and _is_timestamp_or_null(columns[name]):
        return utc_timestamp(name, columns)
    return pl.lit(None, dtype=pl.Datetime("us", "UTC"))


def _logging_prob_checks(probs: list[str], usable: set[str], schema: Schema) -> list[_Check]:
    """Rows whose logging distribution does not sum to 1, or disagrees with `propensity`."""
    total = pl.sum_horizontal(*probs)
    off = ~((total - 1).abs() <= SUM_TOLERANCE)  # written so that NaN counts as off
    detail = f"not summing to 1 (tolerance {SUM_TOLERANCE:g})"
    checks = [_Check(ALL_LOGGING_PROBS, "sum", detail, off, ((ALL_LOGGING_PROBS, total),))]
    if {ACTION, PROPENSITY} <= usable:
        action = pl.col(ACTION).cast(pl.String)
        branches = (
            pl.when(action == name).then(pl.col(column)) for name, column in zip(schema.actions, probs, strict=True)
        )
        logged = pl.coalesce(*branches)
        propensity = pl.col(PROPENSITY).cast(pl.Float64)
        # Out-of-range, NaN and null values have their own problem; compare only valid probabilities.
        valid = (propensity > 0) & (propensity <= 1) & (logged >= 0) & (logged <= 1)
        differs = valid & ~((logged - propensity).abs() <= PROPENSITY_TOLERANCE)
        detail = f"different from logging_prob_<action> of the logged action (tolerance {PROPENSITY_TOLERANCE:g})"
        shown = ((PROPENSITY, pl.col(PROPENSITY)), (ACTION, action), (f"{LOGGING_PROB_PREFIX}<{ACTION}>", logged))
        checks.append(_Check(PROPENSITY, "contradiction", detail, differs, shown))
    return checks


# --- the pass over the data ----------------------------------------------------------------------------------------


def _evaluate(
    frame: pl.LazyFrame, checks: list[_Check], extra: dict[str, pl.Expr], side: dict[str, pl.LazyFrame]
) -> tuple[list[Problem], dict[str, Any]]:
    """Run every check, the `extra` aggregations and the 1×1 `side` queries; the problems, and every value by name.

    One `collect_all` on the streaming engine. Each condition is materialised
    once as a `_flag<i>` column that its count and its example both read; the
    example is one struct (id and shown values) filtered once, uncast, which on
    10M rows costs about as little as the counts alone. Sorts and distinct
    counts run as side queries: inside the main aggregation they made the
    streaming engine hold every column in memory (2.3 GB at 10M rows).
    """
    has_id = TRANSACTION_ID in frame.collect_schema()
    flags = [check.condition.fill_null(False).alias(f"_flag{i}") for i, check in enumerate(checks)]
    exprs = [pl.len().alias("rows"), *(expr.alias(name) for name, expr in extra.items())]
    row_id = pl.col(TRANSACTION_ID) if has_id else pl.lit(None)
    for i, check in enumerate(checks):
        flag = pl.col(f"_flag{i}")
        fields = [row_id.alias("id"), *(expr.alias(f"shown{j}") for j, (_, expr) in enumerate(check.shown))]
        exprs += [flag.sum().alias(f"_count{i}"), pl.struct(fields).filter(flag).first().alias(f"_example{i}")]
    if has_id:
        side = {**side, "_duplicate_candidates": frame.select(_duplicate_candidates(pl.col(TRANSACTION_ID)))}
    main, *others = pl.collect_all([frame.with_columns(flags).select(exprs), *side.values()], engine="streaming")
    values = main.row(0, named=True) | {name: other.item() for name, other in zip(side, others, strict=True)}
    problems = [] if values["rows"] else [Problem(DATASET, "empty", 0, None, None, "has no rows")]
    if has_id and values["_duplicate_candidates"]:
        problems += _duplicates(frame)
    for i, check in enumerate(checks):
        if count := values[f"_count{i}"]:
            example = values[f"_example{i}"]
            shown = [example[f"shown{j}"] for j in range(len(check.shown))]
            example_id = None if example["id"] is None else _show(example["id"])
            problems.append(Problem(check.column, check.rule, count, example_id, _example(check, shown), check.detail))
    return problems, values


def _duplicate_candidates(ids: pl.Expr) -> pl.Expr:
    """Rows whose 64-bit id hash equals the previous row's after sorting: 0 proves the ids unique.

    Sorting hashes is several times faster than grouping 10 million strings, so
    the valid path stays cheap; a non-zero count (a real duplicate, two null ids,
    or a rare hash collision) triggers the exact check in `_duplicates`.
    """
    hashes = ids.hash().sort()
    return (hashes == hashes.shift(1)).sum()


def _duplicates(frame: pl.LazyFrame) -> list[Problem]:
    """The exact duplicate check; count = every row involved, example = the first such id in file order.

    Two passes over `transaction_id` alone: the hashes seen twice, then the ids
    with those hashes, compared exactly. Comparing all 10M ids exactly took ~10 s.
    """
    hashes = pl.col(TRANSACTION_ID).hash().sort()
    repeated = frame.select(hashes.filter(hashes == hashes.shift(1)).unique()).collect(engine="streaming")
    candidates = frame.select(TRANSACTION_ID).filter(
        pl.col(TRANSACTION_ID).hash().is_in(repeated.to_series().implode())
    )
    ids = candidates.collect(engine="streaming").to_series()
    duplicated = ids.is_not_null() & ids.is_duplicated()
    if not (count := int(duplicated.sum())):
        return []
    return [Problem(TRANSACTION_ID, "duplicate", count, _show(ids.filter(duplicated)[0]), None, DUPLICATE_DETAIL)]


def _example(check: _Check, shown: list[object]) -> str | None:
    """The example value: the column's own value, then `label=value` for each context column."""
    if not shown:
        return None
    context = [f"{label}={_show(value)}" for (label, _), value in zip(check.shown[1:], shown[1:], strict=True)]
    return ", ".join([_show(shown[0]), *context])


def _show(value: object) -> str:
    """A value as printed in an example: `null`, `true`, `0.0`, `2026-01-01 00:00:00+00:00`, `tx_000417`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
