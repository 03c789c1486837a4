"""Cross-fitting of the DR outcome model: folds, out-of-fold tables and shrinkage.

The doubly robust estimator is unbiased when each row's prediction m̂(x_i, ·)
does not depend on the row's own logged outcome. A model fitted on the rows it
scores breaks that: with many sparse (bin, action) cells, a row's own outcome
is a large share of its cell's mean, the residual y_i − m̂(x_i, a_i) shrinks
towards 0 and the IPW correction no longer removes the model's error (at
`dr_bins = 100` the rare fraud metrics were off by several standard errors).

So the rows are split into `FOLDS` folds by a hash of their `transaction_id`
(with `FOLD_SEED`, fixed and independent of the bootstrap seed, so a row's fold
does not depend on sharding, row order or the run's seed), and the rows of fold
f are predicted by the model fitted on the other folds. The fit is still one
aggregation per (fold, bin, action): the out-of-fold sums are the all-folds
sums minus the fold's own.

Sparse cells are shrunk towards the action's pooled mean (over all bins, out
of fold; over all actions for an action with no rows there):
m̂ = (Σ y + k · pooled) / (n + k), with k = `SHRINKAGE`. A cell's own
mean gets half the weight at n = k rows and takes over as n grows; an empty
cell predicts the pooled mean. Without it, at `dr_bins = 200` most (bin,
action) cells of the explored actions hold a handful of rows and their means
are noise that only adds variance.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simulator.schema import TRANSACTION_ID

FOLDS = 5
# Seeds the fold hash; fixed for all time so folds never depend on [estimation] seed (the bootstrap's).
FOLD_SEED = 0x5EED_F01D
SHRINKAGE = 20.0  # pseudo-rows of the action's pooled mean in every (bin, action) cell
FOLD = "_dm_fold"


def fold_expr() -> pl.Expr:
    """Each row's fold in [0, FOLDS): its `transaction_id` hashed like the bootstrap's row keys, modulo FOLDS."""
    return (pl.col(TRANSACTION_ID).cast(pl.String).hash(seed=FOLD_SEED) % FOLDS).cast(pl.Int64).alias(FOLD)


def row_folds(frame: pl.DataFrame) -> np.ndarray:
    """`fold_expr` evaluated on a batch, as int64."""
    return frame.select(fold_expr()).to_series().to_numpy()


def out_of_fold(counts: np.ndarray, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts `(folds, bins, actions)` and value sums `(folds, bins, actions, values)` of every fold but each one."""
    return counts.sum(axis=0, keepdims=True) - counts, sums.sum(axis=0, keepdims=True) - sums


def shrunk_means(counts: np.ndarray, sums: np.ndarray, shrinkage: float = SHRINKAGE) -> np.ndarray:
    """(Σ y + k · pooled) / (n + k) per (…, bin, action, value); pooled = the action's mean over all bins.

    `counts` is `(..., bins, actions)`, `sums` `(..., bins, actions, values)`. An action with no
    rows at all (out of fold) is pooled to the mean over every action instead: no information
    about it, and a constant value (`one`) is still predicted exactly.
    """
    action_counts, action_sums = counts.sum(axis=-2), sums.sum(axis=-3)  # (..., actions), (..., actions, values)
    overall = action_sums.sum(axis=-2) / np.maximum(action_counts.sum(axis=-1), 1.0)[..., None]  # (..., values)
    seen = action_counts[..., None] > 0
    pooled = np.where(seen, action_sums / np.maximum(action_counts, 1.0)[..., None], overall[..., None, :])
    return (sums + shrinkage * pooled[..., None, :, :]) / (counts + shrinkage)[..., None]


def crossfit_table(counts: np.ndarray, sums: np.ndarray, shrinkage: float = SHRINKAGE) -> np.ndarray:
    """`(folds, bins, actions, values)`: fold f's predictions, fitted on the other folds' rows."""
    other_counts, other_sums = out_of_fold(counts, sums)
    return shrunk_means(other_counts, other_sums, shrinkage)
