"""Mergeable statistics of one shard of logged transactions.

`shard_stats(batch, plan)` turns rows into `Stats`: one row per cell (see
`simulator.cells`) holding the sums `simulator.moments` asks for, and, with a
bootstrap, replicate totals per segment. Stats merge by addition, in any order
(`Stats.empty()` is the identity), so shards can run anywhere and combine on
the driver. Rows never leave this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from segments import segment_codes
from simulator.bootstrap import Replicates, replicate_sums
from simulator.cells import Grouping, group_max, group_rows, group_sum
from simulator.errors import PolicysimError
from simulator.moments import (
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
from simulator.plan import Plan
from simulator.schema import ACTION, ALLOW, BLOCK, PROPENSITY, logging_prob_column
from simulator.direct import row_bins
from simulator.value import VALUES, Weighting, value_exprs

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


def key_columns(plan: Plan) -> list[str]:
    """The columns that identify a cell, in order."""
    keys = [segment_key(i) for i in range(len(plan.segments.segmentations))]
    keys += [ACTION_KEY, SUPPORT_KEY]
    keys += [code_key(p.name) for p in plan.coded]
    return keys


@dataclass(frozen=True, slots=True)
class Stats:
    """Sufficient statistics of some rows: per-cell sums and bootstrap replicate totals."""

    cells: pl.DataFrame
    replicates: Replicates | None
    rows: int

    @staticmethod
    def empty() -> Stats:
        """The identity of `merge`."""
        return Stats(cells=pl.DataFrame(), replicates=None, rows=0)

    def merge(self, other: Stats) -> Stats:
        """Statistics of the union of both row sets."""
        if self.cells.is_empty():
            return other
        if other.cells.is_empty():
            return self
        keys = [c for c in self.cells.columns if _is_key(c)]
        aggs = [
            (pl.col(c).max() if c.startswith("max|") else pl.col(c).sum())
            for c in self.cells.columns
            if not _is_key(c)
        ]
        cells = pl.concat([self.cells, other.cells]).group_by(keys).agg(aggs).sort(keys)
        replicates = _merge_optional(self.replicates, other.replicates)
        return Stats(cells=cells.select(self.cells.columns), replicates=replicates, rows=self.rows + other.rows)


def _is_key(column: str) -> bool:
    return column in (ACTION_KEY, SUPPORT_KEY) or column.startswith(("seg|", "code|"))


def _merge_optional(a: Replicates | None, b: Replicates | None) -> Replicates | None:
    if a is None:
        return b
    if b is None:
        return a
    return a.merge(b)


def action_index(batch: pl.DataFrame, actions: tuple[str, ...]) -> np.ndarray:
    """The logged action as an index into the action set."""
    mapping = {a: i for i, a in enumerate(actions)}
    return batch[ACTION].cast(pl.String).replace_strict(mapping, return_dtype=pl.Int8).to_numpy()


def bases(batch: pl.DataFrame, plan: Plan, action: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row basis weights (see `simulator.moments`)."""
    inv_p = 1.0 / batch[PROPENSITY].cast(pl.Float64).to_numpy()
    allow = action == plan.actions.index(ALLOW)
    block = plan.actions.index(BLOCK)
    out = {ONE: np.ones_like(inv_p), INV_P: inv_p}
    if plan.logging_probs:
        out[LOGGED_BLOCK] = allow * batch[logging_prob_column(BLOCK)].cast(pl.Float64).to_numpy() * inv_p
    for planned in plan.per_row:
        probs = checked_probabilities(planned.name, planned.policy.probabilities(batch), len(plan.actions), batch.height)
        out[row_basis(planned.name)] = probs[np.arange(batch.height), action] * inv_p
        out[row_block_basis(planned.name)] = allow * probs[:, block] * inv_p
    return out


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


def support_pattern(batch: pl.DataFrame, plan: Plan) -> np.ndarray:
    """Bit a is set when the logging policy never takes action a for the row (exact support)."""
    pattern = np.zeros(batch.height, dtype=np.int64)
    if plan.logging_probs:
        for index, action in enumerate(plan.actions):
            zero = batch[logging_prob_column(action)].cast(pl.Float64).to_numpy() <= 0.0
            pattern |= zero.astype(np.int64) << index
    return pattern


def policy_codes(batch: pl.DataFrame, plan: Plan) -> dict[str, np.ndarray]:
    """Each coded policy's per-row code; its table must be the one planned."""
    codes = {}
    for planned in plan.coded:
        coded = planned.policy.coded(batch)
        if coded is None or not np.array_equal(coded.table, planned.table):
            raise PolicysimError(f"policy {planned.name!r} changed its code table between batches")
        codes[planned.name] = coded.codes
    return codes


def _group(batch: pl.DataFrame, plan: Plan, action: np.ndarray, codes: dict[str, np.ndarray], support: np.ndarray):
    segs = segment_codes(batch, plan.segments)
    finest = group_rows([(s.codes, len(s.labels)) for s in segs], batch.height)
    components = [(finest.ids, finest.size), (action, len(plan.actions)), (support, 1 << len(plan.actions))]
    components += [(codes[p.name], len(p.table)) for p in plan.coded]
    grouping = group_rows(components, batch.height)
    keys: dict[str, pl.Series] = {}
    for index, seg in enumerate(segs):
        labels = np.asarray(seg.labels, dtype=object)[seg.codes[grouping.first]]
        keys[segment_key(index)] = pl.Series(segment_key(index), labels, dtype=pl.String)
    keys[ACTION_KEY] = pl.Series(ACTION_KEY, action[grouping.first], dtype=pl.Int8)
    keys[SUPPORT_KEY] = pl.Series(SUPPORT_KEY, support[grouping.first], dtype=pl.Int16)
    for name, code in codes.items():
        keys[code_key(name)] = pl.Series(code_key(name), code[grouping.first], dtype=pl.Int32)
    return grouping, keys, finest, segs


def _sums(grouping: Grouping, values: dict[str, np.ndarray], basis: dict[str, np.ndarray], needs: Needs):
    out: dict[str, np.ndarray] = {ROWS: group_sum(grouping, basis[ONE])}
    for b, v in needs.linear:
        out[linear_column(b, v)] = group_sum(grouping, basis[b] * values[v])
    pairs: dict[tuple[str, str], np.ndarray] = {}
    for a, b, prod in needs.quadratic:
        weight = pairs.setdefault((a, b), basis[a] * basis[b])
        left, right = prod.split("*")
        out[quadratic_column(a, b, prod)] = group_sum(grouping, weight * values[left] * values[right])
    if needs.design:
        unexplored = 1.0 - 1.0 / basis[INV_P]  # 1 − propensity
        for a, b, prod in needs.design:
            left, right = prod.split("*")
            weight = pairs.setdefault((a, b), basis[a] * basis[b]) * unexplored
            out[design_column(a, b, prod)] = group_sum(grouping, weight * values[left] * values[right])
    for b in basis:
        out[max_column(b)] = group_max(grouping, basis[b])
    return out


def _masses(grouping: Grouping, batch: pl.DataFrame, plan: Plan, support: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row policies' probability mass per action, and where it lacks support."""
    out: dict[str, np.ndarray] = {}
    for planned in plan.per_row:
        probs = planned.policy.probabilities(batch)
        for index, action in enumerate(plan.actions):
            out[mass_column(planned.name, action, False)] = group_sum(grouping, probs[:, index])
            unsupported = probs[:, index] * ((support >> index) & 1)
            out[mass_column(planned.name, action, True)] = group_sum(grouping, unsupported)
    return out


def _direct(
    grouping: Grouping, batch: pl.DataFrame, plan: Plan, needs: Needs, action: np.ndarray, values: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """DR: add each row's prediction at its logged action to `values`; return per-cell prediction sums."""
    model = plan.direct
    if model is None:
        return {}
    bins = row_bins(batch, model)
    allow, block = plan.actions.index(ALLOW), plan.actions.index(BLOCK)
    per_row = {p.name: p.policy.probabilities(batch) for p in plan.per_row}
    out: dict[str, np.ndarray] = {}
    for value in needs.direct:
        predicted = model.table[bins, :, VALUES.index(value)]  # (rows, actions)
        values[HAT + value] = predicted[np.arange(batch.height), action]
        for index, name in enumerate(plan.actions):
            out[direct_column(name, value)] = group_sum(grouping, predicted[:, index])
        for policy, probs in per_row.items():
            out[row_direct_column(policy, Weighting.TARGET, value)] = group_sum(grouping, (probs * predicted).sum(axis=1))
            out[row_direct_column(policy, Weighting.BLOCKED, value)] = group_sum(grouping, probs[:, block] * predicted[:, allow])
    return out


def shard_stats(batch: pl.DataFrame, plan: Plan, needs: Needs) -> Stats:
    """Statistics of one batch of rows (canonical columns, as validated)."""
    if batch.height == 0:
        return Stats.empty()
    matrix = batch.select(value_exprs(plan.value_model, plan.cutoff)).to_numpy()
    values = {name: np.ascontiguousarray(matrix[:, i]) for i, name in enumerate(VALUES)}
    action = action_index(batch, plan.actions)
    basis = bases(batch, plan, action)
    codes = policy_codes(batch, plan)
    support = support_pattern(batch, plan)
    grouping, keys, finest, segs = _group(batch, plan, action, codes, support)
    direct = _direct(grouping, batch, plan, needs, action, values)
    sums = _sums(grouping, values, basis, needs) | _masses(grouping, batch, plan, support) | direct
    cells = pl.DataFrame(list(keys.values()) + [pl.Series(k, v) for k, v in sums.items()])
    replicates = None
    if plan.bootstrap > 0:
        cell_keys = Cells(action=action[grouping.first], codes={k: v[grouping.first] for k, v in codes.items()})
        replicates = replicate_sums(batch, plan, grouping, cell_keys, basis, values, finest, segs)
    return Stats(cells=cells.sort(list(keys)), replicates=replicates, rows=batch.height)
