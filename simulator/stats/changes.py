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
from simulator.stats.kernel import example_candidates

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
        codes, choice = self.choices()
        return choice[codes]

    def choices(self) -> tuple[np.ndarray, np.ndarray]:
        """(codes, choice): the action row i most likely takes is `choice[codes[i]]`, without the (n,) gather."""
        if self.probs is not None:
            return np.argmax(self.probs, axis=1), np.arange(self.probs.shape[1])
        assert self.codes is not None and self.table is not None
        return self.codes, np.argmax(self.table, axis=1)


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
    """The `keep` largest rows by amount of each group of `keys` (ties: the smaller transaction_id first).

    Rows below their group's `keep`-th largest amount cannot be among its top (`keep` rows are
    strictly larger), so a hash group-by's threshold drops them first, keeping the rows' order:
    the exact sort (amount, then transaction_id, a string) runs on a few rows per group instead
    of on every shard's examples.
    """
    if frame.height > 2 * keep:
        threshold = frame.group_by(list(keys)).agg(pl.col(AMOUNT).top_k(keep).min().alias("_threshold"),
                                                   pl.len().alias("_rows"))
        frame = (frame.join(threshold, on=list(keys), how="left", maintain_order="left", nulls_equal=True)
                 .filter((pl.col("_rows") <= keep) | (pl.col(AMOUNT) >= pl.col("_threshold")))
                 .drop("_threshold", "_rows"))
    ranked = frame.sort([AMOUNT, TRANSACTION_ID], descending=[True, False], maintain_order=True)
    return ranked.filter(pl.int_range(pl.len()).over(list(keys)) < keep)


def shard_examples(batch: pl.DataFrame, plan: Plan, members: dict[str, Membership],
                   segs: Sequence[SegmentCodes]) -> Examples | None:
    """The shard's own top rows of every transition, in every segment of every segmentation (ALL first).

    Two steps, both on integer keys. `kernel.example_candidates` keeps, per policy, the changed rows
    that are among the `keep` largest of their (transition, segment) group in some grouping, ties at
    the boundary included, in two compiled passes over the rows with a small heap per group: ten
    policies change millions of rows on 10 M, their candidates are tens of thousands. Those alone are gathered and sorted in the exact order (amount, then
    transaction_id, then the policies' order: a payment can change under several), and each
    grouping keeps the first `keep` of each of its groups (`_first_in_groups`) — what `top` does,
    without a window over string keys per grouping.
    """
    changes = plan.changes
    if changes is None or changes.examples == 0:
        return None
    keep, n_actions = changes.examples, len(plan.actions)
    base = members[plan.baseline].chosen().astype(np.int8)
    amount = np.ascontiguousarray(batch[AMOUNT].cast(pl.Float64).to_numpy())
    segments = np.stack([seg.codes.astype(np.int32, copy=False) for seg in segs]) if segs else np.zeros((0, len(base)), np.int32)
    labels = np.array([len(seg.labels) for seg in segs], dtype=np.int64)
    names = changing(plan)
    choices = [members[name].choices() for name in names]
    codes = np.empty((len(names), len(base)), dtype=np.int32)
    choice = np.zeros((len(names), max((len(c) for _, c in choices), default=1)), dtype=np.int64)
    for index, (coded, chosen) in enumerate(choices):
        codes[index] = coded
        choice[index, :len(chosen)] = chosen
    bounds, candidates = example_candidates(base, codes, choice, segments, labels, amount, keep, n_actions)
    found = []
    for index, (lo, hi) in enumerate(bounds):
        rows = candidates[lo:hi]
        if rows.size:
            found.append((index, choice[index][codes[index, rows]], rows))
    if not found:
        return None
    policy = np.concatenate([np.full(len(rows), index) for index, _, rows in found])
    target = np.concatenate([targets for _, targets, _ in found])
    rows = np.concatenate([rows for _, _, rows in found])
    actions = np.asarray(plan.actions, dtype=object)
    changed = pl.concat([
        pl.DataFrame({POLICY: pl.Series(np.asarray(names, dtype=object)[policy], dtype=pl.String),
                      FROM: pl.Series(actions[base[rows]], dtype=pl.String),
                      TO: pl.Series(actions[target], dtype=pl.String)}),
        batch.select(changes.columns)[rows]], how="horizontal")
    order = changed.select(pl.int_range(pl.len()).sort_by([AMOUNT, TRANSACTION_ID], descending=[True, False],
                                                           maintain_order=True)).to_series().to_numpy()
    changed, policy, rows = changed[order], policy[order], rows[order]
    transition = (policy * n_actions + base[rows]) * n_actions + target[order]
    groupings = [(ALL, None, transition)]
    groupings += [("|".join(columns), seg, transition * len(seg.labels) + seg.codes[rows])
                  for columns, seg in zip(plan.segments.segmentations, segs, strict=True)]
    frames = []
    for segmentation, seg, key in groupings:
        kept = _first_in_groups(key, keep)
        segment = (pl.lit(ALL) if seg is None else
                   pl.Series(np.asarray(seg.labels, dtype=object)[seg.codes[rows[kept]]], dtype=pl.String))
        frames.append(changed.filter(kept).select(
            POLICY, pl.lit(segmentation).alias(SEGMENTATION), segment.alias(SEGMENT), FROM, TO, *changes.columns))
    return Examples(frame=pl.concat(frames), keep=keep)


def _first_in_groups(key: np.ndarray, keep: int) -> np.ndarray:
    """Whether each row is among the first `keep` of its `key` group, in the rows' order."""
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    position = np.arange(len(key)) - np.repeat(starts, np.diff(np.append(starts, len(key))))
    kept = np.empty(len(key), dtype=bool)
    kept[order] = position < keep
    return kept
