"""Mergeable statistics of one shard of logged transactions.

`shard_stats(batch, plan)` turns rows into `Stats`: one row per cell (see
`simulator.stats.cells`) holding the sums `simulator.plan.moments` asks for, and, with a
bootstrap, replicate totals per segment. Stats merge by addition, in any order
(`Stats.empty()` is the identity), so shards can run anywhere and combine on
the driver. Rows never leave this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from segments.codes import SegmentCodes, segment_codes
from simulator.stats.binned import BinnedAccumulator
from simulator.stats.changes import Examples, changing, memberships, merge_examples, shard_examples, transition_sums
from simulator.stats.bootstrap import Replicates, replicate_sums
from simulator.stats.cells import Grouping, group_rows, group_sum
from simulator.stats.kernel import (BOTH_FLAT, FACTOR_BASIS, FACTOR_ONE, GENERAL, LEFT_FLAT, RIGHT_FLAT, SECOND_GIVEN,
                                    SECOND_LINEAR, SECOND_ROWS, accumulate, accumulate_max, cell_sums, group_max)
from simulator.errors import PolicysimError
from simulator.plan.moments import (
    INV_P,
    LOGGED_BLOCK,
    ONE,
    Cells,
    HAT,
    Needs,
    design_column,
    direct_column,
    row_direct_column,
    linear_column,
    max_column,
    quadratic_column,
    row_basis,
    row_block_basis,
)
from simulator.plan.compiled import Plan
from simulator.schema import ACTION, ALLOW, AMOUNT, BLOCK, PROPENSITY, logging_prob_column
from simulator.stats.units import (RowValues, Units, build_units, contradicted, counterfactual_values, development_codes,
                                   outcome_pattern, row_values, unit_values)
from simulator.model.direct import model_keys
from simulator.plan.direct_terms import direct_values, mixed_value, predicted_value
from simulator.model.value import Weighting, has_blocks

ACTION_KEY = "action"
SUPPORT_KEY = "support"
ROWS = "n"


def segment_key(index: int) -> str:
    """Cell key column holding the label of segmentation `index`."""
    return f"seg|{index}"


def code_key(policy: str) -> str:
    """Cell key column holding a coded policy's code."""
    return f"code|{policy}"


def mass_column(policy: str, action: str, unsupported: bool) -> str:
    """Σ π(action|x) over a cell (or over its rows where the logging policy never takes it)."""
    return f"{'pz' if unsupported else 'pa'}|{policy}|{action}"



@dataclass(frozen=True, slots=True)
class Stats:
    """Sufficient statistics of some rows: per-cell sums, bootstrap replicate totals and example payments.

    `examples`: the largest payments that change decision (`simulator.stats.changes`), when the plan asks.
    """

    cells: pl.DataFrame
    replicates: Replicates | None
    rows: int
    examples: Examples | None = None

    @staticmethod
    def empty() -> Stats:
        """The identity of `merge`."""
        return Stats(cells=pl.DataFrame(), replicates=None, rows=0)

    def merge(self, other: Stats) -> Stats:
        """Statistics of the union of both row sets."""
        return merge_all([self, other])


def merge_all(parts: Sequence[Stats]) -> Stats:
    """Statistics of the union of all row sets, summed in the order given (so reruns are bit-identical).

    Cells are matched on integer codes, not on their string keys: each segment key column's few
    distinct labels are ranked by their text, every key column becomes a small integer component,
    and `group_rows` numbers the merged cells in key order (the order a sort by the key columns
    gives). Each sum is then added part after part, row after row (`kernel.accumulate`, the order
    of one `np.bincount` over the concatenated parts), without concatenating the sums.
    """
    parts = [p for p in parts if not p.cells.is_empty()]
    if len(parts) <= 1:
        return parts[0] if parts else Stats.empty()
    columns = parts[0].cells.columns
    keys = [c for c in columns if _is_key(c)]
    key_frame = pl.concat([p.cells.select(keys) for p in parts], rechunk=True)
    grouping = _key_groups(key_frame)
    out = {k: key_frame[k].gather(grouping.first) for k in keys}
    bounds = np.cumsum([0] + [p.cells.height for p in parts])
    for column in columns:
        if _is_key(column):
            continue
        total = np.zeros(grouping.size)
        add = accumulate_max if column.startswith("max|") else accumulate
        for part, lo, hi in zip(parts, bounds[:-1], bounds[1:], strict=True):
            add(total, grouping.ids[lo:hi], part.cells[column].cast(pl.Float64).to_numpy())
        out[column] = pl.Series(column, total)
    replicates = None
    for part in parts:
        replicates = _merge_optional(replicates, part.replicates)
    examples = merge_examples([p.examples for p in parts if p.examples is not None])
    return Stats(cells=pl.DataFrame([out[c] for c in columns]), replicates=replicates, rows=sum(p.rows for p in parts),
                 examples=examples)


def _key_groups(frame: pl.DataFrame) -> Grouping:
    """The rows of `frame` (cell key columns) grouped by all columns, numbered in the order of a sort by them.

    A string column is coded by the rank of its text among its distinct values (Python's order of
    str, the code-point order polars sorts UTF-8 by); integer keys are non-negative codes.
    """
    components = []
    for name in frame.columns:
        column = frame[name]
        if column.dtype == pl.String:
            distinct = sorted(column.unique().to_list())
            codes = column.replace_strict(distinct, list(range(len(distinct))), return_dtype=pl.Int64).to_numpy()
            components.append((codes, len(distinct)))
        else:
            values = column.cast(pl.Int64).to_numpy()
            if column.null_count() or (len(values) and values.min() < 0):
                raise PolicysimError(f"cell key {name!r} holds a null or negative code")  # a bug, not bad input
            components.append((values, int(values.max()) + 1))
    return group_rows(components, frame.height)


def _is_key(column: str) -> bool:
    return column in (ACTION_KEY, SUPPORT_KEY) or column.startswith(("seg|", "code|"))


def _merge_optional(a: Replicates | None, b: Replicates | None) -> Replicates | None:
    if a is None:
        return b
    if b is None:
        return a
    return a.merge(b)


def action_index(batch: pl.DataFrame, actions: tuple[str, ...]) -> np.ndarray:
    """The logged action as an index into the action set (an Enum's physical codes: no per-row hash join)."""
    try:
        codes = batch[ACTION].cast(pl.String).cast(pl.Enum(list(actions))).to_physical()
    except pl.exceptions.InvalidOperationError:
        codes = None
    if codes is None or codes.null_count():  # an action outside the set, or none: as before (its error)
        mapping = {a: i for i, a in enumerate(actions)}
        return batch[ACTION].cast(pl.String).replace_strict(mapping, return_dtype=pl.Int8).to_numpy()
    return codes.cast(pl.Int8).to_numpy()


def row_probabilities(batch: pl.DataFrame, plan: Plan) -> dict[str, np.ndarray]:
    """Each per-row policy's `target_probs`, checked once per batch."""
    return {
        p.name: checked_probabilities(p.name, p.policy.probabilities(batch), len(plan.actions), batch.height)
        for p in plan.per_row
    }


def bases(batch: pl.DataFrame, plan: Plan, action: np.ndarray, probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-row basis weights (see `simulator.plan.moments`)."""
    propensity = batch[PROPENSITY].cast(pl.Float64).to_numpy()
    out = unit_bases(plan, action, propensity, _logged_block(batch, plan))
    inv_p = out[INV_P]
    for name, target_probs in probs.items():
        out[row_basis(name)] = target_probs[np.arange(batch.height), action] * inv_p
        if has_blocks(plan.actions):
            allow, block = action == plan.actions.index(ALLOW), plan.actions.index(BLOCK)
            out[row_block_basis(name)] = allow * target_probs[:, block] * inv_p
    return out


def unit_bases(plan: Plan, action: np.ndarray, propensity: np.ndarray, logged_block: np.ndarray | None) -> dict[str, np.ndarray]:
    """The bases that depend only on the logged action and the logging probabilities."""
    inv_p = 1.0 / propensity
    out = {ONE: np.ones_like(inv_p), INV_P: inv_p}
    if logged_block is not None:
        out[LOGGED_BLOCK] = (action == plan.actions.index(ALLOW)) * logged_block * inv_p
    return out


def _logged_block(batch: pl.DataFrame, plan: Plan) -> np.ndarray | None:
    if not plan.logging_probs or not has_blocks(plan.actions):
        return None
    return batch[logging_prob_column(BLOCK)].cast(pl.Float64).to_numpy()


def checked_probabilities(name: str, probs: np.ndarray, n_actions: int, rows: int) -> np.ndarray:
    """A policy's output, refused unless it is a proper distribution per row."""
    if probs.shape != (rows, n_actions):
        raise PolicysimError(f"policy {name!r} returned shape {probs.shape}, expected ({rows}, {n_actions})")
    bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1) | (np.abs(probs.sum(axis=1) - 1) > 1e-9)
    if bad.any():
        raise PolicysimError(
            f"policy {name!r} returned {int(bad.sum())} rows that are not probability distributions, "
            f"e.g. row {int(np.argmax(bad))}: {probs[np.argmax(bad)].tolist()}"
        )
    return probs


def support_pattern(batch: pl.DataFrame, plan: Plan, action: np.ndarray) -> np.ndarray:
    """Bit a is set when the logging policy never takes action a for the row.

    Exact from `logging_prob_<action>`; without them, a row logged with
    propensity 1 explored no other action, so every other action's bit is set
    (rows with propensity < 1 get the segment-level check of `simulator.estimate.support`).
    """
    pattern = np.zeros(batch.height, dtype=np.int64)
    if plan.logging_probs:
        for index, name in enumerate(plan.actions):
            zero = batch[logging_prob_column(name)].cast(pl.Float64).to_numpy() <= 0.0
            pattern |= zero.astype(np.int64) << index
        return pattern
    certain = batch[PROPENSITY].cast(pl.Float64).to_numpy() >= 1.0
    every = (1 << len(plan.actions)) - 1
    return np.where(certain, every & ~(np.int64(1) << action.astype(np.int64)), 0)


def policy_codes(batch: pl.DataFrame, plan: Plan) -> dict[str, np.ndarray]:
    """Each coded policy's per-row code; its table must be the one planned."""
    codes = {}
    for planned in plan.coded:
        coded = planned.policy.coded(batch)
        if coded is None or not np.array_equal(coded.table, planned.table):
            raise PolicysimError(f"policy {planned.name!r} changed its code table between batches")
        codes[planned.name] = coded.codes
    return codes


@dataclass(frozen=True, slots=True)
class _Layout:
    """How a shard's rows group: into units, and units into cells."""

    units: Units
    rows: RowValues | None  # the row values of every row (`simulator.stats.units.row_values`)
    pattern: np.ndarray  # each row's outcome pattern
    weight: np.ndarray | None  # each row's fraud label weight, when labels are developed
    cells: Grouping  # rows -> cells (first: a row of each cell)
    segs: list[SegmentCodes]
    keys: dict[str, pl.Series]  # cell key columns, in the frame's order
    order: np.ndarray  # the frame's rows: cells in the order of their keys (`keys`)


def _layout(batch: pl.DataFrame, plan: Plan, action: np.ndarray, codes: dict[str, np.ndarray], support: np.ndarray) -> _Layout:
    """One grouping of the rows (into units); cells are a grouping of units."""
    segs = segment_codes(batch, plan.segments)
    prefix = [(s.codes, len(s.labels)) for s in segs]
    prefix += [(action, len(plan.actions)), (support, 1 << len(plan.actions))]
    prefix += [(codes[p.name], len(p.table)) for p in plan.coded]
    pattern = outcome_pattern(batch, plan.cutoff)
    dm_bin = model_keys(batch, plan.direct) if plan.direct is not None else None  # (fold, bin): units share predictions
    develop = None if plan.development is None else development_codes(batch, pattern, plan.development)
    weight = None if plan.development is None else plan.development.weight_expr()
    rows_evaluated = row_values(batch, plan.values, plan.cutoff, weight)
    if rows_evaluated is not None and plan.stratified:  # the rare-event floor of values without a table
        rows_evaluated = rows_evaluated.plus(counterfactual_values(batch, plan.values, plan.actions, plan.cutoff, weight))
    units = build_units(batch, prefix, action, pattern, _logged_block(batch, plan), dm_bin, per_row=bool(plan.per_row),
                        develop=develop)
    first = units.grouping.first
    cells = group_rows([(values[first], size) for values, size in prefix], len(first))
    units = replace(units, cell=cells.ids)

    def rows(grouping: Grouping) -> Grouping:  # a grouping of units, as a grouping of rows
        return Grouping(ids=grouping.ids[units.grouping.ids], first=first[grouping.first], size=grouping.size)

    row_cells = rows(cells)
    # The cells' order in the frame: sorted by the key columns (segment labels as text), as a sort of
    # the frame by them gave; a lexsort of the cells' integer keys (label ranks) finds it without one.
    columns: list[tuple[str, np.ndarray]] = []
    for index, seg in enumerate(segs):
        columns.append((segment_key(index), seg.codes[row_cells.first]))
    columns.append((ACTION_KEY, action[row_cells.first]))
    columns.append((SUPPORT_KEY, support[row_cells.first]))
    columns += [(code_key(name), code[row_cells.first]) for name, code in codes.items()]
    ranks = [_label_ranks(seg.labels) for seg in segs]
    sortable = [ranks[k][values] if k < len(segs) else values for k, (_, values) in enumerate(columns)]
    order = np.lexsort(sortable[::-1]) if row_cells.size > 1 else np.arange(row_cells.size)
    keys: dict[str, pl.Series] = {}
    for index, seg in enumerate(segs):
        keys[segment_key(index)] = pl.Series(segment_key(index), seg.labels, dtype=pl.String).gather(
            columns[index][1][order])
    keys[ACTION_KEY] = pl.Series(ACTION_KEY, action[row_cells.first][order], dtype=pl.Int8)
    keys[SUPPORT_KEY] = pl.Series(SUPPORT_KEY, support[row_cells.first][order], dtype=pl.Int16)
    for name, code in codes.items():
        keys[code_key(name)] = pl.Series(code_key(name), code[row_cells.first][order], dtype=pl.Int32)
    return _Layout(units=units, rows=rows_evaluated, pattern=pattern,
                   weight=None if develop is None or plan.development is None else plan.development.levels[develop[0]],
                   cells=row_cells, segs=segs, keys=keys, order=order)


def _label_ranks(labels: Sequence[str]) -> np.ndarray:
    """Each label's rank in text order (Python's order of str: code points, the order polars sorts UTF-8 in)."""
    ranks = np.empty(len(labels), dtype=np.int64)
    ranks[sorted(range(len(labels)), key=labels.__getitem__)] = np.arange(len(labels))
    return ranks


Linear = tuple[np.ndarray, np.ndarray]  # (c0, c1): a value column is c0 + c1·amount


def _sums(units: Units, cells: int, values: dict[str, Linear], basis: dict[str, np.ndarray], needs: Needs,
          rows: RowValues | None = None, amount: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every needed sum per cell, evaluated per unit (see `simulator.stats.units`) in one compiled loop.

    Each sum is Σ over a cell's units of a factor times a second (`kernel.cell_sums`): ω_b and
    c0 n + c1 S1 for a linear sum; ω_a ω_b (× (1 − p) for a design sum) and Σv·v' over the unit,
    a0 b0 n + (a0 b1 + a1 b0) S1 + a1 b1 S2 with the terms that are exactly 0 left out, for a
    quadratic one. Factors and seconds are computed once per unit and shared by the sums that
    use them; nothing per sum is materialised. A row value's sums over a unit are sums over its
    rows (`rows`, with each row's `amount`): those are computed here and handed to the loop.
    """
    per_unit = _RowSums(units, rows, amount)
    names = list(values)
    value_index = {name: j for j, name in enumerate(names)}
    basis_index = {name: j for j, name in enumerate(basis)}
    flat = {name: not values[name][1].any() for name in names}  # no amount term (counts, DR predictions)
    given: list[np.ndarray] = []
    factors: dict[tuple[int, int, bool], int] = {}
    seconds: dict[tuple[int, int, int], int] = {}

    def factor(a: int, b: int, design: bool = False) -> int:
        return factors.setdefault((a, b, design), len(factors))

    def second(kind: int, left: int, right: int = 0) -> int:
        return seconds.setdefault((kind, left, right), len(seconds))

    def hand(per_row_sum: np.ndarray) -> int:  # a per-unit sum computed here (memoised by `_RowSums`)
        for k, known in enumerate(given):
            if known is per_row_sum:
                return second(SECOND_GIVEN, k)
        given.append(per_row_sum)
        return second(SECOND_GIVEN, len(given) - 1)

    def product(left: str, right: str) -> int:
        if per_unit.has(left) or per_unit.has(right):
            return hand(per_unit.product(left, right, values))
        shape = (BOTH_FLAT if flat[left] and flat[right] else LEFT_FLAT if flat[left]
                 else RIGHT_FLAT if flat[right] else GENERAL)
        return second(shape, value_index[left], value_index[right])

    columns = [ROWS]
    spec = [(factor(FACTOR_ONE, 0), second(SECOND_ROWS, 0))]
    for b, v in needs.linear:
        columns.append(linear_column(b, v))
        spec.append((factor(FACTOR_BASIS, basis_index[b]),
                     hand(per_unit.first(v)) if per_unit.has(v) else second(SECOND_LINEAR, value_index[v])))
    for a, b, prod in needs.quadratic:
        columns.append(quadratic_column(a, b, prod))
        spec.append((factor(basis_index[a], basis_index[b]), product(*prod.split("*"))))
    for a, b, prod in needs.design:
        columns.append(design_column(a, b, prod))
        spec.append((factor(basis_index[a], basis_index[b], True), product(*prod.split("*"))))
    count = len(units.n)
    order = np.argsort(units.cell, kind="stable")  # each cell's units in ascending order, as np.bincount adds them
    starts = np.zeros(cells + 1, dtype=np.int64)
    np.cumsum(np.bincount(units.cell, minlength=cells), out=starts[1:])

    def ints(items: list, k: int) -> np.ndarray:
        return np.array([item[k] for item in items], dtype=np.int64)

    factor_keys, second_keys = list(factors), list(seconds)
    sums, top = cell_sums(
        order, starts, units.n, units.s1, units.s2,
        _matrix([values[v][0] for v in names], count), _matrix([values[v][1] for v in names], count),
        _matrix(list(basis.values()), count), 1.0 - units.propensity, _matrix(given, count),
        ints(factor_keys, 0), ints(factor_keys, 1), np.array([k[2] for k in factor_keys], dtype=np.bool_),
        ints(second_keys, 0), ints(second_keys, 1), ints(second_keys, 2), ints(spec, 0), ints(spec, 1))
    out = dict(zip(columns, sums, strict=True))
    out |= {max_column(b): top[j] for j, b in enumerate(basis)}
    return out


def _matrix(columns: list[np.ndarray], rows: int) -> np.ndarray:
    """(rows, len(columns)) float64, C order: a unit's entries side by side for the kernel."""
    out = np.empty((rows, len(columns)))
    for j, column in enumerate(columns):
        out[:, j] = column
    return out


class _RowSums:
    """Sums over each unit's rows of row values, their products with the amount and with each other (memoised)."""

    def __init__(self, units: Units, rows: RowValues | None, amount: np.ndarray | None) -> None:
        self.units, self.rows, self.amount = units, rows, amount
        self.memo: dict[tuple[str, ...], np.ndarray] = {}

    def has(self, name: str) -> bool:
        return self.rows is not None and name in self.rows

    def _sum(self, key: tuple[str, ...], per_row: np.ndarray) -> np.ndarray:
        if key not in self.memo:
            grouping = self.units.grouping
            self.memo[key] = np.bincount(grouping.ids, weights=per_row, minlength=grouping.size)
        return self.memo[key]

    def first(self, name: str) -> np.ndarray:
        """Σ v over each unit."""
        assert self.rows is not None
        return self._sum((name,), self.rows.column(name))

    def product(self, left: str, right: str, values: dict[str, Linear]) -> np.ndarray:
        """Σ v·v' over each unit, for a row value and any value (c0 + c1·amount per unit) or two row values."""
        assert self.rows is not None and self.amount is not None
        if self.has(left) and self.has(right):
            key = tuple(sorted((left, right)))
            return self._sum(key, self.rows.column(left) * self.rows.column(right))
        row, other = (left, right) if self.has(left) else (right, left)
        b0, b1 = values[other]
        with_amount = self._sum((row, "*amount"), self.rows.column(row) * self.amount)
        return b0 * self.first(row) + b1 * with_amount


def _masses(grouping: Grouping, plan: Plan, support: np.ndarray, probs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-row policies' probability mass per action, and where it lacks support."""
    out: dict[str, np.ndarray] = {}
    for name, target_probs in probs.items():
        for index, action in enumerate(plan.actions):
            out[mass_column(name, action, False)] = group_sum(grouping, target_probs[:, index])
            unsupported = target_probs[:, index] * ((support >> index) & 1)
            out[mass_column(name, action, True)] = group_sum(grouping, unsupported)
    return out


def _direct(plan: Plan, needs: Needs, units: Units, cells: int, values: dict[str, Linear],
            batch: pl.DataFrame, row_cells: Grouping, probs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, Linear]]:
    """DR: each unit's prediction at its logged action (a value column); per-cell prediction sums.

    Also returns the per-unit predictions under every action (and per-row policies' mixes) that the
    cross sums of the direct method need (`simulator.plan.direct_terms`), as value columns for `_sums`.
    """
    model = plan.direct
    if model is None or units.dm_bin is None:
        return {}, {}
    wanted = direct_values(needs.quadratic)
    out: dict[str, np.ndarray] = {}
    extra: dict[str, Linear] = {}
    zeros = np.zeros(len(units.n))
    for value in needs.direct:
        predicted = model.predictions(units.dm_bin, value)  # (units, actions), out of each unit's fold
        values[HAT + value] = (predicted[np.arange(len(units.n)), units.action], zeros)
        for index, name in enumerate(plan.actions):
            out[direct_column(name, value)] = np.bincount(units.cell, predicted[:, index] * units.n, minlength=cells)
            if predicted_value(index, value) in wanted:
                extra[predicted_value(index, value)] = (predicted[:, index], zeros)
    if probs:  # per-row policies: their own mix of predictions, row by row (units are rows)
        keys = model_keys(batch, model)
        for name, target_probs in probs.items():
            for value in needs.direct:
                predicted = model.predictions(keys, value)
                mixed = [(Weighting.TARGET, (target_probs * predicted).sum(axis=1))]
                if has_blocks(plan.actions):
                    allow, block = plan.actions.index(ALLOW), plan.actions.index(BLOCK)
                    mixed.append((Weighting.BLOCKED, target_probs[:, block] * predicted[:, allow]))
                for weighting, per_row in mixed:
                    out[row_direct_column(name, weighting, value)] = group_sum(row_cells, per_row)
                    if mixed_value(plan, name, weighting, value) in wanted:
                        extra[mixed_value(plan, name, weighting, value)] = (per_row, zeros)
    return out, extra


def gap_column(value: str) -> str:
    """Per cell: 1 when some row's value contradicts its table (`simulator.stats.units.contradicted`), else 0."""
    return f"max|gap|{value}"


def _contradictions(plan: Plan, layout: _Layout, action: np.ndarray, amount: np.ndarray) -> dict[str, np.ndarray]:
    if layout.rows is None or not plan.values.tabulable:
        return {}
    found = contradicted(plan.values, plan.actions, layout.rows, action, layout.pattern, layout.weight, amount)
    out = {}
    for name, rows in found.items():
        out[gap_column(name)] = group_max(layout.cells.ids, layout.cells.size, rows.astype(np.float64))
    return out


def verified_plan(plan: Plan, stats: Stats) -> Plan:
    """The plan whose value set knows which tabulable values the data contradicted (`ValueSet.unverified`).

    Estimators read a value's shape from its table only where every row of the data agreed with it.
    """
    if not plan.values.tabulable or stats.cells.is_empty():
        return plan
    wrong = frozenset(v for v in plan.values.tabulable
                      if gap_column(v) in stats.cells.columns and stats.cells[gap_column(v)].max() > 0)
    return replace(plan, values=replace(plan.values, unverified=wrong))


def shard_stats(batch: pl.DataFrame, plan: Plan, needs: Needs) -> Stats:
    """Statistics of one batch of rows (canonical columns, as validated)."""
    if batch.height == 0:
        return Stats.empty()
    action = action_index(batch, plan.actions)
    codes = policy_codes(batch, plan)
    support = support_pattern(batch, plan, action)
    layout = _layout(batch, plan, action, codes, support)
    units, cells = layout.units, layout.cells
    levels = None if plan.development is None else plan.development.levels
    table = unit_values(plan.values, plan.actions, units, levels)  # (units, values, 2); NaN for row values
    values: dict[str, Linear] = {v: (table[:, j, 0], table[:, j, 1]) for j, v in enumerate(plan.values.names)}
    probs = row_probabilities(batch, plan)
    direct, predicted = _direct(plan, needs, units, cells.size, values, batch, cells, probs)
    row_basis_weights = bases(batch, plan, action, probs) if plan.per_row or plan.bootstrap else None
    if plan.per_row:  # units are rows
        basis = row_basis_weights
    else:
        basis = unit_bases(plan, units.action, units.propensity, units.logged_block)
    amount = batch[AMOUNT].cast(pl.Float64).to_numpy()
    sums = _sums(units, cells.size, values | predicted, basis, needs, layout.rows, amount)
    sums |= _masses(cells, plan, support, probs) | direct
    sums |= _contradictions(plan, layout, action, amount)
    examples = None
    if plan.changes is not None:  # decision changes, in the same pass (simulator.stats.changes)
        members = {name: memberships(name, plan, action, codes, probs) for name in (plan.baseline, *changing(plan))}
        sums |= transition_sums(plan, cells, batch[AMOUNT].cast(pl.Float64).to_numpy(), members)
        examples = shard_examples(batch, plan, members, layout.segs)
    order = layout.order
    frame = pl.DataFrame(list(layout.keys.values()) + [pl.Series(k, v[order]) for k, v in sums.items()])
    replicates = None
    if plan.bootstrap > 0:
        rows = units.grouping.ids
        per_row = {v: c0[rows] + c1[rows] * amount for v, (c0, c1) in values.items()}
        if layout.rows is not None:
            per_row |= {v: layout.rows.column(v) for v in layout.rows.names}
        cell_keys = Cells(action=action[cells.first], codes={k: v[cells.first] for k, v in codes.items()})
        binned = None if plan.binned is None else BinnedAccumulator(
            plan, plan.binned, cells, cell_keys.codes, cell_keys.action, layout.segs)
        replicates = replicate_sums(batch, plan, cells, cell_keys, row_basis_weights, per_row, layout.segs, sink=binned)
        if binned is not None:
            replicates = replace(replicates, binned=binned.result())
    return Stats(cells=frame, replicates=replicates, rows=batch.height, examples=examples)
