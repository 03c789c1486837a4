"""The policy protocol (SPEC §4) and the small helpers every kind shares.

A policy maps a batch of rows to `target_probs`, an `(n, n_actions)` float64
array whose rows sum to 1, columns in the order of the configured action set.
Most policies take one of finitely many distributions; they also describe
themselves as `Coded` (a small table of distributions and one code per row),
so the engine can group rows into cells instead of weighting them one by one
(SPEC §12).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl

from simulator.errors import PolicysimError, UnknownName

Actions = tuple[str, ...]
"""The configured action set in order, by default ("allow", "challenge", "block")."""


@dataclass(frozen=True, slots=True, eq=False)
class Coded:
    """A policy whose distribution takes one of finitely many values.

    Row i's action probabilities are `table[codes[i]]`: `codes` is `(n,)` int32 in
    `[0, len(table))`, `table` is `(n_codes, n_actions)` float64 with rows summing
    to 1. Two rows with the same code get the same distribution, which is all the
    engine needs to aggregate by cell. The table is a property of the policy, not
    of the batch: the same for every batch, including an empty one (the engine
    reads it once, from an empty batch). `eq=False`: arrays have no truth value.
    """

    codes: np.ndarray
    table: np.ndarray

    def probabilities(self) -> np.ndarray:
        """The `(n, n_actions)` array this coding stands for."""
        return self.table[self.codes]


class Policy(Protocol):
    """What the engine needs from a policy; every kind and `python` object provides it.

    Attributes are read-only: `columns` are the canonical column names the policy
    reads (loaders read only these), `deterministic` says every row puts 1 on one
    action (declared on the kind, never inferred), `logging` is True only for the
    `logged` kind, whose weight π(a_logged)/propensity is exactly 1.
    """

    @property
    def columns(self) -> frozenset[str]: ...

    @property
    def deterministic(self) -> bool: ...

    @property
    def logging(self) -> bool: ...

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        """`target_probs`: `(n, n_actions)` float64, rows sum to 1."""
        ...

    def coded(self, batch: pl.DataFrame) -> Coded | None:
        """The same distribution as codes and a batch-independent table, or None when not finitely coded.

        Whenever it is not None, `coded.table[coded.codes]` equals `probabilities(batch)`.
        """
        ...


def one_hot(chosen: np.ndarray, n_actions: int) -> Coded:
    """A deterministic coding: code = index of the chosen action, table = identity."""
    return Coded(codes=chosen.astype(np.int32, copy=False), table=np.eye(n_actions, dtype=np.float64))


def score_values(batch: pl.DataFrame, score: str, *, where: str) -> np.ndarray:
    """The score column as float64, refusing null and NaN.

    A NaN or null compares False with every threshold and would silently mean
    "allow"; SPEC §2 says bad input never produces numbers silently.
    """
    column = column_values(batch, score, where=where)
    if not column.dtype.is_numeric():
        raise PolicysimError(f"{where}: score column {score!r} must be numeric, got {column.dtype}")
    values = column.cast(pl.Float64)
    bad = int(values.is_null().sum() + values.is_nan().sum())
    if bad:
        raise PolicysimError(f"{where}: score column {score!r} has {bad} null or NaN rows; a policy cannot decide without it")
    return values.to_numpy()


def column_values(batch: pl.DataFrame, name: str, *, where: str) -> pl.Series:
    """Column `name` of the batch, or a PolicysimError naming the policy and the columns present."""
    if name not in batch.columns:
        raise PolicysimError(
            f"{where}: the batch has no column {name!r}; columns: {', '.join(batch.columns) or '(none)'}"
        )
    return batch.get_column(name)


def check_probabilities(probs: object, *, n_rows: int, n_actions: int, deterministic: bool, who: str) -> np.ndarray:
    """`probs` as float64 if it is a valid `(n_rows, n_actions)` distribution, else a PolicysimError.

    Used on output we did not compute ourselves (`python` objects), so a broken
    policy fails loudly instead of producing weights.
    """
    array = np.asarray(probs, dtype=np.float64)
    if array.shape != (n_rows, n_actions):
        raise PolicysimError(f"{who}: returned shape {array.shape}, expected ({n_rows}, {n_actions})")
    problems = [
        (~np.isfinite(array).all(axis=1), "have non-finite values"),
        ((array < 0).any(axis=1), "have negative values"),
        (np.abs(array.sum(axis=1) - 1.0) > 1e-9, "do not sum to 1 (tolerance 1e-9)"),
    ]
    if deterministic:
        not_one_hot = array.max(axis=1, initial=0.0) != 1.0
        problems.append((not_one_hot, "are not one-hot, but the policy is declared deterministic"))
    for bad, what in problems:
        if bad.any():
            row = int(np.argmax(bad))
            raise PolicysimError(f"{who}: {int(bad.sum())} rows {what}, e.g. row {row}: {array[row].tolist()}")
    return array


def require_actions(names: Iterable[str], actions: Actions, *, where: str) -> None:
    """Raise UnknownName (with the path) for the first name not in the configured action set."""
    for name in names:
        if name not in actions:
            raise located(UnknownName("action", name, actions), where)


def require_columns(names: Iterable[str], available: frozenset[str] | None, *, where: str, hint: str = "") -> None:
    """Raise UnknownName (with the path) for the first column not in the data; no check when unknown."""
    if available is None:
        return
    for name in sorted(set(names)):
        if name not in available:
            raise located(UnknownName("column", name, available), where, hint=hint)


def located(error: UnknownName, where: str, *, hint: str = "") -> UnknownName:
    """`error` with its message prefixed by the TOML path (STYLE §5), keeping its type."""
    error.args = (f"{where}: {error}{hint}",)
    return error
