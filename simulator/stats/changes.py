"""Decision changes in one shard: which rows change action, how many, and the largest of them.

A transition is a pair (the baseline's action b, a policy's action c ≠ b). Its
rows and volume are sums over cells: where both policies are constant within a
cell (coded policies, and the logging policy, whose action is a cell key), the
driver reads them from the cell sums every run already has (`n`, Σ amount); a
policy whose distribution varies row by row (`python` kinds) adds the per-cell
sums Σ π_B(b|x)·π_P(c|x) and Σ π_B(b|x)·π_P(c|x)·amount here, in the same pass.
For deterministic policies these are exact counts of the log; for stochastic
ones, expected counts.

Examples: the `Changes.examples` largest payments by amount of each (policy,
segment, transition), ties broken by `transaction_id`. A row's action under a
policy is the action it most likely takes (its only one, for a deterministic
policy). A shard keeps its own top rows; `Examples.merge` keeps the top of the
union, so the result is the same whatever the sharding and the merge order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from segments.codes import SegmentCodes
from segments.labels import ALL
from simulator.plan.compiled import Plan
from simulator.schema import AMOUNT, TRANSACTION_ID
from simulator.stats.cells import Grouping, group_sum

POLICY, SEGMENTATION, SEGMENT, FROM, TO = "policy", "segmentation", "segment", "from_action", "to_action"
EXAMPLE_KEYS: tuple[str, ...] = (POLICY, SEGMENTATION, SEGMENT, FROM, TO)


def transition_column(policy: str, source: int, target: int, *, volume: bool) -> str:
    """Cell column of a per-row pair: Σ π_B(source)·π_P(target) (· amount when `volume`)."""
    return f"{'xv' if volume else 'xn'}|{policy}|{source}|{target}"


def changing(plan: Plan) -> tuple[str, ...]:
    """The policies whose decisions are compared with the baseline's: every reported policy but the baseline."""
    return tuple(p.name for p in plan.policies if p.name != plan.baseline)


def cell_constant(name: str, plan: Plan) -> bool:
    """Whether a policy's distribution is constant within a cell (coded, or the logging policy's logged action)."""
    planned = plan.policy(name)
    return planned.logging or planned.coded


def memberships(name: str, plan: Plan, action: np.ndarray, codes: dict[str, np.ndarray],
                probs: dict[str, np.ndarray]) -> np.ndarray:
    """(n, n_actions): each row's probability of each action under the policy (the logging policy: the logged one)."""
    planned = plan.policy(name)
    if planned.logging:
        return np.eye(len(plan.actions))[action]
    if planned.coded:
        assert planned.table is not None  # coded policies carry their table
        return planned.table[codes[name]]
    return probs[name]


def transition_sums(plan: Plan, cells: Grouping, amount: np.ndarray,
                    members: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-cell rows and volume of every transition of a pair that is not constant within cells."""
    out: dict[str, np.ndarray] = {}
    base = members[plan.baseline]
    for name in changing(plan):
        if cell_constant(name, plan) and cell_constant(plan.baseline, plan):
            continue  # read from the cells' own sums on the driver
        for b in range(len(plan.actions)):
            for c in range(len(plan.actions)):
                if b == c:
                    continue
                joint = base[:, b] * members[name][:, c]
                out[transition_column(name, b, c, volume=False)] = group_sum(cells, joint)
                out[transition_column(name, b, c, volume=True)] = group_sum(cells, joint * amount)
    return out


@dataclass(frozen=True, slots=True)
class Examples:
    """The largest changed payments per (policy, segmentation, segment, transition): at most `keep` each.

    `frame` has the `EXAMPLE_KEYS` and the plan's example columns (canonical names).
    """

    frame: pl.DataFrame
    keep: int

    def merge(self, other: Examples) -> Examples:
        """The top rows of the union of both."""
        return merge_examples([self, other])


def merge_examples(parts: Sequence[Examples]) -> Examples | None:
    """The top `keep` rows of every group over all parts (None when there are none)."""
    if not parts:
        return None
    return Examples(frame=top(pl.concat([p.frame for p in parts], how="vertical_relaxed"), parts[0].keep),
                    keep=parts[0].keep)


def top(frame: pl.DataFrame, keep: int, keys: Sequence[str] = EXAMPLE_KEYS) -> pl.DataFrame:
    """The `keep` largest rows by amount of each group of `keys` (ties: the smaller transaction_id first)."""
    ranked = frame.sort([AMOUNT, TRANSACTION_ID], descending=[True, False], maintain_order=True)
    return ranked.filter(pl.int_range(pl.len()).over(list(keys)) < keep)


def shard_examples(batch: pl.DataFrame, plan: Plan, members: dict[str, np.ndarray],
                   segs: Sequence[SegmentCodes]) -> Examples | None:
    """The shard's own top rows of every transition, in every segment of every segmentation (ALL first)."""
    changes = plan.changes
    if changes is None or changes.examples == 0:
        return None
    actions = np.asarray(plan.actions, dtype=object)
    base = np.argmax(members[plan.baseline], axis=1)
    parts = []
    for name in changing(plan):
        target = np.argmax(members[name], axis=1)
        rows = np.flatnonzero(base != target)
        if rows.size:
            parts.append(pl.DataFrame({POLICY: pl.repeat(name, rows.size, dtype=pl.String, eager=True),
                                       FROM: pl.Series(actions[base[rows]], dtype=pl.String),
                                       TO: pl.Series(actions[target[rows]], dtype=pl.String),
                                       "_row": rows}))
    if not parts:
        return None
    changed = pl.concat(parts)
    rows = changed["_row"].to_numpy()
    labels = {f"_seg{i}": pl.Series(np.asarray(s.labels, dtype=object)[s.codes[rows]], dtype=pl.String)
              for i, s in enumerate(segs)}
    changed = pl.concat([changed.drop("_row"), batch.select(changes.columns)[rows]], how="horizontal")
    changed = top(changed.with_columns(**labels), changes.examples, (POLICY, FROM, TO, *labels))  # no group needs more
    frames = [_keyed(changed, ALL, pl.lit(ALL), changes.examples, labels)]
    for index, columns in enumerate(plan.segments.segmentations):
        frames.append(_keyed(changed, "|".join(columns), pl.col(f"_seg{index}"), changes.examples, labels))
    return Examples(frame=pl.concat(frames), keep=changes.examples)


def _keyed(changed: pl.DataFrame, segmentation: str, segment: pl.Expr, keep: int, labels: dict[str, pl.Series]
           ) -> pl.DataFrame:
    """One segmentation's top rows with the example keys first."""
    keyed = changed.with_columns(pl.lit(segmentation).alias(SEGMENTATION), segment.alias(SEGMENT)).drop(list(labels))
    keyed = top(keyed, keep)
    return keyed.select(*EXAMPLE_KEYS, pl.exclude(EXAMPLE_KEYS))
