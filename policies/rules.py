"""`rules`: an ordered rule list, first match wins, then a fallback (SPEC §4).

Each `when` is a SQL expression over columns, parsed by `pl.sql_expr` (never
`eval`): comparisons, `AND`/`OR`/`NOT`, `BETWEEN`, `IN`, `LIKE`, `IS NULL`,
`COALESCE`, `CASE`, string functions... String literals take single quotes
(`card_country = 'FR'`); double quotes name a column. A condition must be
computed row by row: aggregations and window functions (`AVG(amount)`,
`COUNT(*)`, `OVER`) would make a row's action depend on its batch, so they are
refused at config time.

A condition that is null for a row (SQL's unknown, e.g. `amount > 100` with a
null `amount`) counts as no match: the row goes on to the next rule.

`fallback` is an action name or a nested policy table; it decides the rows no
rule matches (and only sees those rows). The policy is deterministic iff the
fallback is, and coded iff the fallback is: code `i` = rule `i` matched,
codes from `len(rules)` on = the fallback's codes.

Example::

    [[policies]]
    name = "rules_then_threshold"
    kind = "rules"
    rules = [
        { when = "fraud_score >= 0.95", action = "block" },
        { when = "amount > 500 AND card_country IN ('BR', 'US')", action = "challenge" },
        { when = "channel = 'moto' AND auth_score BETWEEN 0.8 AND 1", action = "allow" },
    ]
    fallback = { kind = "threshold", score = "fraud_score", block_above = 0.8 }   # or "allow"
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import polars as pl
from pydantic import Field, field_validator

from policies.base import Actions, Coded, Policy, require_actions, require_columns
from policies.registry import PolicyContext, PolicyParams, build_policy, register_policy
from simulator.errors import InvalidConfig, PolicysimError

# Expression nodes whose value depends on other rows of the batch.
_NOT_ROW_WISE = frozenset({"Agg", "Len", "Over", "Window", "Rolling"})
_QUOTES_HINT = " (in SQL, 'text' is a string and \"text\" a column name)"


class Rule(PolicyParams):
    """One rule: when the SQL condition holds, take `action`."""

    when: str
    action: str


class RulesParams(PolicyParams):
    """Parameters of `rules`: at least one rule, and a fallback action or policy table."""

    rules: list[Rule] = Field(min_length=1, strict=False)  # lax: a tuple of rules from Python code is fine too
    fallback: str | dict[str, Any]

    @field_validator("fallback", mode="before")
    @classmethod
    def _action_or_table(cls, value: object) -> object:
        # Checked before the union so a wrong type gives one line, not one per union member.
        if not isinstance(value, (str, dict)):
            raise ValueError(f"must be an action name or a policy table {{kind = ...}}, got {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class ConstantPolicy:
    """Always the same action: the fallback when it is an action name."""

    action: int
    n_actions: int
    columns: ClassVar[frozenset[str]] = frozenset()
    deterministic: ClassVar[bool] = True
    logging: ClassVar[bool] = False

    def coded(self, batch: pl.DataFrame) -> Coded:
        """One code, 0, whose distribution puts 1 on the action."""
        return Coded(codes=np.zeros(batch.height, dtype=np.int32), table=np.eye(self.n_actions)[[self.action]])

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        """One-hot rows on the action."""
        return self.coded(batch).probabilities()


@dataclass(frozen=True, slots=True)
class RulesPolicy:
    """First matching rule's action, else the fallback's distribution.

    Conditions are kept as SQL text and parsed per batch, so the policy pickles
    as plain strings whatever the polars version.
    """

    conditions: tuple[str, ...]
    chosen: tuple[int, ...]
    fallback: Policy
    reads: frozenset[str]
    actions: Actions
    where: str
    logging: ClassVar[bool] = False

    @property
    def columns(self) -> frozenset[str]:
        """Columns of the conditions and of the fallback."""
        return self.reads | self.fallback.columns

    @property
    def deterministic(self) -> bool:
        """Rules are one-hot; the rest is the fallback's."""
        return self.fallback.deterministic

    def coded(self, batch: pl.DataFrame) -> Coded | None:
        """Code i for rule i, `len(rules) + c` for fallback code c; None if the fallback is not coded."""
        first = self._first_match(batch)
        unmatched = first < 0
        fallback = self.fallback.coded(self._unmatched(batch, unmatched))
        if fallback is None:
            return None
        codes = first.astype(np.int32)
        codes[unmatched] = len(self.conditions) + fallback.codes
        table = np.vstack([np.eye(len(self.actions))[list(self.chosen)], fallback.table])
        return Coded(codes=codes, table=table)

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        """One-hot rows for matched rules, the fallback's rows for the others."""
        first = self._first_match(batch)
        unmatched = first < 0
        probs = np.eye(len(self.actions))[np.asarray(self.chosen, dtype=np.int32)[first]]
        if unmatched.any():
            probs[unmatched] = self.fallback.probabilities(self._unmatched(batch, unmatched))
        return probs

    def _unmatched(self, batch: pl.DataFrame, unmatched: np.ndarray) -> pl.DataFrame:
        """The rows no rule matched, with only the columns the fallback reads (copying all is slow)."""
        columns = sorted(self.fallback.columns) or batch.columns[:1]
        return batch.select(columns).filter(pl.Series(unmatched))

    def _first_match(self, batch: pl.DataFrame) -> np.ndarray:
        """Per row, the index of the first rule whose condition is true, or -1.

        From the last rule to the first, each match overwrites the later ones': no `(n, rules)`
        array and no argmax along its rows.
        """
        first = np.full(batch.height, -1, dtype=np.int64)
        for i in reversed(range(len(self.conditions))):
            first = np.where(self._holds(batch, i), i, first)
        return first

    def _holds(self, batch: pl.DataFrame, i: int) -> np.ndarray:
        """Rule i's condition per row as bool; null counts as false."""
        where, when = f"{self.where}.rules[{i}].when", self.conditions[i]
        try:
            result = batch.select(pl.sql_expr(when).alias("holds")).to_series()
        except pl.exceptions.PolarsError as error:
            raise PolicysimError(f"{where}: cannot evaluate {when!r}: {sql_reason(error)}") from error
        if result.dtype not in (pl.Boolean, pl.Null):
            raise PolicysimError(f"{where}: must be a condition (true or false), got {result.dtype} from {when!r}")
        holds = result.cast(pl.Boolean).fill_null(False).to_numpy()
        # A condition without columns (`TRUE`) evaluates to one value: broadcast it.
        return np.broadcast_to(holds, (batch.height,)) if len(holds) == 1 else holds


def parse_condition(when: str, context: PolicyContext, *, where: str) -> frozenset[str]:
    """Parse and check one condition; return the columns it reads."""
    try:
        expr = pl.sql_expr(when)
    except pl.exceptions.PolarsError as error:
        raise InvalidConfig(f"{where}: cannot parse SQL {when!r}: {sql_reason(error)}") from error
    if _depends_on_the_batch(expr):
        raise InvalidConfig(
            f"{where}: must be computed row by row, but it aggregates over the batch "
            f"(aggregations such as AVG or COUNT, window functions), got {when!r}"
        )
    columns = frozenset(expr.meta.root_names())
    require_columns(columns, context.columns, where=where, hint=_QUOTES_HINT)
    return columns


# polars names an unsupported construct by printing its Rust syntax tree ("expression Collate { expr: ... }")
_SYNTAX_TREE = re.compile(r"\b(?P<node>[A-Z]\w*) [{(]")


def sql_reason(error: Exception) -> str:
    """Why polars refused a condition, in one line a user can read: never its Rust syntax tree."""
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else type(error).__name__
    tree = _SYNTAX_TREE.search(first)
    if tree is not None:
        return f"the SQL construct {tree['node'].upper()} is not supported in a condition"
    return first if len(first) <= 200 else first[:199] + "…"


def _depends_on_the_batch(expr: pl.Expr) -> bool:
    """Whether `expr` has a node that reads other rows (an aggregation, `len`, a window).

    Best effort on polars' JSON form of the expression: if that form cannot be
    produced, the check is skipped rather than refusing valid conditions.
    """
    try:
        tree = json.loads(expr.meta.serialize(format="json"))
    except (pl.exceptions.PolarsError, ValueError):
        return False
    return any(name in _NOT_ROW_WISE for name in _node_names(tree))


def _node_names(tree: object) -> Iterator[str]:
    """Keys and bare names in the JSON tree, skipping column names and literals (user text)."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield key
            if key not in ("Column", "Literal"):
                yield from _node_names(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _node_names(item)
    elif isinstance(tree, str):
        yield tree


@register_policy("rules", params=RulesParams)
def rules_policy(params: RulesParams, context: PolicyContext, *, where: str) -> RulesPolicy:
    """Parse and check every condition and action, then build the fallback."""
    reads: set[str] = set()
    for i, rule in enumerate(params.rules):
        reads |= parse_condition(rule.when, context, where=f"{where}.rules[{i}].when")
        require_actions([rule.action], context.actions, where=f"{where}.rules[{i}].action")
    return RulesPolicy(
        conditions=tuple(rule.when for rule in params.rules),
        chosen=tuple(context.actions.index(rule.action) for rule in params.rules),
        fallback=_fallback(params.fallback, context, where=f"{where}.fallback"),
        reads=frozenset(reads),
        actions=context.actions,
        where=where,
    )


def _fallback(fallback: str | dict[str, Any], context: PolicyContext, *, where: str) -> Policy:
    """The fallback policy: a constant action, or a nested policy table built by the registry."""
    if isinstance(fallback, str):
        require_actions([fallback], context.actions, where=where)
        return ConstantPolicy(action=context.actions.index(fallback), n_actions=len(context.actions))
    return build_policy(fallback, context, where=where)
