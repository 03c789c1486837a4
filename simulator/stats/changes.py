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


@dataclass(frozen=True, slots=True, eq=False)
class Membership:
    """A policy's probability of each action on each row of a shard, without the `(n, n_actions)` array when it can.

    A coded policy (and the logging policy, coded by the logged action) is `table[codes]`: its columns
    and its chosen actions are gathers from a table of a few rows, so the dense array, 24 bytes a row
    and policy, is never built. A per-row policy keeps its dense `probs`.
    """

    codes: np.ndarray | None  # (n,) index into `table`, or None for a per-row policy
    table: np.ndarray | None  # (n_codes, n_actions)
    probs: np.ndarray | None = None  # (n, n_actions), per-row policies only

    def column(self, action: int) -> np.ndarray:
        """(n,) the probability of `action` on each row."""
        if self.probs is not None:
            return self.probs[:, action]
        assert self.codes is not None and self.table is not None
        return self.table[:, action][self.codes]

    def chosen(self) -> np.ndarray:
        """(n,) the action each row most likely takes (the first of equals, as `np.argmax` of the dense rows)."""
        if self.probs is not None:
            return np.argmax(self.probs, axis=1)
        assert self.codes is not None and self.table is not None
        return np.argmax(self.table, axis=1)[self.codes]


def memberships(name: str, plan: Plan, action: np.ndarray, codes: dict[str, np.ndarray],
                probs: dict[str, np.ndarray]) -> Membership:
    """Each row's probability of each action under the policy (the logging policy: the logged one)."""
    planned = plan.policy(name)
    if planned.logging:
        return Membership(codes=action, table=np.eye(len(plan.actions)))
    if planned.coded:
        assert planned.table is not None  # coded policies carry their table
        return Membership(codes=codes[name], table=planned.table)
    return Membership(codes=None, table=None, probs=probs[name])


def transition_sums(plan: Plan, cells: Grouping, amount: np.ndarray,
                    members: dict[str, Membership]) -> dict[str, np.ndarray]:
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
                joint = base.column(b) * members[name].column(c)
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


def shard_examples(batch: pl.DataFrame, plan: Plan, members: dict[str, Membership],
                   segs: Sequence[SegmentCodes]) -> Examples | None:
    """The shard's own top rows of every transition, in every segment of every segmentation (ALL first).

    Only candidate rows are gathered, labelled and sorted exactly (`top`): a row can be among the
    `keep` largest of a (policy, transition, segment) only if it is among them, ties included, in
    its group of at least one grouping, which `_candidates` finds on integer keys. Ten policies
    change millions of rows on 10 M; their candidates are tens of thousands.
    """
    changes = plan.changes
    if changes is None or changes.examples == 0:
        return None
    actions = np.asarray(plan.actions, dtype=object)
    base = members[plan.baseline].chosen()
    amount = batch[AMOUNT].cast(pl.Float64).to_numpy()
    order = np.argsort(-amount)  # largest first; `_candidates` keeps every row tied at a group's boundary
    by_amount = _ByAmount(order=order, amount=amount[order], base=base[order],
                          segments=[(s.codes[order], len(s.labels)) for s in segs], actions=len(plan.actions))
    parts = []
    for name in changing(plan):
        target = members[name].chosen()
        rows = np.sort(order[_candidates(by_amount, target[order], changes.examples)])
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


@dataclass(frozen=True, slots=True)
class _ByAmount:
    """A shard's rows in descending order of amount: what every policy's candidate search shares."""

    order: np.ndarray  # row index of each position
    amount: np.ndarray  # amount at each position
    base: np.ndarray  # the baseline's chosen action at each position
    segments: list[tuple[np.ndarray, int]]  # each segmentation's codes at each position, and how many codes
    actions: int


def _candidates(rows: _ByAmount, target: np.ndarray, keep: int) -> np.ndarray:
    """Positions (in `rows`' order) of the rows whose action changes that may be among the `keep` largest of a group.

    Groups are (transition, segment) of every segmentation, and (transition) for ALL; a row is a
    candidate when its amount is at least its group's `keep`-th largest, so rows tied there are kept
    and the exact order (amount, then transaction_id) is left to `top`.
    """
    changed = np.flatnonzero(rows.base != target)
    if changed.size <= keep:
        return changed
    amount = rows.amount[changed]
    transition = rows.base[changed].astype(np.int64) * rows.actions + target[changed]
    chosen = _top_in_groups(transition, rows.actions * rows.actions, amount, keep)
    for codes, size in rows.segments:
        key = transition * size + codes[changed]
        chosen |= _top_in_groups(key, rows.actions * rows.actions * size, amount, keep)
    return changed[chosen]


def _top_in_groups(key: np.ndarray, size: int, amount: np.ndarray, keep: int) -> np.ndarray:
    """Whether each row's amount (rows in descending amount) is at least the `keep`-th largest of its `key` group.

    One stable sort by key keeps each group's rows in amount order; it is a radix sort when the
    keys fit in 16 bits (a few milliseconds per million rows).
    """
    counts = np.bincount(key, minlength=size)
    large = np.flatnonzero(counts > keep)
    if large.size == 0:
        return np.ones(len(key), dtype=bool)
    by_key = np.argsort(key.astype(np.uint16 if size <= 1 << 16 else np.int64, copy=False), kind="stable")
    starts = np.cumsum(counts) - counts
    threshold = np.full(size, -np.inf)
    threshold[large] = amount[by_key[starts[large] + keep - 1]]
    return amount >= threshold[key]


def _keyed(changed: pl.DataFrame, segmentation: str, segment: pl.Expr, keep: int, labels: dict[str, pl.Series]
           ) -> pl.DataFrame:
    """One segmentation's top rows with the example keys first."""
    keyed = changed.with_columns(pl.lit(segmentation).alias(SEGMENTATION), segment.alias(SEGMENT)).drop(list(labels))
    keyed = top(keyed, keep)
    return keyed.select(*EXAMPLE_KEYS, pl.exclude(EXAMPLE_KEYS))
