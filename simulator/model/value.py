"""Value model: what each logged payment contributed, in counts and money (SPEC §3).

The value model is policy-independent. For each row it yields one number per
*value column* (`VALUES`), computed from the logged action and outcome; every
reported metric is then a weighted total of one value column (a sum metric) or
a ratio of two weighted totals (a ratio metric). Policies only change the
weights, so these columns are computed once per row whatever is evaluated.

The value model is configuration (`ValueModel`, `MetricTable`, compiled into a
`ValueSet`): every value column and metric below is a default that an SQL
expression of the config can replace, and new ones can be added. The default
formulas (A = amount, auth/fraud/lost = the logged outcomes as 0/1, s = 1 when
the row's fraud label is mature, see `maturity_mask`):

- revenue      = margin_rate · A · auth            (the merchant's margin on approved sales)
- cost         = fee_rate · A · auth + fee_fixed · [action ≠ block] + challenge_cost · [action = challenge]
- fraud_loss   = s · fraud · (lost · A + dispute_fee), and 0 on challenged rows when
                 `liability_shift` (the issuer bears fraud on authenticated payments)
- net_value    = s · (revenue − cost) − fraud_loss   (over the mature rows, so that revenue
                 and fraud loss cover the same payments)

Fraud metrics (`fraud_count`, `fraud_volume`, `fraud_loss`, `net_value`, the
block-quality metrics and `fraud_rate_bps`) cover only rows with mature labels
unless `[data] immature_labels = "include"`; the others cover every row. Under
`"develop"` (the default) "mature" means old enough to develop and each fraud
label counts 1 / Ĝ(age) (`simulator.model.maturity`): fraud = s · w · fraud_raw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal, TypeVar

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simulator.errors import TableProblems, unknown_message

from simulator.model.expressions import NAME, check_against, dependency_levels, parse, reads
from simulator.schema import (
    ACTION,
    ALLOW,
    AMOUNT,
    AUTHORIZED,
    BLOCK,
    CHALLENGE,
    CREATED_AT,
    DEFAULT_ACTIONS,
    DISPUTE_LOST,
    FRAUD_DISPUTE,
    OUTCOME_COLUMNS,
)


_FROZEN = ConfigDict(frozen=True, extra="forbid")


class ValueModel(BaseModel):
    """Money per payment (SPEC §3): the default preset's six numbers, and the config's own value expressions.

    `values` (`[value_model.values]`): value column → SQL expression over the row's columns and
    the other value columns; it replaces the built-in value of that name or adds a new one.
    Rates are fractions of the amount.
    """

    model_config = _FROZEN

    margin_rate: float = Field(default=0.30, ge=0, le=1)
    fee_rate: float = Field(default=0.029, ge=0, le=1)
    fee_fixed: float = Field(default=0.30, ge=0)
    dispute_fee: float = Field(default=15.0, ge=0)
    challenge_cost: float = Field(default=0.05, ge=0)
    liability_shift: bool = True
    values: tuple[tuple[str, str], ...] = ()

    @field_validator("values", mode="before")
    @classmethod
    def _table(cls, table: object) -> object:
        """A TOML table {name: expression} (kept in its order); hashable as pairs."""
        if isinstance(table, Mapping):
            problems = [(name, f"the expression must be a string, got {type(text).__name__}")
                        for name, text in table.items() if not isinstance(text, str)]
            if problems:
                raise TableProblems(problems)
            return tuple(table.items())
        return table

    @field_validator("values")
    @classmethod
    def _expressions(cls, pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        problems = [(name, message) for name, text in pairs for message in _value_problems(name, text)]
        if problems:
            raise TableProblems(problems)
        return pairs


def _value_problems(name: str, text: str) -> list[str]:
    if not NAME.match(name):
        return [f"{name!r} is not a value name (letters, digits and _, not starting with a digit)"]
    if name in FIXED_VALUES:
        return [f"the built-in value {name!r} is defined by the data (and [data] immature_labels for fraud) and the "
                f"engine reads it by meaning; define a new value beside it instead"]
    try:
        parse(text)
    except ValueError as error:
        return [str(error)]
    return []


class MetricTable(BaseModel):
    """One `[metrics.NAME]` table: a sum of an SQL expression, or a ratio of two sum metrics (SPEC §3)."""

    model_config = _FROZEN

    sum: str | None = None
    ratio: tuple[str, str] | None = None
    scale: float = 1.0  # a ratio's multiplier (10 000 for basis points)
    # a sum's rows: "mature" when the fraud label it reads must be mature (every fraud metric), else "all"
    # (inferred from what the expression reads when unset)
    rows: Literal["all", "mature"] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> MetricTable:
        problems: list[tuple[str, str]] = []
        if (self.sum is None) == (self.ratio is None):
            problems.append(("", "set exactly one of sum = \"<SQL expression>\" and ratio = [\"numerator\", \"denominator\"]"))
        if self.sum is not None:
            try:
                parse(self.sum)
            except ValueError as error:
                problems.append(("sum", str(error)))
        if self.ratio is not None and self.rows is not None:
            problems.append(("rows", "a ratio's rows are its numerator's"))
        if problems:
            raise TableProblems(problems)
        return self


class Weighting(Enum):
    """How a policy re-weights a row for a metric.

    TARGET:  π(a_logged | x) / propensity — what the policy would have done.
    BLOCKED: [a_logged = allow] · π(block | x) / propensity — payments the policy
             blocks, seen through the rows the logging policy let through.
    ALLOWED: [a_logged = allow] / propensity — every payment as if allowed
             (policy-independent; the denominator of block recall).
    """

    TARGET = "target"
    BLOCKED = "blocked"
    ALLOWED = "allowed"


# Value columns, in a fixed order: the columns of the per-row value matrix.
VALUES: tuple[str, ...] = (
    "one",
    "amount",
    "mature",
    "authorized",
    "authorized_volume",
    "blocked",
    "challenged",
    "fraud",
    "fraud_volume",
    "legit_authorized",
    "mature_authorized",
    "mature_authorized_volume",
    "revenue",
    "cost",
    "fraud_loss",
    "net_value",
)


@dataclass(frozen=True, slots=True)
class SumMetric:
    """A total of one value column under one weighting, over a population.

    `population` names the value column that says which rows the metric covers
    ("one" = every row, "mature" = rows with mature fraud labels); the
    self-normalised estimator rescales by it.
    """

    name: str
    value: str
    weighting: Weighting = Weighting.TARGET
    population: str = "one"


@dataclass(frozen=True, slots=True)
class RatioMetric:
    """A ratio of two sum metrics' totals, times `scale`."""

    name: str
    numerator: SumMetric
    denominator: SumMetric
    scale: float = 1.0
    proportion: bool = True  # a share of its denominator: intervals stay within [0, 1]


_T, _B, _A = Weighting.TARGET, Weighting.BLOCKED, Weighting.ALLOWED

SUM_METRICS: tuple[SumMetric, ...] = (
    SumMetric("attempts", "one"),
    SumMetric("authorized_count", "authorized"),
    SumMetric("authorized_volume", "authorized_volume"),
    SumMetric("blocked_count", "blocked"),
    SumMetric("challenged_count", "challenged"),
    SumMetric("fraud_count", "fraud", population="mature"),
    SumMetric("fraud_volume", "fraud_volume", population="mature"),
    SumMetric("revenue", "revenue"),
    SumMetric("cost", "cost"),
    SumMetric("fraud_loss", "fraud_loss", population="mature"),
    SumMetric("net_value", "net_value", population="mature"),
    SumMetric("blocked_fraud_count", "fraud", _B, population="mature"),
    SumMetric("blocked_legit_count", "legit_authorized", _B, population="mature"),
)
_BY_NAME = {m.name: m for m in SUM_METRICS}

RATIO_METRICS: tuple[RatioMetric, ...] = (
    RatioMetric("auth_rate", _BY_NAME["authorized_count"], _BY_NAME["attempts"]),
    RatioMetric("block_rate", _BY_NAME["blocked_count"], _BY_NAME["attempts"]),
    RatioMetric(
        "fraud_rate_bps",
        _BY_NAME["fraud_volume"],
        SumMetric("mature_authorized_volume", "mature_authorized_volume", population="mature"),
        scale=10_000.0,
        proportion=False,
    ),
    RatioMetric(
        "block_precision",
        _BY_NAME["blocked_fraud_count"],
        SumMetric("blocked_authorized", "mature_authorized", _B, population="mature"),
    ),
    RatioMetric(
        "block_recall",
        _BY_NAME["blocked_fraud_count"],
        SumMetric("carried_fraud_count", "fraud", _A, population="mature"),
    ),
)

METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in SUM_METRICS) + tuple(r.name for r in RATIO_METRICS)
# How well blocks hit fraud, seen through explored rows the logging policy allowed in the policy's block region:
# every metric over the blocked or allowed weighting (blocked_fraud_count, blocked_legit_count, block_precision,
# block_recall). They need both allow and block in the action set.
BLOCK_QUALITY = frozenset({m.name for m in SUM_METRICS if m.weighting is not Weighting.TARGET}
                          | {r.name for r in RATIO_METRICS if r.numerator.weighting is not Weighting.TARGET})


def maturity_cutoff(as_of: datetime, label_maturity_days: int) -> datetime:
    """Rows created after this instant have fraud labels that may still change."""
    return as_of - timedelta(days=label_maturity_days)


def maturity_mask(cutoff: datetime | None) -> pl.Expr:
    """1.0 for rows whose fraud labels are mature (all rows when `cutoff` is None)."""
    if cutoff is None:
        return pl.lit(1.0)
    return (pl.col(CREATED_AT) <= pl.lit(cutoff)).cast(pl.Float64)


def _builtin_exprs(model: ValueModel, mature: pl.Expr, develop: pl.Expr | None) -> dict[str, pl.Expr]:
    """The default preset: every built-in value column, each reading earlier value columns by name.

    `amount` and `authorized` read the raw columns they are named after (as numbers, nulls as 0);
    every later reference to them is to the value column.
    """
    col = pl.col
    lost = col(DISPUTE_LOST).fill_null(False).cast(pl.Float64)
    shifted = col("challenged") if model.liability_shift else pl.lit(0.0)
    return {
        "one": pl.lit(1.0),
        "amount": col(AMOUNT).cast(pl.Float64),
        "mature": mature,
        "authorized": col(AUTHORIZED).fill_null(False).cast(pl.Float64),
        "authorized_volume": col("amount") * col("authorized"),
        "blocked": (col(ACTION) == BLOCK).cast(pl.Float64),
        "challenged": (col(ACTION) == CHALLENGE).cast(pl.Float64),
        "fraud": col("mature") * col(FRAUD_DISPUTE).fill_null(False).cast(pl.Float64)
        * (pl.lit(1.0) if develop is None else develop),
        "fraud_volume": col("fraud") * col("amount"),
        "legit_authorized": col("mature") * col("authorized") - col("fraud") * col("authorized"),
        "mature_authorized": col("mature") * col("authorized"),
        "mature_authorized_volume": col("mature") * col("amount") * col("authorized"),
        "revenue": model.margin_rate * col("amount") * col("authorized"),
        "cost": model.fee_rate * col("amount") * col("authorized") + model.fee_fixed * (1.0 - col("blocked"))
        + model.challenge_cost * col("challenged"),
        "fraud_loss": col("fraud") * (lost * col("amount") + model.dispute_fee) * (1.0 - shifted),
        "net_value": col("mature") * (col("revenue") - col("cost")) - col("fraud_loss"),
    }


# Value columns the engine's own machinery reads by meaning (row counts, amounts, label maturity, the
# authorisation and fraud events of the rare-event floor): a config adds values beside them, never replaces them.
FIXED_VALUES = frozenset({"one", "amount", "mature", "authorized", "fraud", "fraud_volume"})
# Metrics whose definition is not an expression (their weighting) or that diagnostics read by name.
FIXED_METRICS = frozenset({"attempts", "blocked_count"}) | BLOCK_QUALITY
METRIC_VALUE_PREFIX = "metric."  # the value column of a config's `[metrics.NAME] sum` (not an SQL identifier)
_FRAUD_READERS = frozenset({"mature", "fraud", FRAUD_DISPUTE, DISPUTE_LOST})


@dataclass(frozen=True, slots=True)
class ValueSet:
    """The value model of a run: every value column with its expression, and the metrics over them.

    The default is today's six numbers (`ValueModel`) in a fixed formula (`_builtin_exprs`);
    `custom` holds the config's SQL expressions, (value column, SQL), which replace a built-in
    value of the same name or add one (a `[metrics.NAME] sum` adds the value column
    `metric.NAME`).

    Built-in values that read no custom value are *tabulated*: per logged action and outcome
    pattern they are c0 + c1·amount (`simulator.stats.units`), and that table tells the
    estimators their shape (0/1 shares, values fixed by the action, the rare-event floor). The
    others are *row values*, evaluated on the rows themselves, so their sums are exact for any
    expression (a unit's sums of them are sums over its rows, `simulator.stats.shard`). A row
    value that reads only the action, the amount and the outcomes is *tabulable*: its table
    holds unless the data shows a row where it does not (an amount tier, say); the shards check
    every row, and `unverified` lists those the data contradicted
    (`simulator.stats.shard.verified_plan`). Other row values have no table: t intervals, and a
    rare-event floor read from each row's value under every action and outcome
    (`counterfactual_columns`, `simulator.estimate.rare`).
    """

    model: ValueModel
    custom: tuple[tuple[str, str], ...] = ()
    sums: tuple[SumMetric, ...] = SUM_METRICS
    ratios: tuple[RatioMetric, ...] = RATIO_METRICS
    unverified: frozenset[str] = frozenset()
    # The hash, computed once: the estimators' memo tables (`lru_cache` on a value set and an action)
    # hash it hundreds of thousands of times per run, ~12 µs each when recomputed from the metrics.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.model, self.custom, self.sums, self.ratios, self.unverified)))

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[type[ValueSet], tuple[object, ...]]:
        """Rebuilt (and re-hashed) where it is unpickled: string hashes differ between processes."""
        return (ValueSet, (self.model, self.custom, self.sums, self.ratios, self.unverified))

    @property
    def names(self) -> tuple[str, ...]:
        """Every value column: the built-in ones first, in their fixed order, then the config's new ones."""
        return VALUES + tuple(n for n, _ in self.custom if n not in VALUES)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.sums) + tuple(r.name for r in self.ratios)

    @property
    def own_metrics(self) -> tuple[str, ...]:
        """The metrics a config added (not built in), in its order: tables and reports show them after the built-in ones."""
        return tuple(m for m in self.metric_names if m not in METRIC_NAMES)

    @property
    def row_values(self) -> frozenset[str]:
        """Value columns evaluated per row: the config's, and built-in ones that read them."""
        return _row_values(self)

    @property
    def row_value_names(self) -> tuple[str, ...]:
        """`row_values` in the order of `names` (how the shards lay out their columns)."""
        return tuple(n for n in self.names if n in self.row_values)

    @property
    def tabulable(self) -> frozenset[str]:
        """Row values that read only the action, the amount and the outcomes (directly or through values)."""
        return _tabulable(self)

    @property
    def untabulated(self) -> frozenset[str]:
        """Value columns without a table of their shape: row values that are not tabulable, or were contradicted."""
        return (self.row_values - self.tabulable) | self.unverified

    @property
    def signed(self) -> frozenset[str]:
        """Value columns that can be negative: net_value, and every row value (an expression's sign is not known)."""
        return SIGNED_VALUES | self.row_values

    def exprs(self, cutoff: datetime | None, mature: pl.Expr | None = None,
              develop: pl.Expr | None = None) -> dict[str, pl.Expr]:
        """Every value column's expression (the config's cast to float), reading other values by name.

        `mature` overrides the maturity mask derived from `cutoff` (for tables of patterns).
        `develop` is the fraud label's weight (1 / Ĝ(age) under `immature_labels = "develop"`,
        `simulator.model.maturity`; 1 when None): every built-in value column is affine in it.
        """
        out = _builtin_exprs(self.model, maturity_mask(cutoff) if mature is None else mature, develop)
        for name, text in self.custom:
            out[name] = parse(text).cast(pl.Float64)
        return out

    def levels(self, names: tuple[str, ...] | None = None) -> tuple[tuple[str, ...], ...]:
        """The value columns `names` need (all by default), in groups each reading only earlier groups."""
        return _levels(self, names)

    def evaluate(self, frame: FrameT, cutoff: datetime | None, mature: pl.Expr | None = None,
                 develop: pl.Expr | None = None, names: tuple[str, ...] | None = None,
                 keep: tuple[str, ...] = ()) -> FrameT:
        """The value columns `names` (all by default) of every row of `frame`, in that order, after its columns `keep`.

        Nulls in the outcome columns follow SPEC §2 (null = did not happen): the config's
        expressions see them as false too.
        """
        exprs = self.exprs(cutoff, mature, develop)
        if self.custom:
            present = set(frame.collect_schema().names())
            frame = frame.with_columns([pl.col(c).fill_null(False) for c in OUTCOME_COLUMNS if c in present])
        for level in self.levels(names):
            frame = frame.with_columns([exprs[n].alias(n) for n in level])
        return frame.select(*keep, *(names or self.names))

    def check(self, schema: Mapping[str, pl.DataType]) -> None:
        """`InvalidConfig` naming each of the config's expressions that does not fit the data's columns and types."""
        if not self.custom:
            return
        exprs = self.exprs(None)
        texts = dict(self.custom)
        where = {n: f"metrics.{n.removeprefix(METRIC_VALUE_PREFIX)}.sum" if n.startswith(METRIC_VALUE_PREFIX)
                 else f"value_model.values.{n}" for n in texts}
        parsed = {n: (texts[n], parse(texts[n])) if n in texts else ("", exprs[n]) for n in self.names}
        check_against(schema, parsed, self.levels(), where)

    def reads(self) -> frozenset[str]:
        """The data's columns the config's expressions read (beyond the value columns)."""
        exprs = self.exprs(None)
        return frozenset(c for name, _ in self.custom for c in reads(exprs[name]) if c not in self.names or c == name)


FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


@lru_cache(maxsize=64)
def _reads_of(values: ValueSet) -> dict[str, frozenset[str]]:
    exprs = values.exprs(None)
    return {name: reads(exprs[name]) for name in values.names}


@lru_cache(maxsize=64)
def _levels(values: ValueSet, names: tuple[str, ...] | None) -> tuple[tuple[str, ...], ...]:
    reads_of = _reads_of(values)
    wanted = set(values.names if names is None else names)
    stack = list(wanted)
    while stack:  # the values the wanted ones read, transitively
        for dep in reads_of[stack.pop()]:
            if dep in reads_of and dep not in wanted:
                wanted.add(dep)
                stack.append(dep)
    return dependency_levels({n: reads_of[n] for n in values.names if n in wanted})


@lru_cache(maxsize=64)
def _row_values(values: ValueSet) -> frozenset[str]:
    reads_of = _reads_of(values)
    rows = {name for name, _ in values.custom}
    for level in values.levels():
        rows |= {n for n in level if reads_of[n] & rows - {n}}
    return frozenset(rows)


STRUCTURAL_COLUMNS = frozenset({ACTION, AMOUNT, AUTHORIZED, FRAUD_DISPUTE, DISPUTE_LOST})  # what a table is keyed by


@lru_cache(maxsize=64)
def _tabulable(values: ValueSet) -> frozenset[str]:
    reads_of = _reads_of(values)
    out: set[str] = set()
    for level in values.levels():
        for name in level:
            if name not in values.row_values:
                continue
            raw = {c for c in reads_of[name] if c not in reads_of or c == name}
            deps = {c for c in reads_of[name] if c in reads_of and c != name}
            if raw <= STRUCTURAL_COLUMNS and all(d in out or d not in values.row_values for d in deps):
                out.add(name)
    return frozenset(out)


def reads_labels(values: ValueSet, name: str) -> bool:
    """Whether a value column reads the fraud label or its maturity, directly or through other values."""
    return reads_any(values, name, _FRAUD_READERS)


def reads_any(values: ValueSet, name: str, columns: frozenset[str]) -> bool:
    """Whether a value column reads any of `columns` (data columns or values), directly or through other values."""
    reads_of = _reads_of(values)
    seen, stack = {name}, [name]
    while stack:
        for dep in reads_of[stack.pop()]:
            if dep in columns:
                return True
            if dep in reads_of and dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return False


# What the rare-event floor of a value without a table evaluates it at: (authorized, fraud_dispute, dispute_lost)
OUTCOMES: dict[str, tuple[bool, bool, bool]] = {"declined": (False, False, False), "approved": (True, False, False),
                                                "lost": (True, True, True)}


def counterfactual_column(value: str, action: str, outcome: str, *, squared: bool = False) -> str:
    """The row value `value` as it would be under `action` and `outcome` (mature), or its square."""
    return f"{'cf2' if squared else 'cf'}:{value}@{action}:{outcome}"


def counterfactual_cases(actions: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The (action, outcome) pairs a row value is evaluated at: every outcome of each action, none but declined
    after a block (whose total of a row value is then exact, `simulator.estimate.strata.stratum_value`)."""
    return tuple((a, o) for a in actions for o in (("declined",) if a == BLOCK else OUTCOMES))


def counterfactual_columns(values: ValueSet, actions: tuple[str, ...]) -> tuple[str, ...]:
    """Every counterfactual column of every row value (`counterfactual_column`): what the shards sum. The floor
    reads a value and its square under every action but block; a block's value alone makes its exact total."""
    return tuple(counterfactual_column(v, a, o, squared=sq) for v in values.row_value_names
                 for a, o in counterfactual_cases(actions) for sq in ((False,) if a == BLOCK else (False, True)))


def has_blocks(actions: tuple[str, ...]) -> bool:
    """Whether block quality is defined: blocked payments seen through allowed ones needs both actions."""
    return ALLOW in actions and BLOCK in actions


def needed_actions(name: str) -> frozenset[str]:
    """The actions a built-in metric's definition needs (SPEC §3: without them it is left out, not 0)."""
    if name in BLOCK_QUALITY:
        return frozenset({ALLOW, BLOCK})
    return _NEEDS.get(name, frozenset())


_NEEDS = {"blocked_count": frozenset({BLOCK}), "block_rate": frozenset({BLOCK}),
          "challenged_count": frozenset({CHALLENGE})}


def value_set(model: ValueModel, metrics: Mapping[str, MetricTable] | None = None,
              actions: tuple[str, ...] = DEFAULT_ACTIONS) -> ValueSet:
    """The run's `ValueSet` from `[value_model]` and `[metrics]`; `TableProblems` (paths below the config) if it cannot be.

    A `[metrics.NAME]` sum adds the value column `metric.NAME`, its rows are the mature ones when it
    reads the fraud label (unless `rows` says); a ratio divides two sum metrics' totals. A name of a
    built-in metric replaces it in place; new metrics follow the built-in ones in the config's order.
    """
    metrics = metrics or {}
    problems = _metric_name_problems(metrics)
    if problems:
        raise TableProblems(problems)
    custom = model.values + tuple((METRIC_VALUE_PREFIX + n, m.sum) for n, m in metrics.items() if m.sum is not None)
    values = ValueSet(model, custom)
    try:
        values.levels()
    except ValueError as error:
        raise TableProblems([("value_model.values", str(error))]) from None
    sums = {m.name: m for m in SUM_METRICS if needed_actions(m.name) <= set(actions)}
    ratios = {r.name: r for r in RATIO_METRICS if needed_actions(r.name) <= set(actions)}
    for name, m in metrics.items():
        kind, other = ("sum", ratios) if m.sum is not None else ("ratio", sums)
        if name in other:
            problems.append((f"metrics.{name}", f"the built-in {name!r} is not a {kind} metric; replace it with "
                                                f"{'ratio = [numerator, denominator]' if kind == 'sum' else 'sum = <SQL>'}"))
        elif m.sum is not None:
            value = METRIC_VALUE_PREFIX + name
            labelled = m.rows == "mature" or (m.rows is None and reads_labels(values, value))
            sums[name] = SumMetric(name, value, population="mature" if labelled else "one")
    for name, m in metrics.items():
        if m.ratio is None or name in sums:
            continue
        parts = [sums.get(part) for part in m.ratio]
        for side, part_name, part in zip(("numerator", "denominator"), m.ratio, parts, strict=True):
            missing = sorted(needed_actions(part_name) - set(actions))
            if part is None and missing:
                problems.append((f"metrics.{name}.ratio", f"the {side} {part_name!r} needs action {missing[0]!r}, "
                                                          f"which the action set ({', '.join(actions)}) lacks"))
            elif part is None:
                head = f"the {side} {part_name!r} is not a sum metric"
                problems.append((f"metrics.{name}.ratio", unknown_message(head, part_name, sorted(sums))))
        if None not in parts:
            ratios[name] = RatioMetric(name, parts[0], parts[1], scale=m.scale, proportion=False)  # type: ignore[arg-type]
    if problems:
        raise TableProblems(problems)
    return ValueSet(model, custom, tuple(sums.values()), tuple(ratios.values()))


def _metric_name_problems(metrics: Mapping[str, MetricTable]) -> list[tuple[str, str]]:
    problems = []
    for name in metrics:
        if not NAME.match(name):
            problems.append((f"metrics.{name}", f"{name!r} is not a metric name (letters, digits and _, "
                                                "not starting with a digit)"))
        elif name in FIXED_METRICS:
            problems.append((f"metrics.{name}", f"the built-in metric {name!r} is not an expression (its weighting "
                                                "is), or diagnostics read it by name; it cannot be replaced: name a new metric"))
    return problems


DEFAULT_VALUES = ValueSet(ValueModel())


_PER_AMOUNT = {"authorized_volume", "fraud_volume", "mature_authorized_volume", "amount"}
SIGNED_VALUES = frozenset({"net_value"})  # the only built-in value column that can be negative


def event_size(value: str, values: ValueSet, actions: tuple[str, ...], mean_amount: np.ndarray) -> np.ndarray:
    """A typical single row's contribution to a value column (for rare-event intervals).

    0 for a value without a table (`ValueSet.untabulated`): the size of its events is not known, so no
    floor is added; a tabulated row value's largest |c0| + |c1|·amount over actions and outcomes.
    """
    model = values.model
    if value in values.untabulated:
        return np.zeros_like(mean_amount)
    if value in values.row_values:
        from simulator.stats.units import value_table  # the table is keyed by the units' outcome patterns

        coefficients = np.abs(value_table(values, actions)[..., values.names.index(value), :])
        return np.max(coefficients[..., 0]) + np.max(coefficients[..., 1]) * mean_amount
    if value in _PER_AMOUNT:
        return mean_amount
    if value == "revenue":
        return model.margin_rate * mean_amount
    if value == "cost":
        return model.fee_rate * mean_amount + model.fee_fixed + model.challenge_cost
    if value == "fraud_loss":
        return mean_amount + model.dispute_fee
    if value == "net_value":
        return model.margin_rate * mean_amount + model.fee_fixed + model.challenge_cost + model.dispute_fee
    return np.ones_like(mean_amount)
