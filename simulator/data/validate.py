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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

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
from simulator.data.load import Source, open_source, reading_source, scan_dataset
from simulator.data.problems import Check, Problem, evaluate
from simulator.data.logging_policy import derived_columns, logging_inputs
from simulator.data.mapping import schema_name
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
    TIMESTAMP_COLUMNS,
    Schema,
    logging_prob_column,
)

__all__ = ["DataSummary", "Problem", "ScoreRange", "check_dataset", "find_problems"]

DEFAULT_LABEL_MATURITY_DAYS = 90
SUM_TOLERANCE = 1e-6  # the logging_prob_<action> of a row sum to 1 within this
PROPENSITY_TOLERANCE = 1e-9  # propensity equals logging_prob_<logged action> within this
ALL_LOGGING_PROBS = f"{LOGGING_PROB_PREFIX}*"  # the `column` of the row-sum problem


@dataclass(frozen=True, slots=True)
class Origin:
    """How the canonical columns came about, for messages that point at the cause.

    `derived`: columns computed from `[data.logging_policy]`; `parsed`:
    timestamp columns parsed from text, with the format they must follow.
    """

    derived: frozenset[str] = frozenset()
    parsed: Mapping[str, str] = field(default_factory=dict)


def find_problems(frame: pl.LazyFrame | pl.DataFrame, schema: Schema, origin: Origin = Origin()) -> list[Problem]:
    """Every problem of `frame` (canonical column names) against SPEC §2, in one pass over it."""
    frame = frame.lazy()
    columns = frame.collect_schema()
    broken, usable = schema_problems(columns, schema, origin)
    value_problems, _ = evaluate(frame, value_checks(columns, usable, schema, origin), {}, {}, schema)
    return broken + value_problems


def check_dataset(
    path: str | Path | Source,
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
    source = open_source(path, schema)
    frame = scan_dataset(source, schema, audit=True)
    columns = frame.collect_schema()
    origin = origin_of(source, schema)
    broken, usable = schema_problems(columns, schema, origin)
    # The summary's aggregations assume well-typed columns: only run them on a sound schema.
    summary = {} if broken else summary_exprs(columns, schema, as_of)
    queries = {} if broken else summary_queries(frame, columns, schema, as_of, label_maturity_days)
    with reading_source(source):
        value_problems, values = evaluate(frame, value_checks(columns, usable, schema, origin), summary, queries,
                                           schema)
    problems = broken + value_problems
    if problems:
        raise InvalidData(describe_problems(source.location, problems, schema), problems=tuple(problems))
    return summarise(values, columns, schema, files=len(source.files), label_maturity_days=label_maturity_days,
                     derived=origin.derived)


def origin_of(source: Source, schema: Schema) -> Origin:
    """Which canonical columns of `source` the declared logging policy derives, and which timestamps are text."""
    present = {schema_name(name, schema) for name in source.types}
    parsed = {
        name: (f"in the format {schema.timestamp_formats[name]!r} ([data.timestamp_format])"
               if name in schema.timestamp_formats else "an ISO 8601 timestamp (or declare [data.timestamp_format])")
        for name in TIMESTAMP_COLUMNS
        if source.types.get(schema.file_name(name)) == pl.String
    }
    return Origin(derived=derived_columns(schema, present), parsed=parsed)


def describe_problems(location: str, problems: list[Problem], schema: Schema) -> str:
    """The `InvalidData` message: one line per problem, then what to do."""
    count = f"{len(problems)} {'problem' if len(problems) == 1 else 'problems'}"
    lines = [f"{location}: {count} with the logged transactions (docs/data.md):"]
    lines += [f"  - {problem.message(schema)}" for problem in problems]
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


NO_PROPENSITY = (
    "missing column: the estimates divide by it. Either map the column of your files that holds the logged "
    "action's probability in [data.columns] (propensity = \"<its name>\"), or declare the policy that logged the "
    "data in [data.logging_policy] (a policy table plus exploration = <share explored>) to derive it; "
    "see docs/bring-your-own-data.md"
)


def _missing(name: str, columns: pl.Schema, schema: Schema, present_probs: list[str]) -> str:
    """Why a column is missing, and what to do about it."""
    if name == PROPENSITY and schema.logging_policy is not None:
        lacking = [schema.file_name(c) for c in logging_inputs(schema) if c not in columns]
        return f"missing column: [data.logging_policy] derives it from columns the data lacks: {', '.join(lacking)}"
    if name == PROPENSITY:
        return NO_PROPENSITY
    if name.startswith(LOGGING_PROB_PREFIX) and present_probs:
        return f"missing column (every action needs one when {present_probs[0]} is present)"
    return "missing column"


def schema_problems(columns: pl.Schema, schema: Schema, origin: Origin = Origin()) -> tuple[list[Problem], set[str]]:
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
            problems.append(Problem(name, "missing", 0, None, None, _missing(name, columns, schema, present)))
        elif not accepts(dtype := columns[name]):
            problems.append(Problem(name, "dtype", 0, None, str(dtype), f"has type {dtype}, expected {wanted}"))
    broken = {problem.column for problem in problems}
    return problems, {name for name in expected if name not in broken}


# --- value checks ----------------------------------------------------------------------------------------------


DERIVED = " (derived from [data.logging_policy]"


def _null_detail(name: str, origin: Origin) -> str:
    """Why a value can be null: absent, unparseable text, or a logging policy that could not be evaluated."""
    if name in origin.parsed:
        return f"null or not {origin.parsed[name]}"
    if name in origin.derived:
        return f"null{DERIVED}, which could not be evaluated on them: see the other problems)"
    return "null"


def value_checks(columns: pl.Schema, usable: set[str], schema: Schema, origin: Origin = Origin()) -> list[Check]:
    """Every row-level check whose columns are usable, in the order the problems are reported."""
    probs = [logging_prob_column(action) for action in schema.actions]
    never_null = (TRANSACTION_ID, CREATED_AT, AMOUNT, ACTION, PROPENSITY)
    checks = [Check(name, "null", _null_detail(name, origin), pl.col(name).is_null())
              for name in never_null if name in usable]
    if AMOUNT in usable:
        checks.append(_range(AMOUNT, "not a finite number > 0", lambda x: x.is_finite() & (x > 0)))
    if PROPENSITY in usable:
        why = (f"{DERIVED}: the declared policy never takes the logged action there; is exploration missing?)"
               if PROPENSITY in origin.derived else "")
        checks.append(_range(PROPENSITY, f"outside (0, 1] or NaN{why}", lambda x: (x > 0) & (x <= 1)))
    for name in [*schema.resolved_scores(list(columns)), *probs]:
        if name in usable:
            low, high = schema.score_range(name) if name not in probs else (0.0, 1.0)
            checks.append(Check(name, "null", _null_detail(name, origin), pl.col(name).is_null()))
            checks.append(_range(name, f"outside [{low:g}, {high:g}] or NaN",
                                 lambda x, low=low, high=high: (x >= low) & (x <= high)))
    if ACTION in usable:
        checks.append(_unknown_action(schema))
    checks += _outcome_checks(columns, usable, schema)
    # a logged propensity against derived logging_prob_<action> is the audit's job, not an error
    if all(name in usable for name in probs) and not (set(probs) & origin.derived and PROPENSITY not in origin.derived):
        checks += _logging_prob_checks(probs, usable, schema)
    return checks


def _unknown_action(schema: Schema) -> Check:
    """Rows whose action is not in the action set (after `[data.action_values]`), shown as the files spell it."""
    action = pl.col(ACTION).cast(pl.String)
    unknown = action.is_not_null() & ~action.is_in(schema.actions)
    if schema.action_values:
        values = ", ".join(f"{schema.action_values.get(a, a)!r} ({a})" for a in schema.actions)
        detail = f"not one of the values {values} of [data.action_values]"
    else:
        detail = f"not one of the actions {', '.join(schema.actions)}"
    return Check(ACTION, "unknown_action", detail, unknown, ((ACTION, action),))


def _range(name: str, detail: str, inside: Callable[[pl.Expr], pl.Expr]) -> Check:
    """Rows whose non-null value of `name` is NaN or not `inside` (nulls have their own check)."""
    value = pl.col(name).cast(pl.Float64)
    # polars orders NaN above every number, so NaN passes `> 0`: reject it explicitly.
    outside = value.is_not_null() & (value.is_nan() | ~inside(value))
    return Check(name, "range", detail, outside, ((name, pl.col(name)),))


def _outcome_checks(columns: pl.Schema, usable: set[str], schema: Schema) -> list[Check]:
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
        Check(name, "contradiction", detail, condition, ((name, pl.col(name)), (context, pl.col(context))))
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


def _logging_prob_checks(probs: list[str], usable: set[str], schema: Schema) -> list[Check]:
    """Rows whose logging distribution does not sum to 1, or disagrees with `propensity`."""
    total = pl.sum_horizontal(*probs)
    off = ~((total - 1).abs() <= SUM_TOLERANCE)  # written so that NaN counts as off
    detail = f"not summing to 1 (tolerance {SUM_TOLERANCE:g})"
    checks = [Check(ALL_LOGGING_PROBS, "sum", detail, off, ((ALL_LOGGING_PROBS, total),))]
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
        checks.append(Check(PROPENSITY, "contradiction", detail, differs, shown))
    return checks
