"""`threshold`: one score, `challenge_above` and/or `block_above` (SPEC §4).

Per row: block if `score >= block_above`, else challenge if
`score >= challenge_above`, else allow. Thresholds are inclusive: a score
exactly on a threshold takes the stricter action. A threshold left out never
fires. Deterministic; coded by the chosen action (table = identity).

Example::

    [[policies]]
    name = "stricter"
    kind = "threshold"
    score = "fraud_score"
    challenge_above = 0.4     # optional, in [0, 1] (or the score's [data.score_range], in its units)
    block_above = 0.7         # optional, likewise, > challenge_above; at least one of the two
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, ClassVar, Self

import numpy as np
import polars as pl
from pydantic import ValidationInfo, ValidatorFunctionWrapHandler, field_validator, model_validator

from policies.base import Actions, Coded, one_hot, require_columns, score_values
from policies.registry import PolicyContext, PolicyParams, register_policy
from simulator.errors import InvalidConfig
from simulator.schema import ALLOW, BLOCK, CHALLENGE, UNIT_RANGE

SCORE_RANGE = "score_range"  # validation context: (low, high, score) of the score being thresholded


def note_score_range(data: Any, info: ValidationInfo) -> Any:
    """Record the range of the table's `score` in the validation context, for `Cutoffs` to check against.

    Runs before the fields are validated (a `before` model validator), so the
    cutoffs, which come before `score` in the table, know its units.
    """
    ranges: Mapping[str, tuple[float, float]] = (info.context or {}).get("score_ranges", {})
    score = data.get("score") if isinstance(data, Mapping) else None
    if info.context is not None and isinstance(score, str) and score in ranges:
        info.context[SCORE_RANGE] = (*ranges[score], score)
    return data


class Cutoffs(PolicyParams):
    """A pair of inclusive thresholds on one score; shared with `segment_threshold`.

    Thresholds are in the score's units: within [0, 1], or within the range
    `[data.score_range]` declares for the score.
    """

    challenge_above: float | None = None
    block_above: float | None = None

    @field_validator("challenge_above", "block_above", mode="wrap")
    @classmethod
    def _in_range(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> float | None:
        number = handler(value)
        if number is None:
            return None
        low, high, score = (info.context or {}).get(SCORE_RANGE, (*UNIT_RANGE, None))
        declared = "" if score is None else f" ({score} is declared on [{low:g}, {high:g}] in [data.score_range])"
        if number > high:
            raise ValueError(f"must be <= {high:g}{declared}, got {value!r}")
        if number < low:
            raise ValueError(f"must be >= {low:g}{declared}, got {value!r}")
        return float(number)

    @field_validator("block_above")
    @classmethod
    def _above_challenge(cls, block_above: float | None, info: ValidationInfo) -> float | None:
        challenge_above = info.data.get("challenge_above")
        if block_above is not None and challenge_above is not None and block_above <= challenge_above:
            raise ValueError(f"must be > challenge_above ({challenge_above:g}), got {block_above:g}")
        return block_above

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        if self.challenge_above is None and self.block_above is None:
            raise ValueError("needs challenge_above and/or block_above")
        return self


class ThresholdParams(Cutoffs):
    """Parameters of `threshold`: the score column and its cutoffs."""

    score: str

    _score_range = model_validator(mode="before")(note_score_range)


def require_cutoff_actions(cutoffs: Cutoffs, actions: Actions, *, where: str) -> None:
    """Every action the cutoffs can choose must be in the configured action set."""
    needed = [(ALLOW, "")]
    needed += [(CHALLENGE, ".challenge_above")] if cutoffs.challenge_above is not None else []
    needed += [(BLOCK, ".block_above")] if cutoffs.block_above is not None else []
    for action, field in needed:
        if action not in actions:
            raise InvalidConfig(
                f"{where}{field}: needs action {action!r}, which is not in the action set ({', '.join(actions)})"
            )


def choose(
    score: np.ndarray, challenge_above: np.ndarray | float, block_above: np.ndarray | float, actions: Actions
) -> np.ndarray:
    """Index of the chosen action per row; thresholds are per row, +inf where unset.

    An unset threshold is +inf, so its action (which may be absent from the
    action set, index -1) is never chosen: scores are finite.
    """
    allow, challenge, block = (actions.index(a) if a in actions else -1 for a in (ALLOW, CHALLENGE, BLOCK))
    return np.where(score >= block_above, block, np.where(score >= challenge_above, challenge, allow)).astype(np.int32)


def as_cutoff(value: float | None) -> float:
    """A threshold as a number; unset means never (+inf)."""
    return np.inf if value is None else value


@dataclass(frozen=True, slots=True)
class ThresholdPolicy:
    """Block / challenge / allow by one score against two inclusive thresholds."""

    score: str
    challenge_above: float | None
    block_above: float | None
    actions: Actions
    where: str
    deterministic: ClassVar[bool] = True
    logging: ClassVar[bool] = False

    @property
    def columns(self) -> frozenset[str]:
        """Only the score column."""
        return frozenset({self.score})

    def coded(self, batch: pl.DataFrame) -> Coded:
        """Code = index of the chosen action."""
        score = score_values(batch, self.score, where=self.where)
        chosen = choose(score, as_cutoff(self.challenge_above), as_cutoff(self.block_above), self.actions)
        return one_hot(chosen, len(self.actions))

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        """One-hot rows on the chosen action."""
        return self.coded(batch).probabilities()


@register_policy("threshold", params=ThresholdParams)
def threshold_policy(params: ThresholdParams, context: PolicyContext, *, where: str) -> ThresholdPolicy:
    """Check the score column and the actions, then build the policy."""
    require_columns([params.score], context.columns, where=f"{where}.score")
    require_cutoff_actions(params, context.actions, where=where)
    return ThresholdPolicy(
        score=params.score,
        challenge_above=params.challenge_above,
        block_above=params.block_above,
        actions=context.actions,
        where=where,
    )
