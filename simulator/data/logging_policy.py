"""A declared logging policy (`[data.logging_policy]`, SPEC §2): propensities for logs that lack them, and an audit.

Many logs record the action but not the probability the logging policy gave
it. When the config declares that policy — any policy table of SPEC §4 (a
`threshold`, `rules`, `segment_threshold`, ...) plus the share `exploration`
of decisions drawn uniformly over the actions — its distribution is

    logging_prob_a(x) = (1 − exploration) · table(a | x) + exploration / n_actions

and `propensity` is that of the logged action. Both are derived lazily as the
rows are read (`with_logging_columns`), for every column the files lack, so
every consumer sees them as if logged. The declared policy also identifies
`production` (its most likely action), the default baseline.

When the files have a propensity too, the logged one is used and the
declaration is audited against it (`audit_exprs`): a propensity bug is the most
expensive silent error in off-policy evaluation, and a disagreement says that
either the log or the declaration is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import numpy as np
import polars as pl

from policies.base import Policy
from policies.epsilon import EpsilonPolicy
from policies.registry import PolicyContext, build_policy
from simulator.errors import PolicysimError
from simulator.schema import ACTION, PROPENSITY, LoggingPolicy, Schema, logging_prob_column

EXPLORATION = "exploration"
WHERE = "data.logging_policy"
DECLARED = "_declared_propensity"  # the audit's column: the declared probability of the logged action
AUDIT_TOLERANCE = 1e-6  # a logged propensity agrees with the declaration within this (absolute)
MIN_SEGMENT_SHARE = 0.01  # the audit's worst segments hold at least this share of the rows

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def build_logging_policy(declared: LoggingPolicy, schema: Schema, *, columns: frozenset[str] | None) -> Policy:
    """The declared policy mixed with its exploration; its table is checked by the policy registry."""
    context = PolicyContext(actions=schema.actions, columns=columns, score_ranges=schema.score_ranges)
    base = build_policy(declared.table, context, where=WHERE)
    return EpsilonPolicy(base=base, epsilon=declared.exploration)


def derived_columns(schema: Schema, present: Iterable[str]) -> frozenset[str]:
    """The canonical columns derived from the declared logging policy, given the (canonical) columns present.

    `logging_prob_<action>` are derived only when the files have none of them
    (some but not all is the validator's problem to report), `propensity` when
    the files lack it. Nothing is derived without a declaration.
    """
    if schema.logging_policy is None:
        return frozenset()
    names = set(present)
    probs = [logging_prob_column(action) for action in schema.actions]
    derived = set() if any(name in names for name in probs) else set(probs)
    if PROPENSITY not in names:
        derived.add(PROPENSITY)
    return frozenset(derived)


def logging_inputs(schema: Schema) -> list[str]:
    """The canonical columns the declared policy reads, and `action` (which picks the propensity)."""
    if schema.logging_policy is None:
        return []
    policy = build_logging_policy(schema.logging_policy, schema, columns=None)
    return [ACTION, *sorted(policy.columns)]


def with_logging_columns(frame: FrameT, schema: Schema, *, audit: bool = False) -> FrameT:
    """`frame` with the columns derived from the declared policy (see `derived_columns`).

    The policy runs on batches of rows inside the query (an elementwise UDF),
    so the rows are never held at once. With `audit` and a logged propensity,
    the declared probability of the logged action is added as
    `_declared_propensity`, which only the validator reads.
    """
    declaration = schema.logging_policy
    if declaration is None:
        return frame
    present = frame.collect_schema()
    derived = derived_columns(schema, present)
    inputs = logging_inputs(schema)
    if not (derived or audit) or any(name not in present for name in inputs):
        return frame  # nothing to derive, or a column the policy reads is missing (the validator reports it)
    policy = build_logging_policy(declaration, schema, columns=None)
    probs = [logging_prob_column(action) for action in schema.actions]
    declared = (
        pl.struct(inputs)
        .map_batches(_distribution(policy, probs), return_dtype=pl.Struct(dict.fromkeys(probs, pl.Float64)),
                     is_elementwise=True)
        .alias("_declared")
    )
    chosen = pl.coalesce(*(pl.when(pl.col(ACTION).cast(pl.String) == action).then(pl.col("_declared").struct.field(name))
                           for action, name in zip(schema.actions, probs, strict=True)))
    columns = [pl.col("_declared").struct.field(name) for name in probs if name in derived]
    if PROPENSITY in derived or audit:
        columns.append(chosen.alias(PROPENSITY if PROPENSITY in derived else DECLARED))
    return frame.with_columns(declared).with_columns(columns).drop("_declared")


def _distribution(policy: Policy, names: list[str]) -> Callable[[pl.Series], pl.Series]:
    """The UDF: a batch's rows (a struct series) → the policy's distribution as a struct series.

    A batch the policy cannot evaluate (e.g. a null score) gets nulls: the
    validator reports the input's problem, and the nulls as underived propensities.
    """

    def distribution(rows: pl.Series) -> pl.Series:
        batch = rows.struct.unnest()
        try:
            values = policy.probabilities(batch)
        except PolicysimError:
            values = np.full((batch.height, len(names)), np.nan)
        frame = pl.DataFrame(values, schema=names, orient="row").fill_nan(None)
        return frame.to_struct(rows.name)

    return distribution


def audit_exprs() -> dict[str, pl.Expr]:
    """Aggregations comparing the logged propensity with the declared one, for the validator's pass."""
    declared, logged = pl.col(DECLARED), pl.col(PROPENSITY).cast(pl.Float64)
    disagree = ~((declared - logged).abs() <= AUDIT_TOLERANCE)
    compared = declared.is_not_null() & logged.is_not_null()
    return {
        "audit:compared": compared.sum(),
        "audit:disagree": (compared & disagree).sum(),
        "audit:max_gap": (declared - logged).abs().filter(compared).max(),
    }


def audit_by_segment(frame: pl.LazyFrame, columns: list[str], top: int = 5) -> dict[str, pl.LazyFrame]:
    """One side query per segment column: its values with the largest share of disagreeing rows.

    Only values holding at least `MIN_SEGMENT_SHARE` of the rows compete: a
    merchant with one row of six disagreeing is noise next to a country where
    one payment in ten does.
    """
    declared, logged = pl.col(DECLARED), pl.col(PROPENSITY).cast(pl.Float64)
    disagree = (~((declared - logged).abs() <= AUDIT_TOLERANCE)) & declared.is_not_null() & logged.is_not_null()
    return {
        f"audit_segment:{name}": frame.group_by(pl.col(name).cast(pl.String).alias("value"))
        .agg(pl.len().alias("rows"), disagree.sum().alias("disagree"))
        .filter((pl.col("disagree") > 0) & (pl.col("rows") >= MIN_SEGMENT_SHARE * pl.col("rows").sum()))
        .with_columns((pl.col("disagree") / pl.col("rows")).alias("share"))
        .sort(["share", "disagree", "value"], descending=[True, True, False])
        .head(top)
        .select(pl.struct(pl.all()).implode().alias("worst"))
        for name in columns
    }
