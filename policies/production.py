"""`production`: the logging policy without its exploration (SPEC §4).

A logging policy that explores mixes what the business runs with a small share
of random actions. Comparing a candidate with `logged` therefore mostly
measures switching the exploration off; the question a launch asks is the
candidate against what production does. On each row this policy takes the
action the logging policy most likely takes, read from the
`logging_prob_<action>` columns (ties go to the action listed first in the
action set). Deterministic and finitely coded: code = the chosen action.

It is the default baseline whenever the data identifies it (the
`logging_prob_<action>` columns are present); as a named policy it can also be
a candidate or a sweep's baseline.

Example::

    [[policies]]
    name = "business_as_usual"
    kind = "production"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl

from policies.base import Actions, Coded, one_hot
from policies.logged import logging_columns
from policies.registry import PolicyContext, PolicyParams, register_policy
from simulator.errors import InvalidConfig
from simulator.schema import PRODUCTION, logging_prob_column


class ProductionParams(PolicyParams):
    """`production` has no parameters."""


@dataclass(frozen=True, slots=True)
class ProductionPolicy:
    """The most likely action of the logging policy on each row."""

    actions: Actions
    where: str
    deterministic: ClassVar[bool] = True
    logging: ClassVar[bool] = False

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(logging_prob_column(action) for action in self.actions)

    def coded(self, batch: pl.DataFrame) -> Coded:
        """Code = the index of the logging policy's most likely action (first on ties, as `np.argmax`).

        Column by column, a running maximum: an argmax along the rows of an `(n, n_actions)` copy
        cost three times more.
        """
        columns = logging_columns(batch, self.actions, self.where, "production")
        chosen = np.zeros(batch.height, dtype=np.int32)
        best = columns[0]
        for index, column in enumerate(columns[1:], start=1):
            chosen = np.where(column > best, np.int32(index), chosen)  # strictly: a tie keeps the earlier action
            best = np.maximum(best, column)  # the columns are finite (checked)
        return one_hot(chosen, len(self.actions))

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        return self.coded(batch).probabilities()


@register_policy(PRODUCTION, params=ProductionParams)
def production_policy(params: ProductionParams, context: PolicyContext, *, where: str) -> ProductionPolicy:
    """The logging policy's most likely action; the data must carry its full distribution."""
    names = [logging_prob_column(action) for action in context.actions]
    if context.columns is not None and any(name not in context.columns for name in names):
        raise InvalidConfig(
            f"{where}: production is the logging policy without its exploration, read from the columns "
            f"{', '.join(names)}, which the data lacks; compare with 'logged' instead, or add the logging "
            "policy's probabilities to the data"
        )
    return ProductionPolicy(actions=context.actions, where=where)
