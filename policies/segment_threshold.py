"""`segment_threshold`: thresholds per value of a segment column, with a default (SPEC §4).

Each row takes the cutoffs of its `column` value when `thresholds` lists that
value, else the `default` cutoffs, then acts as `threshold` does: block if
`score >= block_above`, else challenge if `score >= challenge_above`, else
allow (inclusive; an unset threshold never fires). Column values are matched as
strings (the value cast to text: `mcc` 5411 matches `"5411"`, booleans match
`"true"`/`"false"`); a null value takes the default. Deterministic; coded by the
chosen action. The lookup is one `replace_strict`, then one compiled pass (`threshold.ladder_by_row`).

Example::

    [[policies]]
    name = "per_country"
    kind = "segment_threshold"
    score = "fraud_score"
    column = "card_country"
    default = { challenge_above = 0.5, block_above = 0.8 }

    [policies.thresholds]
    BR = { challenge_above = 0.3, block_above = 0.6 }
    FR = { block_above = 0.9 }
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl
from pydantic import model_validator

from policies.base import Actions, Coded, column_values, one_hot, require_columns, score_values
from policies.registry import PolicyContext, PolicyParams, register_policy
from policies.threshold import Cutoffs, ladder_by_row, note_score_range, require_cutoff_actions
from simulator.errors import toml_path


class SegmentThresholdParams(PolicyParams):
    """Parameters of `segment_threshold`: score, segment column, default and per-value cutoffs."""

    score: str
    column: str
    default: Cutoffs
    thresholds: dict[str, Cutoffs]

    _score_range = model_validator(mode="before")(note_score_range)


@dataclass(frozen=True, slots=True)
class SegmentThresholdPolicy:
    """Threshold policy whose cutoffs depend on one segment column.

    `ladder[action][i]` is the threshold of `values[i]` for that action and `below[i]` the action under
    every threshold; the last entry (one past `values`) is the default. Unset cutoffs are +inf.
    """

    score: str
    column: str
    values: tuple[str, ...]
    ladder: tuple[tuple[str, tuple[float, ...]], ...]
    below: tuple[str, ...]
    actions: Actions
    where: str
    deterministic: ClassVar[bool] = True
    logging: ClassVar[bool] = False

    @property
    def columns(self) -> frozenset[str]:
        """The score and the segment column."""
        return frozenset({self.score, self.column})

    def coded(self, batch: pl.DataFrame) -> Coded:
        """Code = index of the chosen action."""
        score = score_values(batch, self.score, where=self.where)
        segment = self._segment_index(batch)
        cuts = np.array([cuts for _, cuts in self.ladder], dtype=np.float64).reshape(len(self.ladder), len(self.values) + 1)
        codes = np.array([self.actions.index(action) for action, _ in self.ladder], dtype=np.int32)
        below = np.array([self.actions.index(b) for b in self.below], dtype=np.int32)
        chosen = ladder_by_row(np.ascontiguousarray(score, dtype=np.float64), segment, cuts, codes, below)
        return one_hot(chosen, len(self.actions))  # the ladder of each row's value, without a per-row copy

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        """One-hot rows on the chosen action."""
        return self.coded(batch).probabilities()

    def _segment_index(self, batch: pl.DataFrame) -> np.ndarray:
        """Per row, the index of its value in `values`, or `len(values)` (the default)."""
        text = column_values(batch, self.column, where=self.where).cast(pl.String)
        default = len(self.values)
        index = text.replace_strict(list(self.values), list(range(default)), default=default, return_dtype=pl.Int32)
        return index.to_numpy()


@register_policy("segment_threshold", params=SegmentThresholdParams)
def segment_threshold_policy(
    params: SegmentThresholdParams, context: PolicyContext, *, where: str
) -> SegmentThresholdPolicy:
    """Check columns and actions of every set of cutoffs, then build the lookup tables."""
    require_columns([params.score], context.columns, where=f"{where}.score")
    require_columns([params.column], context.columns, where=f"{where}.column")
    require_cutoff_actions(params.default, context.actions, where=f"{where}.default")
    for value, cutoffs in params.thresholds.items():
        require_cutoff_actions(cutoffs, context.actions, where=toml_path(where, ("thresholds", value)))
    ordered = [*params.thresholds.values(), params.default]
    return SegmentThresholdPolicy(
        score=params.score,
        column=params.column,
        values=tuple(params.thresholds),
        ladder=tuple((action, tuple(c.ladder().get(action, np.inf) for c in ordered))
                     for action in dict.fromkeys(a for c in ordered for a in c.ladder())),
        below=tuple(c.below for c in ordered),
        actions=context.actions,
        where=where,
    )
