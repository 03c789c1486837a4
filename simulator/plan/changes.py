"""What a run collects about decision changes (SPEC §9 `changes.parquet`, `examples.parquet`).

A rule backtest shows which payments change decision: per policy, segment and
transition (the baseline's action → the candidate's), the logged rows and
volume, and the largest example payments. The shards count the rows and keep
their top examples in the same pass as every other sum
(`simulator.stats.changes`); this module fixes, once on the driver, how many
examples a transition keeps and which columns they carry.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from segments.spec import SegmentSpec, required_columns
from simulator.schema import ACTION, AMOUNT, AUTHORIZED, CREATED_AT, FRAUD_DISPUTE, TRANSACTION_ID

if TYPE_CHECKING:  # the plan holds a `Changes`; this module only reads plans
    from simulator.plan.compiled import Plan

DEFAULT_EXAMPLES = 20  # example payments kept per (policy, segment, transition): a page an analyst opens
LOGGED_ACTION = "logged_action"  # what `action` (the logged action) is called in examples.parquet
# The payment and its logged outcome, in this order, before its scores and segment columns.
PAYMENT_COLUMNS: tuple[str, ...] = (TRANSACTION_ID, CREATED_AT, AMOUNT, ACTION, AUTHORIZED, FRAUD_DISPUTE)


@dataclass(frozen=True, slots=True)
class Changes:
    """Decision changes to collect: `examples` payments per transition (0: none), each with `columns`.

    `columns` are canonical column names: the payment (`PAYMENT_COLUMNS`), then its
    score columns and the columns its segments and policies read, sorted.
    """

    examples: int
    columns: tuple[str, ...]


def example_columns(plan: Plan, names: Collection[str], scores: Sequence[str], segments: SegmentSpec) -> tuple[str, ...]:
    """The columns an example payment carries: who it is, what happened, its scores and segment columns.

    Columns the policies read (e.g. a rule's `card_country`) come too; the logging
    probabilities and propensities do not (they say how it was logged, not what it is).
    """
    extra = set(scores) | required_columns(segments)
    for planned in plan.policies:
        extra |= planned.policy.columns
    extra = {c for c in extra if c in names and c not in PAYMENT_COLUMNS and not c.startswith("logging_prob_")}
    return PAYMENT_COLUMNS + tuple(sorted(extra))


def with_changes(plan: Plan, names: Collection[str], scores: Sequence[str], segments: SegmentSpec, *,
                 examples: int = DEFAULT_EXAMPLES) -> Plan:
    """The plan, asking shards for decision-change counts and `examples` example payments per transition.

    `names`: the data's canonical columns; `scores`: its score columns (`Schema.resolved_scores`).
    """
    if examples < 0:
        raise ValueError(f"examples: must be >= 0, got {examples}")
    columns = example_columns(plan, names, scores, segments)
    return replace(plan, changes=Changes(examples=examples, columns=columns), columns=plan.columns | set(columns))
