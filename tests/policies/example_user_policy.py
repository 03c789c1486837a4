"""Example custom policies for `kind = "python"` (SPEC §4), used by the tests.

A custom policy is any class taking `actions` (the configured action set, in
order) and its own keyword parameters, with a `columns` attribute and a
`probabilities(batch)` method; `deterministic` and `coded` are optional.

    [[policies]]
    name = "challenge_big_tickets"
    kind = "python"
    object = "tests.policies.example_user_policy:ChallengeHighAmounts"
    params = { above = 500.0 }
"""

from __future__ import annotations

import numpy as np
import polars as pl

from policies import Coded


class ChallengeHighAmounts:
    """Challenge every payment of at least `above`, allow the rest.

    Deterministic and finitely coded: code 0 = allow, 1 = challenge, so the
    engine can aggregate its rows by cell.
    """

    columns = frozenset({"amount"})
    deterministic = True

    def __init__(self, *, actions: tuple[str, ...], above: float = 500.0) -> None:
        if "challenge" not in actions or "allow" not in actions:
            raise ValueError(f"needs actions 'allow' and 'challenge', got {actions}")
        self.above = above
        self.table = np.eye(len(actions))[[actions.index("allow"), actions.index("challenge")]]

    def coded(self, batch: pl.DataFrame) -> Coded:
        """Code 1 where amount >= above, else 0."""
        codes = (batch.get_column("amount").to_numpy() >= self.above).astype(np.int32)
        return Coded(codes=codes, table=self.table)

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        """One-hot rows: challenge at or above the amount, allow below."""
        return self.coded(batch).probabilities()


class BlockShareByAuthScore:
    """A stochastic policy: block with probability 1 − auth_score, else allow.

    Not finitely coded (no `coded` method): the engine weights its rows one by one.
    """

    columns = frozenset({"auth_score"})

    def __init__(self, *, actions: tuple[str, ...]) -> None:
        self.allow = actions.index("allow")
        self.block = actions.index("block")
        self.n_actions = len(actions)

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        """Probability 1 − auth_score on block, auth_score on allow."""
        auth = batch.get_column("auth_score").to_numpy()
        probs = np.zeros((len(auth), self.n_actions))
        probs[:, self.allow] = auth
        probs[:, self.block] = 1.0 - auth
        return probs
