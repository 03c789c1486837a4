"""The decision tables of a config: `[sweep]` with its objective, `[review]` with its guardrails (SPEC §8, §11).

They are part of `RunConfig`, so they are validated with the rest of the config,
when it is loaded: a misspelt key, an unknown metric or a malformed objective
fails at `load_config`, with its TOML path. What these tables mean when a sweep
or a review runs lives with the code that runs them (`simulator.workflows.sweep`,
`simulator.decide.objective`, `simulator.decide.guardrails`).

An objective is written as a table or in the one-line grammar of `--objective`
(`parse_objective`); both validate into the same `Objective`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Literal

import numpy as np

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from simulator.errors import InvalidConfig, TableProblems, UnknownName, invalid_config
from simulator.model.value import METRIC_NAMES
from simulator.report.numbers import number

_FROZEN = ConfigDict(frozen=True, extra="forbid")


# Metrics a config adds with `[metrics.NAME]` tables, known while that config is validated (`config_metrics`).
_CONFIG_METRICS: ContextVar[frozenset[str]] = ContextVar("config_metrics", default=frozenset())


@contextmanager
def config_metrics(names: Iterable[str]) -> Iterator[None]:
    """Within the block, `[sweep]` and `[review]` may name these metrics too (a config's own `[metrics]`)."""
    token = _CONFIG_METRICS.set(frozenset(names))
    try:
        yield
    finally:
        _CONFIG_METRICS.reset(token)


def _known_metric(name: str) -> str:
    known = set(METRIC_NAMES) | _CONFIG_METRICS.get()
    if name not in known:
        raise ValueError(str(UnknownName("metric", name, known)))
    return name


# --- objective ---------------------------------------------------------------------------------------


class Constraint(BaseModel):
    """A limit on one metric, overall or in every segment."""

    model_config = _FROZEN

    metric: str
    max: float | None = None
    min: float | None = None
    scope: Literal["overall", "every_segment"] = "overall"
    # compare ci_high with max and ci_low with min (the default: a constraint the data cannot show to hold is not
    # met); false compares the point estimate, which a sweep's best-of-many choice overstates
    conservative: bool = True

    @field_validator("metric")
    @classmethod
    def _check_metric(cls, name: str) -> str:
        return _known_metric(name)

    @model_validator(mode="after")
    def _has_limit(self) -> Constraint:
        if self.max is None and self.min is None:
            raise ValueError(f"constraint on {self.metric} needs max or min")
        return self

    def describe(self, min_rows: int = 0) -> str:
        """E.g. "fraud_rate_bps ≤ 12 in every segment with ≥ 1,000 rows"."""
        bounds = [f"≤ {number(self.max)}" if self.max is not None else "", f"≥ {number(self.min)}" if self.min is not None else ""]
        text = f"{self.metric} " + " and ".join(b for b in bounds if b)
        if not self.conservative:
            text += " (point estimate)"
        if self.scope == "every_segment":
            text += " in every segment" + (f" with ≥ {min_rows:,} rows" if min_rows else "")
        return text


class Objective(BaseModel):
    """What to optimise over a sweep's grid points, and the constraints a point must meet."""

    model_config = _FROZEN

    maximize: str | None = None
    minimize: str | None = None
    constraints: tuple[Constraint, ...] = ()
    min_rows: int = Field(default=0, ge=0)  # segments with fewer rows are exempt from every_segment constraints

    @field_validator("maximize", "minimize")
    @classmethod
    def _check_metric(cls, name: str | None) -> str | None:
        return None if name is None else _known_metric(name)

    @model_validator(mode="after")
    def _one_goal(self) -> Objective:
        if (self.maximize is None) == (self.minimize is None):
            raise ValueError("set exactly one of maximize and minimize")
        return self

    @property
    def metric(self) -> str:
        """The metric being optimised."""
        return self.maximize or self.minimize or ""

    @property
    def sense(self) -> Literal["maximize", "minimize"]:
        return "maximize" if self.maximize is not None else "minimize"


def objective_from_table(table: dict[str, Any], source: str = "objective") -> Objective:
    """Validate an objective from a mapping (a TOML table); problems raise `InvalidConfig` with their key."""
    try:
        return Objective.model_validate(table)
    except ValidationError as error:
        raise invalid_config(error, source, model=Objective) from None


_OPTION = re.compile(r"^min_rows\s*=\s*(?P<value>\S+)$")
_GOAL = re.compile(r"^(?:(?P<sense>maximi[sz]e|minimi[sz]e)\s+)?(?P<metric>[A-Za-z_]\w*)$")
_CONSTRAINT = re.compile(r"^(?P<metric>[A-Za-z_]\w*)\s*(?P<op><=|>=|<|>|==|=)\s*(?P<limit>[^\s]+)(?P<words>(?:\s+\w+)*)$")
_WORDS = {"overall", "every_segment", "conservative", "estimate"}


def parse_objective(text: str, source: str = "--objective") -> Objective:
    """Parse the CLI form of an objective.

    Grammar (clauses separated by ";", blanks ignored, exactly one goal):

        goal        := [maximize | minimize] METRIC          a bare metric is maximised
        constraint  := METRIC (<= | >=) NUMBER [overall | every_segment] [estimate]
        option      := min_rows = INTEGER

    `<=` sets a max, `>=` a min; scope defaults to overall. A constraint is checked on the
    interval's bound on the unsafe side unless `estimate` says to compare the point estimate
    (`conservative`, the default, is still accepted). Example:
    `"net_value; fraud_rate_bps<=12 every_segment; auth_rate>=0.9; min_rows=1000"`.
    """
    try:
        table = objective_table(text)
    except ValueError as error:
        raise InvalidConfig(f"{source}: {error}") from None
    return objective_from_table(table, source)


def objective_table(text: str) -> dict[str, Any]:
    """The table an objective's one-line form stands for (not yet validated); a grammar error raises ValueError."""
    goals: list[tuple[str, str]] = []
    constraints: list[dict[str, Any]] = []
    table: dict[str, Any] = {}
    clauses = [c.strip() for c in text.split(";")]
    for index, clause in enumerate(clauses, start=1):
        where = f"clause {index} {clause!r}"
        if not clause:
            continue
        if option := _OPTION.match(clause):
            table["min_rows"] = _integer(option["value"], where)
        elif goal := _GOAL.match(clause):
            goals.append((_sense(goal["sense"]), goal["metric"]))
        elif limit := _CONSTRAINT.match(clause):
            constraints.append(_constraint(limit, where))
        else:
            raise ValueError(f"{where}: expected METRIC, maximize METRIC, METRIC <= NUMBER, METRIC >= NUMBER or min_rows = N")
    if len(goals) != 1:
        found = ", ".join(f"{s} {m}" for s, m in goals) or "none"
        raise ValueError(f"needs exactly one metric to maximize or minimize, got {found} in {text!r} "
                         "(a constraint needs <= or >= and a limit)")
    sense, metric = goals[0]
    return table | {sense: metric, "constraints": constraints}


def _sense(word: str | None) -> str:
    return "minimize" if word and word.startswith("minimi") else "maximize"


def _integer(value: str, where: str) -> int:
    try:
        return int(value.replace(",", "_"))
    except ValueError:
        raise ValueError(f"{where}: min_rows must be a whole number, got {value!r}") from None


def _constraint(match: re.Match[str], where: str) -> dict[str, Any]:
    if match["op"] not in ("<=", ">="):
        raise ValueError(f"{where}: use <= for a maximum or >= for a minimum, got {match['op']!r}")
    try:
        limit = float(match["limit"])
    except ValueError:
        raise ValueError(f"{where}: the limit must be a number, got {match['limit']!r}") from None
    words = match["words"].split()
    unknown = [w for w in words if w not in _WORDS]
    if (unknown or len(set(words)) != len(words) or {"overall", "every_segment"} <= set(words)
            or {"conservative", "estimate"} <= set(words)):
        raise ValueError(f"{where}: after the limit expected at most one of overall/every_segment and "
                         f"optionally estimate (or conservative, the default), got {' '.join(words)!r}")
    bound = "max" if match["op"] == "<=" else "min"
    scope = "every_segment" if "every_segment" in words else "overall"
    return {"metric": match["metric"], bound: limit, "scope": scope, "conservative": "estimate" not in words}


# --- [sweep] -----------------------------------------------------------------------------------------


class Range(BaseModel):
    """Evenly spaced thresholds from `start` to `stop` inclusive (like numpy.linspace).

    In the score's units: within [0, 1] or its `[data.score_range]`, checked when the grid is built.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: float
    stop: float
    num: int = Field(ge=1, le=100_000)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.stop < self.start:
            raise ValueError(f"stop ({self.stop:g}) must be >= start ({self.start:g})")
        return self

    def values(self) -> tuple[float, ...]:
        return tuple(float(v) for v in np.linspace(self.start, self.stop, self.num))


Threshold = Range | list[float] | float | None


class SweepConfig(BaseModel):
    """The `[sweep]` table. In a sweep of another kind than `threshold`, keys besides these are that kind's
    parameters (checked by the policy registry when the grid's policies are built); a threshold sweep has none."""

    model_config = ConfigDict(frozen=True, extra="allow")

    kind: str = "threshold"
    score: str | None = None
    challenge_above: Threshold = None
    block_above: Threshold = None
    by: str | None = None
    grid: dict[str, Range | list[float | int | str] | float | int | str] | None = None
    objective: Objective | None = None  # a table, or the `--objective` one-line form
    # Choose on one part of the log, report the chosen point on the other (docs/sweep.md): "time" reports on the
    # latest `holdout_share` of the rows, "hash" on a share drawn by transaction id, "none" reports in-sample.
    holdout: Literal["time", "hash", "none"] = "time"
    holdout_share: float = Field(default=0.5, gt=0.0, lt=1.0)

    @field_validator("objective", mode="before")
    @classmethod
    def _one_line(cls, value: Any) -> Any:
        return objective_table(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _grid(self) -> SweepConfig:
        unknown = sorted(self.model_extra or {}) if self.binned else []  # a threshold sweep has no kind parameters
        problems = [(key, str(UnknownName("[sweep] key", key, type(self).model_fields))) for key in unknown]
        if self.binned and self.score is None:
            problems.append(("score", "a threshold sweep needs the score column, e.g. score = \"fraud_score\""))
        if not self.binned and not self.grid:
            problems.append(("grid", f"a sweep of kind {self.kind!r} needs a [sweep.grid] table of parameter lists"))
        if problems:
            raise TableProblems(problems)
        return self

    @property
    def binned(self) -> bool:
        """A threshold grid: evaluated as one binned grid policy in one pass."""
        return self.kind == "threshold" and self.grid is None


# --- [review] ----------------------------------------------------------------------------------------

UPPER_LIMITS = ("max_increase", "max_relative_increase")
LOWER_LIMITS = ("min_delta", "min_relative_delta")
LIMITS = UPPER_LIMITS + LOWER_LIMITS


class Guardrail(BaseModel):
    """One `[[review.guardrails]]` table: a limit on one metric's delta, overall or in every segment."""

    model_config = _FROZEN

    metric: str
    max_increase: float | None = None
    min_delta: float | None = None
    max_relative_increase: float | None = None  # fraction of |baseline|: 0.05 = at most +5 %
    min_relative_delta: float | None = None  # fraction of |baseline|: -0.02 = at most −2 %
    scope: Literal["overall", "every_segment"] = "overall"
    min_rows: int = Field(default=0, ge=0)
    min_ess: float | None = Field(default=None, ge=0)  # on top of [estimation] min_ess (the low_ess flag)

    @field_validator("metric")
    @classmethod
    def _metric(cls, metric: str) -> str:
        return _known_metric(metric)

    @model_validator(mode="after")
    def _one_limit(self) -> Guardrail:
        given = [name for name in LIMITS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one limit of {', '.join(LIMITS)}; got {', '.join(given) or 'none'} "
                f"(write two guardrails to bound a metric twice)"
            )
        return self

    @property
    def limit_kind(self) -> str:
        """Which limit is set (exactly one is)."""
        return next(name for name in LIMITS if getattr(self, name) is not None)

    @property
    def limit_value(self) -> float:
        value = getattr(self, self.limit_kind)
        return float(value)

    @property
    def upper(self) -> bool:
        """Whether the limit bounds the delta from above."""
        return self.limit_kind in UPPER_LIMITS

    @property
    def relative(self) -> bool:
        return "relative" in self.limit_kind

    @property
    def name(self) -> str:
        return f"{self.metric} {self.limit_kind} {self.limit_value:g}"


DEFAULT_RANK_BY = "net_value"


class ReviewConfig(BaseModel):
    """The `[review]` table: which policy or policies to review, their guardrails, and how several rank.

    Exactly one of `candidate = "name"` (one policy, SPEC §8) and
    `candidates = ["a", "b", ...]` (several, reviewed in one pass against the
    same guardrails and ranked, docs/review.md "Several candidates").
    `rank_by` ("net_value", "maximize net_value" or "minimize fraud_loss")
    orders candidates of the same verdict by the pessimistic end of that
    metric's overall delta interval; it only ranks, so it needs `candidates`.
    That every candidate is one of the config's policies, and not its
    baseline, is checked by `RunConfig`, which sees both tables.
    """

    model_config = _FROZEN

    candidate: str | None = Field(default=None, min_length=1)
    candidates: tuple[str, ...] | None = None
    rank_by: str | None = None
    guardrails: tuple[Guardrail, ...] = ()

    @field_validator("rank_by")
    @classmethod
    def _rank_goal(cls, text: str | None) -> str | None:
        if text is None:
            return None
        match = _GOAL.match(text.strip())
        if match is None:
            raise ValueError(f"write a metric, 'maximize METRIC' or 'minimize METRIC'; got {text!r}")
        _known_metric(match["metric"])
        return text.strip()

    @model_validator(mode="after")
    def _one_way_to_name_candidates(self) -> ReviewConfig:
        problems: list[tuple[str, str]] = []
        if (self.candidate is None) == (self.candidates is None):
            given = "both" if self.candidate is not None else "neither"
            problems.append(("candidate", f'give exactly one of candidate = "<policy name>" and candidates = '
                                          f'["<policy name>", ...]; got {given}'))
        if self.candidates is not None and not self.candidates:
            problems.append(("candidates", "is empty; name at least one policy"))
        repeated = sorted({n for i, n in enumerate(self.candidates or ()) if n in (self.candidates or ())[:i]})
        if repeated:
            problems.append(("candidates", f"names {', '.join(map(repr, repeated))} more than once"))
        if self.rank_by is not None and self.candidates is None:
            problems.append(("rank_by", "ranks several candidates; set candidates = [...] or remove rank_by"))
        if problems:
            raise TableProblems(problems)
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """The reviewed policies, in the order of the config."""
        return self.candidates if self.candidates is not None else (self.candidate or "",)

    @property
    def several(self) -> bool:
        """Whether the table uses `candidates` (a ranked review), even with one name in it."""
        return self.candidates is not None

    @property
    def rank_metric(self) -> str:
        """The metric that orders candidates of the same verdict (default net_value)."""
        match = _GOAL.match(self.rank_by or DEFAULT_RANK_BY)
        return match["metric"] if match else DEFAULT_RANK_BY

    @property
    def rank_sense(self) -> Literal["maximize", "minimize"]:
        """maximize unless `rank_by` starts with minimize / minimise."""
        return "minimize" if (self.rank_by or "").startswith("minimi") else "maximize"
