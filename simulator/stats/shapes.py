"""How a value without a table moves with the amount and the outcome, fitted on the rows.

The rare-event floor (`simulator.estimate.rare`) needs, per action, how a value
changes when a payment is approved and when it turns out to be fraud, as
c0 + c1·amount. A built-in value has that exactly (`simulator.stats.units.value_table`);
a value written as SQL may read any column (cost by card funding, a merchant's
own margin), so it has none, and without a shape its intervals fell back to the
explored rows' own spread, which understates heavy-tailed money (docs/estimation.md).

Here each shard adds, per logged action and outcome pattern, the sums a least-squares
fit of the value on the amount needs (Σ1, ΣA, ΣA², Σv, Σv·A); the driver fits the
average shape over all rows. It is exact for a value that is affine in the amount
within each action and pattern, and the average one otherwise (what the value does
across other columns stays in the rows' own variance, which the floor never lowers).
"""

from __future__ import annotations

import numpy as np

from simulator.stats.units import PATTERNS, RowValues, Units

_COMMON = 3  # Σ1, ΣA, ΣA² per (action, pattern); then Σv, Σv·A per row value


def shape_sums(units: Units, rows: RowValues, amount: np.ndarray, actions: int) -> np.ndarray:
    """(actions · PATTERNS, 3 + 2 · row values) sums per logged action and outcome pattern, for `fitted_shapes`."""
    unit_key = units.action.astype(np.int64) * PATTERNS + units.pattern
    size = actions * PATTERNS
    row_key = unit_key[units.grouping.ids]
    columns = [np.bincount(unit_key, weights=w, minlength=size) for w in (units.n, units.s1, units.s2)]
    for j in range(len(rows.names)):
        value = rows.values[:, j]
        columns += [np.bincount(row_key, weights=value, minlength=size),
                    np.bincount(row_key, weights=value * amount, minlength=size)]
    return np.column_stack(columns)


def fitted_shapes(sums: np.ndarray, names: tuple[str, ...], actions: int) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """Per row value, its (actions, PATTERNS, 2) c0 and c1 fitted on the rows, flattened (NaN: no rows there).

    One amount among a pattern's rows (or a single row) fits no slope: the mean value, slope 0.
    """
    n, s1, s2 = sums[:, 0], sums[:, 1], sums[:, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_amount = s1 / n
        spread = s2 / n - mean_amount**2
    has_slope = (n >= 2) & (spread > 1e-12 * np.maximum(mean_amount**2, 1.0))
    out = []
    for j, name in enumerate(names):
        v, va = sums[:, _COMMON + 2 * j], sums[:, _COMMON + 2 * j + 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = v / n
            slope = np.where(has_slope, (va / n - mean * mean_amount) / np.where(has_slope, spread, 1.0), 0.0)
        table = np.stack([np.where(n > 0, mean - slope * mean_amount, np.nan), np.where(n > 0, slope, np.nan)], axis=-1)
        out.append((name, tuple(table.reshape(actions, PATTERNS, 2).ravel().tolist())))
    return tuple(out)
