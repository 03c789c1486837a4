"""`threshold`: one score, `challenge_above` and/or `block_above` (SPEC §4), or a ladder over any action set.

Per row: block if `score >= block_above`, else challenge if
`score >= challenge_above`, else allow. Thresholds are inclusive: a score
exactly on a threshold takes the stricter action. A threshold left out never
fires. Deterministic; coded by the chosen action (table = identity).

With an action set of its own (SPEC §3), `above` maps any action to its
threshold and `below` names the action under every threshold (default
`allow`): a score takes the action of the highest threshold at or below it.
`challenge_above` and `block_above` are `above.challenge` and `above.block`.
For the action set `["approve", "review", "decline"]`:
`below = "approve"`, `above = { review = 0.3, decline = 0.8 }`.

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
from simulator.stats.compiled import njit
import polars as pl
from pydantic import ValidationInfo, ValidatorFunctionWrapHandler, field_validator, model_validator

from policies.base import Actions, Coded, one_hot, require_columns, score_values
from policies.registry import PolicyContext, PolicyParams, register_policy
from simulator.errors import InvalidConfig, TableProblems
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
    above: dict[str, float] = {}  # any action → its inclusive threshold
    below: str = ALLOW  # the action of a score under every threshold

    @field_validator("challenge_above", "block_above", mode="wrap")
    @classmethod
    def _in_range(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> float | None:
        number = handler(value)
        return None if number is None else in_score_range(number, value, info)

    @field_validator("above", mode="wrap")
    @classmethod
    def _ladder_in_range(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> dict[str, float]:
        ladder = handler(value)
        problems = []
        for action, number in ladder.items():
            try:
                in_score_range(number, number, info)
            except ValueError as error:
                problems.append((action, str(error)))
        if problems:
            raise TableProblems(problems)
        return {action: float(number) for action, number in ladder.items()}

    @field_validator("block_above")
    @classmethod
    def _above_challenge(cls, block_above: float | None, info: ValidationInfo) -> float | None:
        challenge_above = info.data.get("challenge_above")
        if block_above is not None and challenge_above is not None and block_above <= challenge_above:
            raise ValueError(f"must be > challenge_above ({challenge_above:g}), got {block_above:g}")
        return block_above

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        if self.challenge_above is None and self.block_above is None and not self.above:
            raise ValueError("needs challenge_above and/or block_above (or an `above` table of action thresholds)")
        given = {CHALLENGE: self.challenge_above, BLOCK: self.block_above}
        twice = [a for a in self.above if given.get(a) is not None]
        if twice:
            raise ValueError(f"{twice[0]!r} has a threshold in `above` and in {twice[0]}_above: give it once")
        cuts = list(self.ladder().values())
        if len(set(cuts)) != len(cuts):
            raise ValueError(f"two actions share a threshold ({sorted(cuts)}): each must be distinct")
        if self.below in self.ladder():
            raise ValueError(f"below = {self.below!r} also has a threshold: the action under every threshold is another")
        return self

    def ladder(self) -> dict[str, float]:
        """Every thresholded action and its threshold, lowest first."""
        out = dict(self.above)
        if self.challenge_above is not None:
            out[CHALLENGE] = self.challenge_above
        if self.block_above is not None:
            out[BLOCK] = self.block_above
        return dict(sorted(out.items(), key=lambda item: item[1]))


def in_score_range(number: float, value: Any, info: ValidationInfo) -> float:
    """A threshold checked against its score's range: [0, 1], or the range `[data.score_range]` declares."""
    low, high, score = (info.context or {}).get(SCORE_RANGE, (*UNIT_RANGE, None))
    declared = "" if score is None else f" ({score} is declared on [{low:g}, {high:g}] in [data.score_range])"
    if number > high:
        raise ValueError(f"must be <= {high:g}{declared}, got {value!r}")
    if number < low:
        raise ValueError(f"must be >= {low:g}{declared}, got {value!r}")
    return float(number)


class ThresholdParams(Cutoffs):
    """Parameters of `threshold`: the score column and its cutoffs."""

    score: str

    _score_range = model_validator(mode="before")(note_score_range)


def require_cutoff_actions(cutoffs: Cutoffs, actions: Actions, *, where: str) -> None:
    """Every action the cutoffs can choose must be in the configured action set."""
    needed = [(cutoffs.below, "" if cutoffs.below == ALLOW else ".below")]
    needed += [(CHALLENGE, ".challenge_above")] if cutoffs.challenge_above is not None else []
    needed += [(BLOCK, ".block_above")] if cutoffs.block_above is not None else []
    needed += [(action, f".above.{action}") for action in cutoffs.above]
    for action, field in needed:
        if action not in actions:
            raise InvalidConfig(
                f"{where}{field}: needs action {action!r}, which is not in the action set ({', '.join(actions)})"
            )


def choose(score: np.ndarray, ladder: Mapping[str, np.ndarray | float], below: np.ndarray | int,
           actions: Actions) -> np.ndarray:
    """Index of the chosen action per row: the action of the highest threshold at or below the score, else `below`.

    Thresholds (and `below`, an action index) may be per row; +inf where a row's cutoffs leave the action
    out, so it is never chosen: scores are finite. Of equal thresholds the first in the ladder wins.
    One compiled pass over the rows (`_ladder`) instead of five array passes per threshold.
    """
    per_row = any(np.ndim(cut) for cut in ladder.values()) or np.ndim(below) > 0
    score = np.ascontiguousarray(score, dtype=np.float64)
    if not per_row:  # the rungs that can win, by threshold: the chosen action is the count of those passed
        rungs: dict[float, int] = {}
        for action, cut in ladder.items():
            if float(cut) > -np.inf:  # -inf is never "above" the best so far: never chosen
                rungs.setdefault(float(cut), actions.index(action))  # of equal thresholds, the first wins
        cuts = np.array(sorted(rungs), dtype=np.float64)
        table = np.array([int(below), *(rungs[c] for c in sorted(rungs))], dtype=np.int32)
        return _passed(score, cuts, table)
    width = len(score)
    cuts = np.empty((len(ladder), width))
    for k, cut in enumerate(ladder.values()):
        cuts[k] = cut
    lowest = np.empty(width, dtype=np.int32)
    lowest[:] = below
    codes = np.array([actions.index(action) for action in ladder], dtype=np.int32)
    return ladder_by_row(score, np.arange(width), cuts, codes, lowest)


@njit(cache=True, nogil=True)
def _passed(score: np.ndarray, cuts: np.ndarray, table: np.ndarray) -> np.ndarray:
    """table[number of ascending `cuts` at or below the score], without a branch per row (NaN passes none)."""
    out = np.empty(score.shape[0], dtype=np.int32)
    for i in range(score.shape[0]):
        x = score[i]
        passed = 0
        for k in range(cuts.shape[0]):
            passed += x >= cuts[k]
        out[i] = table[passed]
    return out


@njit(cache=True, nogil=True)
def ladder_by_row(score: np.ndarray, index: np.ndarray, cuts: np.ndarray, codes: np.ndarray,
                  below: np.ndarray) -> np.ndarray:
    """`choose` where row i takes the ladder `index[i]`: thresholds `cuts[:, index[i]]` (action `codes[k]`
    each, in ladder order), `below[index[i]]` under all of them."""
    out = np.empty(score.shape[0], dtype=np.int32)
    for i in range(score.shape[0]):
        j = index[i]
        chosen = below[j]
        best = -np.inf
        x = score[i]
        for k in range(cuts.shape[0]):
            cut = cuts[k, j]
            if x >= cut and cut > best:
                chosen = codes[k]
                best = cut
        out[i] = chosen
    return out


@dataclass(frozen=True, slots=True)
class ThresholdPolicy:
    """An action by one score against inclusive thresholds (block / challenge / allow by default)."""

    score: str
    ladder: tuple[tuple[str, float], ...]  # (action, inclusive threshold), lowest first
    below: str
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
        chosen = choose(score, dict(self.ladder), self.actions.index(self.below), self.actions)
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
        ladder=tuple(params.ladder().items()),
        below=params.below,
        actions=context.actions,
        where=where,
    )
