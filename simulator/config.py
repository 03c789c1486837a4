"""Run configuration: typed, frozen and validated once (SPEC §11).

A config is read from TOML with `tomllib`, validated by pydantic models
(`frozen=True, extra="forbid"`), and then cannot be invalid: every table,
`[sweep]` and `[review]` included (`simulator.config_tables`), and the checks
across tables (the baseline and the review candidate name policies) run when it
is loaded. A variant (CLI overrides, a sweep's grid points) is derived with
`derive`, which validates the changed tables again. Policies are kept as their
raw tables here and built by the policy registry (which owns each kind's
parameters) when a plan is compiled, with TOML paths in messages.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from segments.spec import SegmentSpec
from segments.windows import window_unit
from simulator.config_tables import ReviewConfig, SweepConfig, config_metrics
from policies.registry import PolicyContext, build_policy
from simulator.errors import (InvalidConfig, PolicysimError, TableProblems, UnknownName, problems_message,
                             validation_problems)
from simulator.estimate.estimators import known_estimators
from simulator.model.value import MetricTable, ValueModel, ValueSet, value_set
from simulator.data.logging_policy import EXPLORATION, build_logging_policy
from simulator.data.storage import is_uri
from simulator.schema import (
    DEFAULT_ACTIONS,
    LOGGED,
    PRODUCTION,
    RENAMEABLE_COLUMNS,
    TIMESTAMP_COLUMNS,
    LoggingPolicy,
    Schema,
)

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class DataConfig(BaseModel):
    """Where the logged transactions are, and how the files describe them (SPEC §2).

    `path` is a local path (a relative one is resolved against the config file's
    folder by `load_config`) or an object-storage URI (`s3://`, `gs://`, `az://`).
    `columns`, `action_values`, `score_range` and `timestamp_format` describe an
    export of another shape; `logging_policy` declares the policy that logged it,
    for logs without propensities (or to audit the ones they have).
    """

    model_config = _FROZEN

    path: str | None = None
    actions: tuple[str, ...] = DEFAULT_ACTIONS
    columns: dict[str, str] = Field(default_factory=dict)  # canonical name -> name in the files
    action_values: dict[str, str] = Field(default_factory=dict)  # canonical action -> value in the files
    score_range: dict[str, tuple[float, float]] = Field(default_factory=dict)  # score (name in the files) -> [low, high]
    timestamp_format: dict[str, str] = Field(default_factory=dict)  # canonical timestamp -> strftime format
    logging_policy: dict[str, Any] | None = None  # a policy table of SPEC §4 plus `exploration`
    as_of: datetime | None = None
    label_maturity_days: int = Field(default=90, ge=0)
    # develop: weight observed fraud by 1 / P(dispute arrived by as_of) (simulator.model.maturity);
    # exclude: fraud metrics cover rows older than label_maturity_days; include: raw labels of every row.
    immature_labels: Literal["develop", "exclude", "include"] = "develop"

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, path: Any) -> Any:
        return os.fspath(path) if isinstance(path, os.PathLike) else path  # a Path from a notebook

    @field_validator("actions")
    @classmethod
    def _actions(cls, actions: tuple[str, ...]) -> tuple[str, ...]:
        if len(actions) < 2 or len(set(actions)) != len(actions):
            raise ValueError(f"needs at least two distinct actions, got {list(actions)}")
        return actions

    @field_validator("columns")
    @classmethod
    def _columns(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(columns) - set(RENAMEABLE_COLUMNS))
        if unknown:
            raise ValueError(
                f"only these columns can be renamed: {', '.join(RENAMEABLE_COLUMNS)}; got {unknown} "
                "(score, segment and logging_prob_<action> columns keep their names)"
            )
        return columns

    @field_validator("score_range")
    @classmethod
    def _score_range(cls, ranges: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for name, (low, high) in ranges.items():
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise TableProblems([(name, f"needs [low, high] with low < high, got [{low:g}, {high:g}]")])
        return ranges

    @field_validator("timestamp_format")
    @classmethod
    def _timestamp_format(cls, formats: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(formats) - set(TIMESTAMP_COLUMNS))
        if unknown:
            raise ValueError(f"keys are canonical timestamp columns ({', '.join(TIMESTAMP_COLUMNS)}), got {unknown}")
        empty = [name for name, text in formats.items() if "%" not in text]
        if empty:
            raise TableProblems([(empty[0], f"a strftime format such as \"%Y-%m-%d %H:%M:%S\", got {formats[empty[0]]!r}")])
        return formats

    @model_validator(mode="after")
    def _action_values(self) -> DataConfig:
        unknown = sorted(set(self.action_values) - set(self.actions))
        if unknown:
            raise TableProblems([("action_values", f"keys are actions of the action set ({', '.join(self.actions)}), "
                                             f"got {unknown}")])
        values = [self.action_values.get(action, action) for action in self.actions]
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated or "" in values:
            raise TableProblems([("action_values", f"each action needs its own non-empty value in the files, "
                                             f"got {repeated or ['']} for several")])
        return self

    @model_validator(mode="after")
    def _logging_policy(self) -> DataConfig:
        table = self.logging_policy
        if table is None:
            return self
        if EXPLORATION not in table:
            raise TableProblems([(f"logging_policy.{EXPLORATION}",
                            "missing: the share of decisions drawn uniformly over the actions (0 if it never explored)")])
        exploration = table[EXPLORATION]
        if isinstance(exploration, bool) or not isinstance(exploration, int | float) or not 0 <= exploration <= 1:
            raise TableProblems([(f"logging_policy.{EXPLORATION}", f"must be a number in [0, 1], got {exploration!r}")])
        if table.get("kind") in (LOGGED, PRODUCTION):
            raise TableProblems([("logging_policy.kind", f"{table['kind']!r} is defined by the logging policy; "
                                                   "declare the rules it applied (threshold, rules, ...)")])
        return self

    def declared_logging_policy(self) -> LoggingPolicy | None:
        """The `[data.logging_policy]` table split into the policy table and its exploration."""
        if self.logging_policy is None:
            return None
        table = {key: value for key, value in self.logging_policy.items() if key != EXPLORATION}
        return LoggingPolicy(table=table, exploration=float(self.logging_policy[EXPLORATION]))

    def schema(self, score_columns: tuple[str, ...] = ()) -> Schema:
        """The data contract this config expects, with the shape of the files it describes."""
        return Schema(
            actions=self.actions,
            score_columns=score_columns,
            rename=dict(self.columns),
            action_values=dict(self.action_values),
            score_ranges={name: (float(low), float(high)) for name, (low, high) in self.score_range.items()},
            timestamp_formats=dict(self.timestamp_format),
            logging_policy=self.declared_logging_policy(),
        )


class Estimation(BaseModel):
    """Which estimator, how sure, and the diagnostics thresholds."""

    model_config = _FROZEN

    estimator: str = "snipw"  # a name of the estimator registry (simulator.estimate.estimators)
    # finite: what would have happened on these very payments (uncertainty from the
    # logging policy's randomisation only); superpopulation: on traffic like them.
    population: Literal["finite", "superpopulation"] = "superpopulation"
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    bootstrap: int = Field(default=0, ge=0, le=10_000)
    seed: int = 0
    min_ess: float = Field(default=30.0, ge=0)
    dr_scores: tuple[str, ...] = Field(default=("fraud_score", "auth_score"), min_length=1)
    dr_bins: int = Field(default=20, ge=2, le=200)  # quantile bins of the first DR score (others get a quarter)

    @field_validator("estimator")
    @classmethod
    def _estimator(cls, name: str) -> str:
        if name not in known_estimators():
            raise ValueError(str(UnknownName("estimator", name, known_estimators())))
        return name


class Baseline(BaseModel):
    """The policy every candidate is compared with, row by row.

    Unset, it is `production` (the logging policy without its exploration: what the business
    runs) whenever the data identifies it, and `logged` otherwise, with a warning in every
    output that deltas then include the exploration. `"logged"`, `"production"` or the name
    of a `[[policies]]` table chooses it explicitly.
    """

    model_config = _FROZEN

    policy: str | None = None


class PolicyTable(BaseModel):
    """One `[[policies]]` table: a name, a kind and the kind's parameters."""

    model_config = ConfigDict(frozen=True, extra="allow")

    name: str = Field(min_length=1)
    kind: str = Field(min_length=1)

    def params(self) -> dict[str, Any]:
        """The table without its name: what the policy registry validates."""
        return {"kind": self.kind, **(self.model_extra or {})}


class RunConfig(BaseModel):
    """A whole run: data, value model, segments, estimation, baseline and policies."""

    model_config = _FROZEN

    data: DataConfig = DataConfig()
    value_model: ValueModel = ValueModel()
    metrics: dict[str, MetricTable] = {}  # `[metrics.NAME]`: new or replaced metrics (SPEC §3)
    segments: SegmentSpec = SegmentSpec()
    estimation: Estimation = Estimation()
    baseline: Baseline = Baseline()
    policies: tuple[PolicyTable, ...] = ()
    sweep: SweepConfig | None = None
    review: ReviewConfig | None = None

    @model_validator(mode="after")
    def _value_set(self) -> RunConfig:
        """The value model and the metrics fit together (ratios name sum metrics, values do not read in a cycle)."""
        value_set(self.value_model, self.metrics, self.data.actions)
        return self

    def values(self) -> ValueSet:
        """The run's value columns and metrics (`simulator.model.value.ValueSet`)."""
        return value_set(self.value_model, self.metrics, self.data.actions)

    @field_validator("policies")
    @classmethod
    def _policy_names(cls, policies: tuple[PolicyTable, ...]) -> tuple[PolicyTable, ...]:
        """Names are unique and leave `logged` and `production` to the built-in baselines."""
        problems: list[tuple[str, str]] = []
        names = [p.name for p in policies]
        for index, name in enumerate(names):
            if name in (LOGGED, PRODUCTION):
                problems.append((f"[{index}].name", f"{name!r} names the logging policy's own baseline; "
                                                    "choose another policy name"))
            elif name in names[:index]:
                problems.append((f"[{index}].name", f"{name!r} is already the name of policies[{names.index(name)}]; "
                                                    "policy names must be unique"))
        if problems:
            raise TableProblems(problems)
        return policies

    @model_validator(mode="after")
    def _cross_tables(self) -> RunConfig:
        """Names one table gives another: the baseline, the review candidate, a sweep's `by` (all reported at once)."""
        names = [p.name for p in self.policies]
        problems: list[tuple[str, str]] = []
        if self.baseline.policy not in (None, LOGGED, PRODUCTION, *names):
            problems.append(("baseline.policy", f"{self.baseline.policy!r} is neither 'production', 'logged' "
                                                f"nor a policy name {names}"))
        if self.review is not None:
            problems += _review_names(self.review, names, self.baseline.policy)
        if self.sweep is not None and self.sweep.by is not None and self.sweep.by in self.segments.bands:
            problems.append(("sweep.by", f"{self.sweep.by!r} is banded; per-value thresholds need a categorical column"))
        if self.sweep is not None and self.sweep.by is not None and window_unit(self.sweep.by) is not None:
            problems.append(("sweep.by", f"{self.sweep.by!r} is a time window; per-value thresholds need a column "
                                         "future payments have a value of (a past window never recurs)"))
        if problems:
            raise TableProblems(problems)
        return self


def _review_names(review: ReviewConfig, names: list[str], baseline: str | None) -> list[tuple[str, str]]:
    """Every reviewed name is a policy of the config and not the baseline (each problem at its key)."""
    keys = [f"review.candidates[{i}]" for i in range(len(review.names))] if review.several else ["review.candidate"]
    problems: list[tuple[str, str]] = []
    for key, name in zip(keys, review.names):
        if name not in names:
            problems.append((key, str(UnknownName("policy", name, names))))
        elif name == baseline:
            problems.append((key, f"{name!r} is the baseline; review another policy"))
    return problems


def parse_config(table: Mapping[str, Any], source: str = "config") -> RunConfig:
    """Validate a config from a mapping (TOML tables, or built in a notebook).

    Problems raise `InvalidConfig` with the TOML path and the value, as the CLI reports them.

    Example::

        config = parse_config({
            "segments": {"by": [["card_country"], ["card_funding"]]},
            "policies": [{"name": "stricter", "kind": "threshold", "score": "fraud_score",
                          "challenge_above": 0.4, "block_above": 0.7}],
        })
    """
    problems: list[str] = []
    config = None
    declared = table.get("metrics")
    try:
        with config_metrics(declared if isinstance(declared, Mapping) else ()):
            config = RunConfig.model_validate(dict(table))
    except ValidationError as error:
        problems.extend(validation_problems(error, model=RunConfig))
    problems.extend(policy_problems(table))
    if config is not None:
        problems.extend(logging_policy_problems(config))
    if problems or config is None:
        raise InvalidConfig(problems_message(source, problems))
    return config


def logging_policy_problems(config: RunConfig) -> list[str]:
    """What is wrong with `[data.logging_policy]`, checked by the policy registry like `[[policies]]`."""
    schema = config.data.schema()
    if schema.logging_policy is None:
        return []
    try:
        build_logging_policy(schema.logging_policy, schema, columns=None)
    except (InvalidConfig, UnknownName) as error:
        return str(error).splitlines()
    return []


def policy_problems(table: Mapping[str, Any]) -> list[str]:
    """What is wrong with the `[[policies]]` tables, found by building each policy without the data.

    The policy registry validates a kind's parameters, actions and SQL conditions (thresholds
    against a declared `[data.score_range]`); columns are checked against the data when a plan
    is compiled. Run at load, so a misspelt kind or parameter is reported with every other
    config problem, before any data is read.
    """
    policies = table.get("policies")
    if not isinstance(policies, (list, tuple)):
        return []  # not a list of tables: the config's own validation says so
    context = PolicyContext(actions=_actions(table), columns=None, score_ranges=_score_ranges(table))
    problems: list[str] = []
    for index, policy in enumerate(policies):
        if not isinstance(policy, Mapping) or "kind" not in policy:
            continue  # a missing kind or name is the config's own validation's
        params = {key: value for key, value in policy.items() if key != "name"}
        try:
            build_policy(params, context, where=f"policies[{index}]")
        except PolicysimError as error:
            problems.extend(str(error).splitlines())
    return problems


def _actions(table: Mapping[str, Any]) -> tuple[str, ...]:
    """The configured action set when it is a list of names, else the default (its own problems are reported)."""
    data = table.get("data")
    actions = data.get("actions", DEFAULT_ACTIONS) if isinstance(data, Mapping) else DEFAULT_ACTIONS
    if isinstance(actions, (list, tuple)) and all(isinstance(a, str) for a in actions) and len(actions) >= 2:
        return tuple(actions)
    return DEFAULT_ACTIONS


def _score_ranges(table: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """The declared `[data.score_range]` where it is well formed (its own problems are reported)."""
    data = table.get("data")
    ranges = data.get("score_range", {}) if isinstance(data, Mapping) else {}
    if not isinstance(ranges, Mapping):
        return {}
    out = {}
    for name, bounds in ranges.items():
        if isinstance(bounds, (list, tuple)) and len(bounds) == 2 and all(isinstance(v, (int, float)) for v in bounds):
            out[str(name)] = (float(bounds[0]), float(bounds[1]))
    return out


def load_config(path: Path) -> RunConfig:
    """Read and validate a TOML config file (docs/config.md).

    A relative `[data] path` is resolved against the config file's folder, so a
    config runs the same from any working directory.

    Example::

        config = load_config(Path("configs/thresholds.toml"))
        [p.name for p in config.policies]     # ['block_more', 'more_3ds', ...]
    """
    try:
        text = path.read_text()
    except OSError as error:
        raise InvalidConfig(f"cannot read config {path}: {error.strerror}") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidConfig(f"{path}: not valid TOML: {error}") from None
    return parse_config(_with_data_path_from(table, path.parent), str(path))


def _with_data_path_from(table: dict[str, Any], folder: Path) -> dict[str, Any]:
    """`table` with a relative local `[data] path` made absolute against `folder` (URIs are left alone)."""
    data = table.get("data")
    location = data.get("path") if isinstance(data, dict) else None
    if not isinstance(location, str) or is_uri(location) or Path(location).is_absolute():
        return table
    return {**table, "data": {**data, "path": os.path.normpath(folder.absolute() / location)}}


def derive(config: RunConfig, changes: Mapping[str, Any], source: str) -> RunConfig:
    """A variant of `config`, validated again: the tables in `changes` replaced, or merged key by key.

    A table given as a mapping updates that table's keys (`{"estimation": {"seed": 3}}`:
    CLI > TOML > default); any other value replaces the table (`{"policies": [...]}`,
    `{"sweep": None}`). Never `model_copy(update=...)`, which skips validation.

    Example::

        derive(config, {"estimation": {"seed": 3}}, source="--seed")
    """
    table = config.model_dump(mode="python", exclude_unset=False)
    table["policies"] = [p.model_dump() for p in config.policies]  # with each kind's parameters (extra keys)
    for section, value in changes.items():
        current = table.get(section)
        merge = isinstance(value, Mapping) and isinstance(current, Mapping)
        table[section] = {**current, **value} if merge else value  # type: ignore[dict-item]
    return parse_config(table, source)
