"""`epsilon`: any policy mixed with uniform exploration (SPEC §4).

    π(a | x) = (1 − ε) · base(a | x) + ε / n_actions

Used to plan logging: a candidate with ε > 0 explores every action
everywhere, so a future policy evaluated on its logs has support. With 3
actions and ε = 0.3, a deterministic base's chosen action gets 0.7 + 0.1 = 0.8
and each other action 0.1. Never deterministic (declared, even for ε = 0).
Coded iff the base is: same codes, each table row mixed.

Example::

    [[policies]]
    name = "explore_10pct"
    kind = "epsilon"
    epsilon = 0.1
    base = { kind = "threshold", score = "fraud_score", challenge_above = 0.5, block_above = 0.8 }
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import polars as pl
from pydantic import Field

from policies.base import Coded, Policy
from policies.registry import PolicyContext, PolicyParams, build_policy, register_policy


class EpsilonParams(PolicyParams):
    """Parameters of `epsilon`: the base policy table and the exploration share ε."""

    base: dict[str, Any]
    epsilon: float = Field(ge=0, le=1)


@dataclass(frozen=True, slots=True)
class EpsilonPolicy:
    """`base` mixed with the uniform distribution, with weight `epsilon` on the uniform."""

    base: Policy
    epsilon: float
    deterministic: ClassVar[bool] = False
    logging: ClassVar[bool] = False

    @property
    def columns(self) -> frozenset[str]:
        """The base's columns; exploration reads nothing."""
        return self.base.columns

    def mix(self, probs: np.ndarray) -> np.ndarray:
        """(1 − ε) · probs + ε / n_actions, row by row."""
        return (1.0 - self.epsilon) * probs + self.epsilon / probs.shape[1]

    def coded(self, batch: pl.DataFrame) -> Coded | None:
        """The base's codes with its table mixed; None if the base is not coded."""
        base = self.base.coded(batch)
        if base is None:
            return None
        return Coded(codes=base.codes, table=self.mix(base.table))

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        """The base's distribution mixed with uniform exploration."""
        return self.mix(self.base.probabilities(batch))


@register_policy("epsilon", params=EpsilonParams)
def epsilon_policy(params: EpsilonParams, context: PolicyContext, *, where: str) -> EpsilonPolicy:
    """Build the base through the registry, then wrap it."""
    return EpsilonPolicy(base=build_policy(params.base, context, where=f"{where}.base"), epsilon=params.epsilon)
