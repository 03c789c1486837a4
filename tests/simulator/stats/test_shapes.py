"""The shape of a value without a table, fitted on the rows (`simulator.stats.shapes`), against hand-made sums."""

from __future__ import annotations

import numpy as np

from simulator.stats.shapes import fitted_shapes
from simulator.stats.units import PATTERNS


def sums_of(rows: list[tuple[int, int, float, float]], actions: int) -> np.ndarray:
    """The shard sums of `shape_sums` for rows (action, pattern, amount, value), one row value."""
    out = np.zeros((actions * PATTERNS, 5))
    for action, pattern, amount, value in rows:
        out[action * PATTERNS + pattern] += (1.0, amount, amount**2, value, value * amount)
    return out


def test_a_value_affine_in_the_amount_is_recovered_exactly_per_action_and_pattern() -> None:
    rows = [(0, 9, a, 0.3 + 0.029 * a) for a in (5.0, 20.0, 80.0, 400.0)]  # approved under allow
    rows += [(0, 8, a, 0.3) for a in (10.0, 700.0)]  # declined under allow: the fixed fee only
    rows += [(1, 15, 50.0, 15.0 + 50.0)]  # one fraud lost under challenge: a single amount fits no slope
    table = np.asarray(dict(fitted_shapes(sums_of(rows, 3), ("cost",), 3))["cost"]).reshape(3, PATTERNS, 2)
    np.testing.assert_allclose(table[0, 9], [0.3, 0.029], rtol=1e-9)
    np.testing.assert_allclose(table[0, 8], [0.3, 0.0], atol=1e-12)
    np.testing.assert_allclose(table[1, 15], [65.0, 0.0])  # the mean value, slope 0
    assert np.isnan(table[2]).all() and np.isnan(table[0, 0]).all()  # no rows: nothing fitted


def test_several_values_share_the_amount_sums() -> None:
    amounts = np.array([1.0, 2.0, 4.0, 8.0])
    sums = np.zeros((2 * PATTERNS, 7))
    sums[9] = (4, amounts.sum(), (amounts**2).sum(), (2 * amounts).sum(), (2 * amounts**2).sum(),
               (1 - amounts).sum(), ((1 - amounts) * amounts).sum())
    fitted = dict(fitted_shapes(sums, ("double", "one_minus"), 2))
    np.testing.assert_allclose(np.asarray(fitted["double"]).reshape(2, PATTERNS, 2)[0, 9], [0.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(np.asarray(fitted["one_minus"]).reshape(2, PATTERNS, 2)[0, 9], [1.0, -1.0], atol=1e-12)
