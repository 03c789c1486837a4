"""`logged`: the logging policy itself, the status quo (SPEC §4).

Its weight π(a_logged)/propensity is exactly 1 by definition, which the engine
uses directly (`logging = True`) without asking for probabilities. Its full
distribution is only known where the data carries the optional
`logging_prob_<action>` columns (SPEC §2); `probabilities` reads them and
raises when they are missing, rather than guessing. Not finitely coded.

`columns` is empty: the policy reads no column for its weights, and the
`logging_prob_<action>` columns are optional data the engine loads when
present.

Example::

    [[policies]]
    name = "status_quo"
    kind = "logged"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl

from policies.base import Actions, Coded
from policies.registry import PolicyContext, PolicyParams, register_policy
from simulator.errors import PolicysimError
from simulator.schema import logging_prob_column


class LoggedParams(PolicyParams):
    """`logged` has no parameters."""


@dataclass(frozen=True, slots=True)
class LoggedPolicy:
    """The logging policy, read from the `logging_prob_<action>` columns."""

    actions: Actions
    where: str
    columns: ClassVar[frozenset[str]] = frozenset()
    deterministic: ClassVar[bool] = False
    logging: ClassVar[bool] = True

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        """The logging policy's distribution, `(n, n_actions)`, from the data."""
        return logging_distribution(batch, self.actions, self.where, "the logged policy's full distribution",
                                    why=". Its weights are 1 without them, but support diagnostics and mixtures "
                                        "need the distribution")

    def coded(self, batch: pl.DataFrame) -> Coded | None:
        """None: the logged distribution is data, not one of finitely many values."""
        return None


def logging_distribution(batch: pl.DataFrame, actions: Actions, where: str, what: str, why: str = "") -> np.ndarray:
    """The `logging_prob_<action>` columns as an `(n, n_actions)` array; missing columns or nulls raise.

    `what` names what needs them and `why` ends the message (e.g. what to do without them).
    """
    return np.column_stack(logging_columns(batch, actions, where, what, why))


def logging_columns(batch: pl.DataFrame, actions: Actions, where: str, what: str, why: str = "") -> list[np.ndarray]:
    """The `logging_prob_<action>` columns, one float64 array each, checked as `logging_distribution` checks them.

    Column by column: a row-major `(n, n_actions)` copy is what most callers do not need.
    """
    names = [logging_prob_column(action) for action in actions]
    missing = [name for name in names if name not in batch.columns]
    if missing:
        raise PolicysimError(
            f"{where}: {what} needs the columns {', '.join(names)}; the data lacks {', '.join(missing)}{why}"
        )
    columns = [batch.get_column(name).cast(pl.Float64).to_numpy() for name in names]
    bad = [~np.isfinite(column) for column in columns]
    if any(column_bad.any() for column_bad in bad):
        rows = np.logical_or.reduce(bad)
        named = ", ".join(name for name, column_bad in zip(names, bad, strict=True) if column_bad.any())
        raise PolicysimError(
            f"{where}: {int(rows.sum())} rows with a null or NaN in {named}, e.g. row {int(np.argmax(rows))}"
        )
    return columns


@register_policy("logged", params=LoggedParams)
def logged_policy(params: LoggedParams, context: PolicyContext, *, where: str) -> LoggedPolicy:
    """The logging policy for the configured action set."""
    return LoggedPolicy(actions=context.actions, where=where)
