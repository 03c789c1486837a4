"""Units: rows grouped by everything their contribution to the sums depends on.

Every value column is linear in the amount, v = c0 + c1·amount, with c0 and c1
fixed by the logged action and the outcome pattern (authorized, fraud dispute,
dispute lost, label mature) and, when labels are developed, the fraud row's
development code (its age day: `simulator.model.maturity`). A coded policy's weight depends only on the cell
and the propensity. So rows that share their cell, propensity, logging
probability of `block`, outcome pattern and outcome-model (fold, bin) contribute to
every sum through three numbers: their count, Σ amount and Σ amount². Grouping
rows into such units first turns dozens of passes over the rows into three,
and every sum is then evaluated per unit:

    Σ ω_a ω_b v v' = ω_a ω_b [c0 c0' n + (c0 c1' + c1 c0') S1 + c1 c1' S2].

Logging policies usually explore with a handful of distinct probabilities, so
units are few; with continuous propensities, or policies whose weights vary
row by row (`python` kinds), every row is its own unit and the same formulas
hold with n = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulator.stats.cells import Grouping, group_rows
from simulator.stats.kernel import float_codes, moments
from simulator.schema import (
    ACTION,
    AMOUNT,
    AUTHORIZED,
    BLOCK,
    CREATED_AT,
    DISPUTE_LOST,
    FRAUD_DISPUTE,
    PROPENSITY,
    TRANSACTION_ID,
)
from simulator.errors import InvalidData
from simulator.model.value import OUTCOMES, ValueSet, counterfactual_cases, counterfactual_column, maturity_mask

if TYPE_CHECKING:
    from simulator.model.maturity import Development

PATTERNS = 16  # 4 outcome bits
_FRAUD_BIT = 2
_MATURE_BIT = 8


def outcome_pattern(batch: pl.DataFrame, cutoff: datetime | None) -> np.ndarray:
    """Per row: authorized | fraud_dispute << 1 | dispute_lost << 2 | mature << 3 (nulls are 0)."""
    bits = [pl.col(c).fill_null(False).cast(pl.Int64) for c in (AUTHORIZED, FRAUD_DISPUTE, DISPUTE_LOST)]
    mature = pl.lit(1, pl.Int64) if cutoff is None else (pl.col(CREATED_AT) <= pl.lit(cutoff)).cast(pl.Int64)
    expr = bits[0] + 2 * bits[1] + 4 * bits[2] + _MATURE_BIT * mature
    return batch.select(expr.alias("p")).to_series().to_numpy()


@lru_cache(maxsize=64)
def value_table(values: ValueSet, actions: tuple[str, ...], develop: float = 1.0) -> np.ndarray:
    """(actions, patterns, values, 2): c0 and c1 of every tabulated value column, from the value model itself.

    `develop` is the fraud label's weight (see `ValueSet.exprs`); 1 is the raw label. Values
    without a table (`ValueSet.untabulated`: the config's expressions may read any column) are
    NaN here; the shards evaluate every row value on the rows (`row_values`).
    """
    action, pattern = np.meshgrid(np.arange(len(actions)), np.arange(PATTERNS), indexing="ij")
    action, pattern = action.ravel(), pattern.ravel()
    frame = pl.DataFrame({
        ACTION: [actions[a] for a in action],
        AUTHORIZED: (pattern & 1).astype(bool),
        FRAUD_DISPUTE: (pattern & 2).astype(bool),
        DISPUTE_LOST: (pattern & 4).astype(bool),
        "_mature": ((pattern & _MATURE_BIT) > 0).astype(np.float64),
    })
    tabulated = tuple(n for n in values.names if n not in values.untabulated)
    at = {x: values.evaluate(frame.with_columns(pl.lit(float(x)).alias(AMOUNT)), None, pl.col("_mature"), pl.lit(develop),
                             names=tabulated).to_numpy()
          for x in (0.0, 1.0)}
    table = np.full((len(action), len(values.names), 2), np.nan)
    columns = [values.names.index(n) for n in tabulated]
    table[:, columns] = np.stack([at[0.0], at[1.0] - at[0.0]], axis=-1)  # (rows, values, 2)
    table.flags.writeable = False
    return table.reshape(len(actions), PATTERNS, len(values.names), 2)


def unit_values(values: ValueSet, actions: tuple[str, ...], units: Units, levels: np.ndarray | None) -> np.ndarray:
    """(units, values, 2): c0 and c1 of every value column of each unit.

    With developed labels (`levels`: the weight of each development code, see
    `simulator.model.maturity.Development`) a unit's fraud weight w is one number,
    and every tabulated value column is affine in it: c = c(w=0) + w · (c(w=1) − c(w=0)).
    Row values have no such coefficients (NaN): their sums are taken over the rows (`RowValues`).
    """
    raw = value_table(values, actions)[units.action, units.pattern]
    if levels is not None and units.develop is not None:
        undeveloped = value_table(values, actions, develop=0.0)[units.action, units.pattern]
        weight = levels[units.develop][:, None, None]
        raw = undeveloped + weight * (raw - undeveloped)
    if values.row_values:
        raw = raw.copy()
        raw[:, [values.names.index(n) for n in values.row_values]] = np.nan
    return raw


@dataclass(frozen=True, slots=True)
class RowValues:
    """Each row's value of every row value (`ValueSet.row_values`), evaluated by polars on the rows.

    An expression may read any column and need not be c0 + c1·amount, so units do not summarise these
    values: a unit's sums of them are sums over its rows (`simulator.stats.shard`).
    """

    columns: dict[str, np.ndarray]  # name -> (rows,) contiguous

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def column(self, name: str) -> np.ndarray:
        return self.columns[name]

    def plus(self, other: RowValues | None) -> RowValues:
        """Both sets of columns, side by side."""
        return self if other is None else RowValues(self.columns | other.columns)


def row_values(batch: pl.DataFrame, values: ValueSet, cutoff: datetime | None,
               develop: pl.Expr | None) -> RowValues | None:
    """The row values of every row of the batch (None when the value model has none).

    Raises `InvalidData` naming the expression when a row's value is null or not finite (a column the
    expression reads is null there, say): nothing is dropped silently.
    """
    names = values.row_value_names
    if not names:
        return None
    actual = values.evaluate(batch, cutoff, develop=develop, names=names).to_numpy().astype(np.float64)
    _check_finite(batch, values, names, actual)
    return RowValues({name: np.ascontiguousarray(actual[:, j]) for j, name in enumerate(names)})


def counterfactual_values(batch: pl.DataFrame, values: ValueSet, actions: tuple[str, ...],
                          cutoff: datetime | None, develop: pl.Expr | None) -> RowValues | None:
    """Every row value of every row as it would be under each action and outcome, and its square
    (`simulator.model.value.counterfactual_columns`): the rare-event floor of a value without a table.

    A value written as SQL may read any column (cost by card funding, volume of one brand), so how
    it moves with approval and fraud differs row by row; the floor (`simulator.estimate.rare`) reads
    these sums over a stratum's rows instead of a table's c0 + c1·amount. Evaluated as mature rows
    with the raw fraud label, except under a block, whose only outcome (declined) is each row's
    value as it stands (its own maturity): the stratified estimator's exact value of a block
    (`simulator.estimate.strata.stratum_value`). Where an expression is not finite under an outcome
    the row never had (a division by the authorisation, say), that outcome adds nothing to the floor.
    """
    names = values.row_value_names
    if not names:
        return None
    # as mature rows, but a block's as it stands (its own maturity and label weight)
    as_mature = pl.col(_AS_MATURE) > 0
    mature = pl.when(as_mature).then(pl.lit(1.0)).otherwise(maturity_mask(cutoff))
    weight = None if develop is None else pl.when(as_mature).then(pl.lit(1.0)).otherwise(develop)
    read = set(values.reads()) | {ACTION, AMOUNT, AUTHORIZED, FRAUD_DISPUTE, DISPUTE_LOST}
    read |= {c for e in (mature, weight) if e is not None for c in e.meta.root_names()}
    narrow, kind = batch.select(sorted(read & set(batch.columns))), batch.schema[ACTION]
    cases = counterfactual_cases(actions)
    stacked = []  # every case's rows one after the other: one evaluation of the value model, not one per case
    for action, outcome in cases:
        authorized, fraud, lost = OUTCOMES[outcome]
        stacked.append(narrow.with_columns(
            pl.lit(action).cast(kind).alias(ACTION), pl.lit(authorized).alias(AUTHORIZED), pl.lit(fraud).alias(FRAUD_DISPUTE),
            pl.lit(lost).alias(DISPUTE_LOST), pl.lit(float(action != BLOCK)).alias(_AS_MATURE)))
    evaluated = values.evaluate(pl.concat(stacked), cutoff, mature=mature, develop=weight, names=names)
    out: dict[str, np.ndarray] = {}
    for name in names:
        column = evaluated[name].to_numpy()
        if not np.isfinite(column).all():
            column = np.nan_to_num(column, nan=0.0, posinf=0.0, neginf=0.0)
        for k, (action, outcome) in enumerate(cases):
            value = column[k * batch.height:(k + 1) * batch.height]  # contiguous: no copy
            out[counterfactual_column(name, action, outcome)] = value
            if action != BLOCK:  # the floor's; a block's total is exact
                out[counterfactual_column(name, action, outcome, squared=True)] = value * value
    return RowValues(out)


_AS_MATURE = "__as_mature"


def contradicted(values: ValueSet, actions: tuple[str, ...], rows: RowValues, action: np.ndarray, pattern: np.ndarray,
                 weight: np.ndarray | None, amount: np.ndarray) -> dict[str, np.ndarray]:
    """Per tabulable row value (`ValueSet.tabulable`), the rows where it is not its table's c0 + c1·amount.

    `weight`: each row's fraud label weight when labels are developed (the table is affine in it).
    """
    out: dict[str, np.ndarray] = {}
    raw = value_table(values, actions)
    undeveloped = None if weight is None else value_table(values, actions, develop=0.0)
    for name in rows.names:
        if name not in values.tabulable:
            continue
        k = values.names.index(name)
        c = raw[action, pattern, k]  # (rows, 2)
        if undeveloped is not None and weight is not None:
            u = undeveloped[action, pattern, k]
            c = u + weight[:, None] * (c - u)
        expected = c[:, 0] + c[:, 1] * amount
        actual = rows.column(name)
        scale = np.abs(actual) + np.abs(c[:, 0]) + np.abs(c[:, 1] * amount)
        out[name] = np.abs(actual - expected) > 1e-9 * scale + 1e-12
    return out


def _check_finite(batch: pl.DataFrame, values: ValueSet, names: tuple[str, ...], actual: np.ndarray) -> None:
    bad = ~np.isfinite(actual)
    if not bad.any():
        return
    j = int(np.flatnonzero(bad.any(axis=0))[0])
    row = int(np.flatnonzero(bad[:, j])[0])
    text = dict(values.custom).get(names[j], "a built-in formula reading the config's values")
    example = batch[TRANSACTION_ID][row] if TRANSACTION_ID in batch.columns else f"row {row}"
    raise InvalidData(f"value {names[j]!r} = {text!r}: {int(bad[:, j].sum())} rows evaluate to null or a non-finite "
                      f"number, e.g. transaction_id {example!r}; make the expression total (COALESCE, CASE) or fix the data")


def development_codes(batch: pl.DataFrame, pattern: np.ndarray, development: Development) -> tuple[np.ndarray, int]:
    """Each row's development code and how many codes there are (`Development.levels`).

    Only fraud rows old enough to develop (fraud and mature bits of `pattern`) carry one, so the
    dates of those few rows alone are read.
    """
    code = np.zeros(batch.height, dtype=np.int64)
    rows = np.flatnonzero((pattern & _FRAUD_BIT > 0) & (pattern & _MATURE_BIT > 0))
    if len(rows):
        code[rows] = batch[rows].select(development.code_expr()).to_series().to_numpy()
    return code, len(development.levels)


def split_by_code(grouping: Grouping, code: np.ndarray) -> Grouping:
    """Split groups further by a code that is 0 on almost every row (the development code of fraud rows).

    As one more key component its cardinality (hundreds of age days) would push the combined key past the
    dense range and into a sort of every row; only the few coded rows are sorted here instead.
    """
    coded = np.flatnonzero(code)
    if len(coded) == 0:
        return grouping
    pairs = grouping.ids[coded] * (int(code.max()) + 1) + code[coded]
    distinct, inverse = np.unique(pairs, return_inverse=True)
    ids = grouping.ids.copy()
    ids[coded] = grouping.size + inverse
    return group_rows([(ids, grouping.size + len(distinct))], len(ids))  # renumbered; groups left empty vanish


@dataclass(frozen=True, slots=True)
class Units:
    """Units of a shard: the cell of each unit, its key values and its amount moments."""

    grouping: Grouping  # rows -> units
    cell: np.ndarray  # (units,) cell index
    action: np.ndarray
    pattern: np.ndarray
    propensity: np.ndarray
    logged_block: np.ndarray | None  # logging probability of block, when the data has it
    dm_bin: np.ndarray | None  # the DR outcome model's (fold, bin) key (`simulator.model.direct.model_keys`)
    develop: np.ndarray | None  # development code (index into the fraud weights), when labels are developed
    n: np.ndarray
    s1: np.ndarray  # Σ amount
    s2: np.ndarray  # Σ amount²


def build_units(
    batch: pl.DataFrame, prefix: list[tuple[np.ndarray, int]], action: np.ndarray, pattern: np.ndarray,
    logged_block: np.ndarray | None, dm_bin: np.ndarray | None, per_row: bool,
    develop: tuple[np.ndarray, int] | None = None,
) -> Units:
    """Group rows into units: the cell key `prefix` first, then what a unit's sums depend on.

    Every row is its own unit when `per_row`. `Units.cell` is left for the caller to fill.
    `develop` is each row's development code and how many there are: nonzero only on
    developed fraud rows, so it splits few units.
    """
    propensity = batch[PROPENSITY].cast(pl.Float64).to_numpy()
    amount = batch[AMOUNT].cast(pl.Float64).to_numpy()
    if per_row:
        rows = np.arange(batch.height)
        grouping = Grouping(ids=rows, first=rows, size=batch.height)
    else:
        components = [*prefix, float_codes(propensity), (pattern, PATTERNS)]
        if logged_block is not None:
            components.append(float_codes(logged_block))
        if dm_bin is not None:
            components.append((dm_bin, int(dm_bin.max()) + 1 if len(dm_bin) else 0))
        grouping = group_rows(components, batch.height)
        if develop is not None:
            grouping = split_by_code(grouping, develop[0])
    first, ids, size = grouping.first, grouping.ids, grouping.size
    n, s1, s2 = moments(ids, size, amount)  # one pass, the three sums in row order
    return Units(
        grouping=grouping,
        cell=np.empty(0, dtype=np.int64),
        action=action[first],
        pattern=pattern[first],
        propensity=propensity[first],
        logged_block=None if logged_block is None else logged_block[first],
        dm_bin=None if dm_bin is None else dm_bin[first],
        develop=None if develop is None else develop[0][first],
        n=n, s1=s1, s2=s2,
    )
