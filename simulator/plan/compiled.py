"""The compiled plan of a run: everything a shard needs, decided once on the driver.

Data-dependent choices (the as-of date, top-k segment values, whether the data
carries the logging policy's full distribution) are made here from lazy
aggregates, so that every shard computes the same thing and the driver never
holds rows. A plan is small, frozen and picklable: it is what Ray ships.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np
import polars as pl

from policies.base import Policy
from policies.registry import PolicyContext, build_policy
from segments.plan import SegmentPlan, plan_segments
from segments.spec import required_columns
from simulator.config import RunConfig
from simulator.model.direct import DirectMethod, fit_direct_method
from simulator.errors import InvalidConfig, InvalidData, UnknownName
from simulator.estimate.estimators import estimator_kind, estimator_warnings
from simulator.estimate.strata import stratified_terms
from simulator.schema import (
    ACTION,
    AMOUNT,
    AUTHORIZED,
    CREATED_AT,
    DISPUTE_LOST,
    DISPUTED_AT,
    FRAUD_DISPUTE,
    LOGGED,
    PRODUCTION,
    PROPENSITY,
    TRANSACTION_ID,
    logging_prob_column,
)
from simulator.model.maturity import Development, develop_labels
from simulator.model.value import ValueSet, maturity_cutoff
from simulator.plan.changes import Changes
from simulator.plan.moments import Term


@dataclass(frozen=True, slots=True)
class PlannedPolicy:
    """A policy with its name and how the engine weights its rows.

    `table` is set when the policy is finitely coded (its distribution is one
    of `table`'s rows, chosen per row by a code): such a policy's weight is
    constant within a statistics cell. Otherwise its weights are per row.
    """

    name: str
    policy: Policy
    table: np.ndarray | None

    @property
    def logging(self) -> bool:
        return self.policy.logging

    @property
    def coded(self) -> bool:
        return self.table is not None and not self.policy.logging


@dataclass(frozen=True, slots=True)
class Binned:
    """Bootstrap replicate sums kept per (segment, code of `coding`, code of `outer`, logged action).

    Replicate totals are otherwise kept per policy term; a coding whose totals are
    sums over ranges of codes (the bins of a threshold grid) needs them per code.
    `moments` are (basis, value column) pairs. `outer`, when set, is the coded
    baseline whose action splits the stratified estimator's strata
    (`simulator.plan.strata`): its code is kept too.
    """

    coding: str
    moments: tuple[tuple[str, str], ...]
    outer: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    """What to compute, for every shard alike."""

    actions: tuple[str, ...]
    policies: tuple[PlannedPolicy, ...]  # the logging policy first, production when it is the baseline, then the config's
    baseline: str  # resolved: a policy of `policies`
    segments: SegmentPlan
    values: ValueSet  # the value columns and metrics (`simulator.model.value`)
    as_of: datetime
    label_maturity_days: int
    cutoff: datetime | None  # None: every row's fraud label counts as mature
    logging_probs: bool  # the data has logging_prob_<action> for every action
    bootstrap: int
    seed: int
    finite: bool  # design-based (finite-population) uncertainty, see simulator.estimate.estimators
    direct: DirectMethod | None  # the DR outcome model, fitted on the whole dataset
    columns: frozenset[str]  # canonical columns a shard reads
    warnings: tuple[str, ...] = ()  # what every output must say about this plan (e.g. which baseline and why)
    # Only the rows matching this (canonical columns it reads must be in `columns`) enter the statistics:
    # a sweep chooses on one part of the log and reports on the other (`simulator.workflows.sweep`).
    rows: pl.Expr | None = None
    # Coded policies that only refine the cells: shards key their sums by these codes too and compute
    # the sums their terms need, but no result is reported for them; whoever added one reads its
    # totals (a threshold grid: `simulator.plan.grid`).
    codings: tuple[PlannedPolicy, ...] = ()
    binned: Binned | None = None  # replicate sums kept per code of one coding (see `Binned`)
    stratified: bool = False  # the estimator post-stratifies (`simulator.plan.strata`): shards add its sums
    strata_terms: tuple[Term, ...] = ()  # every stratified total the reported policies' estimates read
    # `immature_labels = "develop"`: the dispute-delay curve and each fraud row's weight; `cutoff` is then
    # the youngest age it develops (None: labels are excluded by `cutoff` or included raw).
    development: Development | None = None
    immature_labels: str = "exclude"  # the mode in effect (develop falls back to exclude without delays)
    changes: Changes | None = None  # decision changes to collect (`simulator.plan.changes`); None: none

    def policy(self, name: str) -> PlannedPolicy:
        """The planned policy (or coding) called `name`."""
        return next(p for p in (*self.policies, *self.codings) if p.name == name)

    @property
    def per_row(self) -> tuple[PlannedPolicy, ...]:
        """Policies whose weights vary within a cell (neither coded nor logging)."""
        return tuple(p for p in self.policies if not p.coded and not p.logging)

    @property
    def coded(self) -> tuple[PlannedPolicy, ...]:
        """Every policy and coding whose code is a cell key."""
        return tuple(p for p in (*self.policies, *self.codings) if p.coded)


BASE_COLUMNS = frozenset(
    {TRANSACTION_ID, CREATED_AT, AMOUNT, ACTION, PROPENSITY, AUTHORIZED, FRAUD_DISPUTE, DISPUTE_LOST}
)


def data_as_of(data: pl.LazyFrame, names: set[str]) -> datetime:
    """The latest timestamp in the data: the default as-of date of the labels."""
    stamps = [pl.col(CREATED_AT).max()]
    if DISPUTED_AT in names:
        stamps.append(pl.col(DISPUTED_AT).max())
    row = data.select(pl.max_horizontal(stamps).alias("as_of")).collect()
    value = row.item()
    if value is None:
        raise InvalidData("created_at: no timestamps in the data (is it empty?)")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _planned(name: str, policy: Policy, empty: pl.DataFrame) -> PlannedPolicy:
    coded = None if policy.logging else policy.coded(empty)
    return PlannedPolicy(name=name, policy=policy, table=None if coded is None else coded.table)


def _direct_method(config: RunConfig, data: pl.LazyFrame, names: set[str], cutoff: datetime | None,
                   development: Development | None) -> DirectMethod:
    """Fit the DR outcome model on the configured score columns."""
    estimation = config.estimation
    if estimation.population != "finite" and estimation.bootstrap:
        # superpopulation replicates would hold the direct-method part fixed, and it carries most of DR's variance
        raise InvalidConfig(f"estimation.bootstrap: {estimation.estimator!r} has no superpopulation bootstrap yet; "
                            "set bootstrap = 0 (analytic intervals from the per-row DR scores) "
                            "or population = \"finite\"")
    missing = [s for s in estimation.dr_scores if s not in names]
    if missing:
        raise UnknownName("DR score column", missing[0], sorted(names))
    bins = tuple([estimation.dr_bins] + [max(2, estimation.dr_bins // 4)] * (len(estimation.dr_scores) - 1))
    develop = None if development is None else development.weight_expr()
    return fit_direct_method(data, estimation.dr_scores, bins, config.data.actions, config.values(), cutoff, develop)


NO_PRODUCTION = (
    "baseline: the data has no logging_prob_<action> columns, so production (the logging policy without its "
    "exploration) cannot be identified; deltas are against 'logged', the logging policy with its exploration, "
    "so they include the effect of switching the exploration off"
)


def resolve_baseline(chosen: str | None, logging_probs: bool) -> tuple[str, tuple[str, ...]]:
    """The baseline a run compares with, and the warnings every output carries about it.

    Unset, it is production whenever the data identifies it (the logging probabilities of
    every action), else the logging policy itself, with a warning.
    """
    if chosen is not None:
        return chosen, ()
    return (PRODUCTION, ()) if logging_probs else (LOGGED, (NO_PRODUCTION,))


def compile_plan(config: RunConfig, data: pl.LazyFrame, *, as_of: datetime | None = None) -> Plan:
    """Build every policy, plan segments and fix the data-dependent settings.

    `as_of` is the data's as-of date when the caller already knows it (validation
    computes it); otherwise the config's, or one more scan of the timestamps.
    """
    schema = data.collect_schema()
    names = set(schema.names())
    actions = config.data.actions
    values = config.values()
    values.check(schema)
    context = PolicyContext(actions=actions, columns=frozenset(names), score_ranges=config.data.schema().score_ranges)
    empty = data.head(0).collect()
    logging_probs = all(logging_prob_column(a) in names for a in actions)
    baseline, warnings = resolve_baseline(config.baseline.policy, logging_probs)
    planned = [_planned(LOGGED, build_policy({"kind": LOGGED}, context, where="baseline"), empty)]
    if baseline == PRODUCTION:
        planned.append(_planned(PRODUCTION, build_policy({"kind": PRODUCTION}, context, where="baseline.policy"), empty))
    for index, table in enumerate(config.policies):
        policy = build_policy(table.params(), context, where=f"policies[{index}]")
        planned.append(_planned(table.name, policy, empty))
    segment_plan = plan_segments(config.segments, data)
    as_of = config.data.as_of or as_of or data_as_of(data, names)
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    mode, development, cutoff, label_warnings = label_maturity(config, data, names, as_of)
    warnings = warnings + label_warnings + estimator_warnings(config.estimation.estimator)
    columns = set(BASE_COLUMNS) | required_columns(config.segments) | values.reads()
    for p in planned:
        columns |= p.policy.columns
    if logging_probs:
        columns |= {logging_prob_column(a) for a in actions}
    direct = None
    if estimator_kind(config.estimation.estimator).outcome_model:
        direct = _direct_method(config, data, names, cutoff, development)
        columns |= set(direct.scores)
    plan = Plan(
        actions=actions,
        policies=tuple(planned),
        baseline=baseline,
        warnings=warnings,
        segments=segment_plan,
        values=values,
        as_of=as_of,
        label_maturity_days=config.data.label_maturity_days,
        cutoff=cutoff,
        logging_probs=logging_probs,
        bootstrap=config.estimation.bootstrap,
        seed=config.estimation.seed,
        finite=config.estimation.population == "finite",
        direct=direct,
        columns=frozenset(columns),
        development=development,
        immature_labels=mode,
    )
    if estimator_kind(config.estimation.estimator).stratified:
        plan = replace(plan, stratified=True, strata_terms=stratified_terms(plan))
    return plan


def label_maturity(config: RunConfig, data: pl.LazyFrame, names: set[str], as_of: datetime
                   ) -> tuple[str, Development | None, datetime | None, tuple[str, ...]]:
    """The label mode in effect, its development (if any), the maturity cutoff and warnings.

    "develop" needs observed dispute delays (`disputed_at`); without them it falls back to
    "exclude", with a warning in every output.
    """
    mode = config.data.immature_labels
    window = maturity_cutoff(as_of, config.data.label_maturity_days)
    if mode == "include":
        return mode, None, None, ()
    if mode == "exclude":
        return mode, None, window, ()
    development, warnings = develop_labels(data, names, as_of)
    if development is None:
        return "exclude", None, window, warnings
    return mode, development, development.cutoff, warnings
