"""The direct-method outcome model of the doubly robust estimator, cross-fitted.

m̂_f(b, a, v): the mean of value column v among rows the logging policy gave
action a whose configured score columns fall in bin b (quantile bins of each
score, crossed), fitted on the rows *outside* fold f and shrunk towards the
action's pooled mean (`simulator.model.crossfit`). A row of fold f is predicted
by m̂_f, so its prediction never uses its own outcome. The model is fitted once
on the driver from one lazy aggregation over the whole dataset (per fold, bin
and action), so every shard uses the same tables and results do not depend on
sharding.

Assumption (stated in docs/estimation.md): within a bin, the outcome of an
action does not depend on how the logging policy chose it. DR stays unbiased
when the model is wrong (the IPW residual corrects it) and has lower variance
when the scores predict the outcomes well.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from simulator.model.crossfit import FOLD, FOLDS, crossfit_table, fold_expr, row_folds
from simulator.model.value import ValueSet
from simulator.schema import ACTION

BIN = "_dm_bin"


@dataclass(frozen=True, slots=True, eq=False)
class DirectMethod:
    """A fitted outcome model: bins of each score and, per fold, the mean value per (bin, action)."""

    scores: tuple[str, ...]
    edges: tuple[tuple[float, ...], ...]  # interior quantile edges of each score
    table: np.ndarray  # (folds, bins, actions, len(values)): fold f's rows are predicted by table[f]
    values: tuple[str, ...]  # the value columns of the table's last axis

    @property
    def bins(self) -> int:
        return int(np.prod([len(e) + 1 for e in self.edges]))

    @property
    def folds(self) -> int:
        return self.table.shape[0]

    @property
    def keys(self) -> int:
        """How many (fold, bin) keys `model_keys` can return."""
        return self.folds * self.bins

    def predictions(self, keys: np.ndarray, value: str) -> np.ndarray:
        """`(len(keys), actions)`: m̂ of `value` under every action for rows with these (fold, bin) keys."""
        flat = self.table.reshape(self.keys, *self.table.shape[2:])
        return flat[keys, :, self.values.index(value)]


def bin_expr(scores: tuple[str, ...], edges: tuple[tuple[float, ...], ...]) -> pl.Expr:
    """Each row's bin: the cross of `score >= edge` counts (exact at edges, no float arithmetic)."""
    code = pl.lit(0, dtype=pl.Int64)
    for score, cut in zip(scores, edges, strict=True):
        index = pl.sum_horizontal([(pl.col(score) >= e).cast(pl.Int64) for e in cut]) if cut else pl.lit(0)
        code = code * (len(cut) + 1) + index
    return code.alias(BIN)


def _edges(data: pl.LazyFrame, scores: tuple[str, ...], bins: int) -> tuple[tuple[float, ...], ...]:
    quantiles = np.linspace(0, 1, bins + 1)[1:-1]
    exprs = [pl.col(s).quantile(float(q), interpolation="linear").alias(f"{s}|{i}") for s in scores for i, q in enumerate(quantiles)]
    row = data.select(exprs).collect().row(0, named=True)
    return tuple(tuple(sorted({float(row[f"{s}|{i}"]) for i in range(len(quantiles))})) for s in scores)


def fit_direct_method(
    data: pl.LazyFrame, scores: tuple[str, ...], bins: tuple[int, ...], actions: tuple[str, ...],
    values: ValueSet, cutoff: datetime | None, develop: pl.Expr | None = None,
) -> DirectMethod:
    """Fit the cross-fitted m̂ with one lazy pass per (fold, bin, action) (plus one for the quantile edges).

    `develop`: the fraud labels' weights when they are developed (see `ValueSet.exprs`).
    """
    edges = tuple(e for s, b in zip(scores, bins, strict=True) for e in _edges(data, (s,), b))
    names = values.names
    keyed = data.with_columns(bin_expr(scores, edges), fold_expr(), pl.col(ACTION).cast(pl.String))
    grouped = (
        values.evaluate(keyed, cutoff, develop=develop, keep=(FOLD, BIN, ACTION))
        .group_by(FOLD, BIN, ACTION)
        .agg(pl.len().alias("_n"), *[pl.col(v).sum() for v in names])
        .collect()
    )
    n_bins = int(np.prod([len(e) + 1 for e in edges]))
    sums = np.zeros((FOLDS, n_bins, len(actions), len(names)))
    counts = np.zeros((FOLDS, n_bins, len(actions)))
    action_index = {a: i for i, a in enumerate(actions)}
    f = grouped[FOLD].to_numpy()
    b = grouped[BIN].to_numpy()
    a = np.array([action_index[x] for x in grouped[ACTION].to_list()], dtype=np.int64)
    counts[f, b, a] = grouped["_n"].to_numpy()
    sums[f, b, a] = grouped.select(names).to_numpy()
    return DirectMethod(scores=scores, edges=edges, table=crossfit_table(counts, sums), values=names)


def model_keys(frame: pl.DataFrame, model: DirectMethod) -> np.ndarray:
    """Each row's (fold, bin) key, fold · bins + bin: which table row predicts it (same rules as the fit)."""
    bins = frame.select(bin_expr(model.scores, model.edges)).to_series().to_numpy()
    return row_folds(frame) * model.bins + bins
