"""Cross-fitting of the DR outcome model: folds, out-of-fold tables and shrinkage, by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from simulator.model.value import ValueModel, ValueSet
from simulator.model.crossfit import FOLD_SEED, FOLDS, SHRINKAGE, crossfit_table, out_of_fold, row_folds, shrunk_means
from simulator.model.direct import fit_direct_method, model_keys
from simulator.model.value import VALUES
from simulator.stats.bootstrap import row_keys

ACTIONS = ("allow", "challenge", "block")


def test_folds_hash_the_transaction_id_like_the_bootstrap_row_keys() -> None:
    ids = pl.Series("transaction_id", [f"tx_{i:06d}" for i in range(20_000)])
    folds = row_folds(pl.DataFrame([ids]))
    np.testing.assert_array_equal(folds, (row_keys(ids, FOLD_SEED) % np.uint64(FOLDS)).astype(np.int64))
    # a row's fold is its own: any batch, any order
    np.testing.assert_array_equal(row_folds(pl.DataFrame([ids[7:19]])), folds[7:19])
    np.testing.assert_array_equal(row_folds(pl.DataFrame([ids.reverse()])), folds[::-1])
    # about a fifth each (binomial sd of a share ≈ 0.003)
    shares = np.bincount(folds, minlength=FOLDS) / len(folds)
    assert np.all(np.abs(shares - 1 / FOLDS) < 0.015), shares
    # the four ids of the hand-computed cases below and in tests/simulator/estimate/test_estimators_known.py
    assert row_folds(pl.DataFrame({"transaction_id": ["t1", "t2", "t3", "t4"]})).tolist() == [2, 3, 2, 3]


def test_out_of_fold_tables_are_the_other_folds_sums() -> None:
    # 3 folds, 1 bin, 2 actions, 1 value. Rows per (fold, action) and their value sums:
    #   fold 0: a0 2 rows Σ 2, a1 none;  fold 1: a0 1 row Σ 0, a1 3 rows Σ 3;  fold 2: a0 none, a1 1 row Σ 0.
    counts = np.array([[[2.0, 0.0]], [[1.0, 3.0]], [[0.0, 1.0]]])
    sums = np.array([[[[2.0], [0.0]]], [[[0.0], [3.0]]], [[[0.0], [0.0]]]])
    other_counts, other_sums = out_of_fold(counts, sums)
    # fold 0 sees folds 1 + 2: a0 1 row Σ 0, a1 4 rows Σ 3
    np.testing.assert_array_equal(other_counts[:, 0], [[1, 4], [2, 1], [3, 3]])
    np.testing.assert_array_equal(other_sums[:, 0, :, 0], [[0, 3], [2, 0], [2, 3]])
    # with one bin the pooled mean is the cell's own, so shrinkage leaves it: fold 0 predicts 0 and 3/4
    table = crossfit_table(counts, sums)
    np.testing.assert_allclose(table[:, 0, :, 0], [[0.0, 0.75], [1.0, 0.0], [2 / 3, 1.0]], rtol=1e-12)


def test_sparse_cells_shrink_towards_the_actions_pooled_mean() -> None:
    # 2 bins, 2 actions (one never taken), 1 value; k = 4 pseudo-rows.
    # a0: bin 0 has 1 row with y = 1, bin 1 has 3 rows with Σ y = 0: pooled 1/4.
    counts = np.array([[1.0, 0.0], [3.0, 0.0]])
    sums = np.array([[[1.0], [0.0]], [[0.0], [0.0]]])
    means = shrunk_means(counts, sums, shrinkage=4.0)
    # bin 0: (1 + 4 · 1/4) / (1 + 4) = 0.4; bin 1: (0 + 1) / (3 + 4) = 1/7 (raw means 1 and 0)
    np.testing.assert_allclose(means[:, 0, 0], [0.4, 1 / 7], rtol=1e-12)
    # an action with no rows predicts the mean over every action, 1/4, in every bin
    np.testing.assert_allclose(means[:, 1, 0], [0.25, 0.25], rtol=1e-12)
    assert SHRINKAGE == 20.0  # the documented constant (docs/estimation.md)


def test_fit_predicts_each_row_from_the_other_folds() -> None:
    # t1, t3 are in fold 2 and t2, t4 in fold 3 (see the first test); one score, two bins split at 0.5.
    frame = pl.DataFrame({
        "transaction_id": ["t1", "t2", "t3", "t4"],
        "created_at": [datetime(2026, 1, 1, tzinfo=UTC)] * 4,
        "amount": [10.0, 20.0, 30.0, 40.0],
        "action": ["allow", "allow", "allow", "challenge"],
        "authorized": [True, False, True, True],
        "fraud_dispute": [False, False, False, False],
        "dispute_lost": [None, None, None, None],
        "score": [0.1, 0.2, 0.8, 0.9],
    })
    model = fit_direct_method(frame.lazy(), ("score",), (2,), ACTIONS, ValueSet(ValueModel()), None)
    assert model.table.shape == (FOLDS, 2, len(ACTIONS), len(VALUES))
    keys = model_keys(frame, model)
    np.testing.assert_array_equal(keys, [2 * 2 + 0, 3 * 2 + 0, 2 * 2 + 1, 3 * 2 + 1])  # fold · bins + bin
    auth = model.predictions(keys, "authorized")  # (rows, actions)
    k = SHRINKAGE
    # fold 2 (t1, t3) is fitted on t2 (allow, bin 0, not authorized) and t4 (challenge, bin 1, authorized):
    #   allow pooled 0: bin 0 (0 + 0) / (1 + k) = 0; challenge pooled 1: 1 in both bins;
    #   block never taken: the mean over every action, 1/2.
    np.testing.assert_allclose(auth[0], [0.0, 1.0, 0.5], rtol=1e-12)
    np.testing.assert_allclose(auth[2], [0.0, 1.0, 0.5], rtol=1e-12)
    # fold 3 (t2, t4) is fitted on t1 (allow, bin 0, authorized) and t3 (allow, bin 1, authorized): allow 1,
    #   challenge and block never taken: the mean over every action, 1.
    np.testing.assert_allclose(auth[1], [1.0, 1.0, 1.0], rtol=1e-12)
    # amount: fold 3's allow cells hold one row each (10 in bin 0, 30 in bin 1), pooled mean 20:
    #   bin 0 (10 + 20k) / (1 + k), bin 1 (30 + 20k) / (1 + k)
    amount = model.predictions(keys, "amount")
    np.testing.assert_allclose(amount[[1, 3], 0], [(10 + 20 * k) / (1 + k), (30 + 20 * k) / (1 + k)], rtol=1e-12)
    # folds 0, 1 and 4 hold no rows, so their tables are fitted on all four: allow in bin 0 holds t1 (authorized)
    #   and t2 (not), pooled over t1, t2, t3 = 2/3: (1 + 2k/3) / (2 + k)
    assert model.predictions(np.array([0]), "authorized")[0, 0] == pytest.approx((1 + 2 * k / 3) / (2 + k), rel=1e-12)
