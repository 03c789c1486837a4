"""What a valid dataset of logged transactions holds (SPEC §2).

`policysim validate` prints it and every run records it, so a user sees the
rows, the action mix, the outcome rates, the as-of date and the label maturity
window before trusting any estimate. The summary is a set of aggregations
evaluated in the validator's pass over the data (`summary_exprs`,
`summary_queries`), then assembled here (`summarise`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Literal

import polars as pl

from simulator.data.logging_policy import AUDIT_TOLERANCE, DECLARED, audit_by_segment, audit_exprs
from simulator.schema import (
    ACTION,
    AMOUNT,
    AUTHORIZED,
    BLOCK,
    CREATED_AT,
    DISPUTE_LOST,
    DISPUTED_AT,
    FRAUD_DISPUTE,
    LOGGING_PROB_PREFIX,
    PROPENSITY,
    REQUIRED_COLUMNS,
    Schema,
    logging_prob_column,
)

BPS = 10_000
UTC_DATETIME = pl.Datetime("us", "UTC")
TEXT_TYPES: tuple[type[pl.DataType], ...] = (pl.String, pl.Categorical, pl.Enum)


@dataclass(frozen=True, slots=True)
class ScoreRange:
    """Minimum, maximum and mean of one score column."""

    min: float
    max: float
    mean: float


@dataclass(frozen=True, slots=True)
class SegmentAudit:
    """A segment value where logged propensities disagree with the declared logging policy."""

    column: str
    value: str | None
    rows: int
    disagree: int

    @property
    def share(self) -> float:
        return self.disagree / self.rows


@dataclass(frozen=True, slots=True)
class PropensityAudit:
    """Logged propensities against `[data.logging_policy]`: how many rows disagree, by how much, and where.

    `rows` were compared (both probabilities known), `disagree` differ by more
    than `tolerance`; `worst` are the segment values (holding at least 1 % of
    the rows) with the largest share of disagreeing rows, at most five per
    segment column, worst first.
    """

    rows: int
    disagree: int
    max_gap: float | None
    tolerance: float
    worst: tuple[SegmentAudit, ...] = ()

    @property
    def share(self) -> float:
        return self.disagree / self.rows if self.rows else 0.0

    def describe(self) -> str:
        """One line for `policysim validate`: the share that disagrees and the worst segments."""
        if not self.disagree:
            return f"all {self.rows:,} logged propensities agree with the declared logging policy (± {self.tolerance:g})"
        worst = ", ".join(f"{w.column}={w.value} {w.share:.1%} ({w.disagree:,} of {w.rows:,})" for w in self.worst[:3])
        return (f"{self.disagree:,} of {self.rows:,} rows ({self.share:.2%}) differ from the declared logging policy by more "
                f"than {self.tolerance:g} (largest gap {self.max_gap:.4g}); worst: {worst or 'n/a'}")


@dataclass(frozen=True, slots=True)
class DataSummary:
    """What a valid dataset holds, for `policysim validate` and run metadata.

    Rates are None when their denominator is 0. `auth_rate` is over non-blocked
    rows; `fraud_rate_bps_count` / `_volume` are fraud disputes per authorized
    payment, by count / by amount, in basis points; `dispute_lost_share` is lost
    disputes over fraud disputes. `immature_rows` were created within
    `label_maturity_days` before `as_of` (UTC). `segments` maps every string,
    categorical or integer column that SPEC §2 does not name to its number of
    distinct values (null counts as one).
    """

    rows: int
    files: int
    actions: Mapping[str, int]
    propensity_min: float
    propensity_max: float
    auth_rate: float | None
    fraud_rate_bps_count: float | None
    fraud_rate_bps_volume: float | None
    dispute_lost_share: float | None
    created_at_min: datetime
    created_at_max: datetime
    as_of: datetime
    label_maturity_days: int
    immature_rows: int
    scores: Mapping[str, ScoreRange] = field(default_factory=dict)
    segments: Mapping[str, int] = field(default_factory=dict)
    has_logging_probs: bool = False
    derived: tuple[str, ...] = ()  # columns derived from [data.logging_policy]
    audit: PropensityAudit | None = None  # logged propensities against [data.logging_policy]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values: timestamps as ISO 8601 strings, score ranges as dicts."""
        return {item.name: _jsonable(getattr(self, item.name)) for item in fields(self)}

    def display_rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for a table, in reading order."""
        by_count, by_volume = _format(self.fraud_rate_bps_count), _format(self.fraud_rate_bps_volume)
        derived = " (derived from the declared logging policy)"  # no brackets: tables render rich markup
        rows = [
            ("rows", f"{self.rows:,} in {self.files:,} {'file' if self.files == 1 else 'files'}"),
            ("actions", ", ".join(f"{name} {count:,}" for name, count in self.actions.items())),
            ("propensity", f"{self.propensity_min:.4g} to {self.propensity_max:.4g}"
                           + (derived if PROPENSITY in self.derived else "")),
            ("auth_rate", _format(self.auth_rate, 100, " %")),
            ("fraud_rate_bps", f"{by_count} by count, {by_volume} by volume"),
            ("dispute_lost_share", _format(self.dispute_lost_share, 100, " %")),
            ("created_at", f"{self.created_at_min:%Y-%m-%d %H:%M} to {self.created_at_max:%Y-%m-%d %H:%M} UTC"),
            ("as_of", f"{self.as_of:%Y-%m-%d %H:%M} UTC"),
            (f"immature labels (< {self.label_maturity_days} days)", f"{self.immature_rows:,} rows"),
        ]
        rows += [(name, f"{r.min:.3f} to {r.max:.3f}, mean {r.mean:.3f}") for name, r in self.scores.items()]
        rows.append(("segments", ", ".join(f"{name} ({count:,})" for name, count in self.segments.items()) or "none"))
        probs_derived = any(name.startswith(LOGGING_PROB_PREFIX) for name in self.derived)
        rows.append(("logging_prob_<action>", ("present" if self.has_logging_probs else "absent")
                     + (derived if probs_derived else "")))
        if self.audit is not None:
            rows.append(("propensity audit", self.audit.describe()))
        return rows


def _format(value: float | None, scale: float = 1.0, unit: str = "") -> str:
    """A rate for display, `n/a` when undefined."""
    return "n/a" if value is None else f"{value * scale:.2f}{unit}"


def _jsonable(value: object) -> object:
    """`value` with datetimes, mappings and score ranges made JSON-serialisable."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, ScoreRange):
        return {"min": value.min, "max": value.max, "mean": value.mean}
    if isinstance(value, PropensityAudit | SegmentAudit):
        return {item.name: _jsonable(getattr(value, item.name)) for item in fields(value)} | {"share": value.share}
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _jsonable(item) for key, item in value.items()}
    return value


def utc_timestamp(name: str, columns: pl.Schema) -> pl.Expr:
    """Timestamp column `name` in UTC, microseconds; naive timestamps are taken to be UTC already."""
    dtype = columns[name]
    column = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        column = column.dt.replace_time_zone("UTC") if dtype.time_zone is None else column.dt.convert_time_zone("UTC")
    return column.cast(UTC_DATETIME)


def segment_columns(columns: pl.Schema, schema: Schema) -> list[str]:
    """String, categorical and integer columns that SPEC §2 does not name."""
    known = {*REQUIRED_COLUMNS, DISPUTED_AT, *schema.resolved_scores(list(columns))}
    return [
        name
        for name, dtype in columns.items()
        if name not in known
        and not name.startswith(LOGGING_PROB_PREFIX)
        and (dtype.base_type() in TEXT_TYPES or dtype.is_integer())
    ]


def summary_exprs(columns: pl.Schema, schema: Schema, as_of: datetime | None) -> dict[str, pl.Expr]:
    """Named aggregations behind a `DataSummary`, for the validator's main pass; columns present and well typed."""
    action = pl.col(ACTION).cast(pl.String)
    authorized, fraud, lost = (
        pl.col(name).cast(pl.Boolean).fill_null(False) for name in (AUTHORIZED, FRAUD_DISPUTE, DISPUTE_LOST)
    )
    amount = pl.col(AMOUNT).cast(pl.Float64)
    created = utc_timestamp(CREATED_AT, columns)
    exprs = {f"action:{name}": (action == name).sum() for name in schema.actions}
    exprs |= {
        "propensity_min": pl.col(PROPENSITY).min().cast(pl.Float64),
        "propensity_max": pl.col(PROPENSITY).max().cast(pl.Float64),
        "not_blocked": (action != BLOCK).sum(),
        "authorized": authorized.sum(),
        "authorized_volume": amount.filter(authorized).sum(),
        "fraud": fraud.sum(),
        "fraud_volume": amount.filter(fraud).sum(),
        "lost": lost.sum(),
        "created_at_min": created.min(),
        "created_at_max": created.max(),
        "as_of": _as_of(columns, as_of),
    }
    for name in schema.resolved_scores(list(columns)):
        score = pl.col(name).cast(pl.Float64)
        exprs |= {f"min:{name}": score.min(), f"max:{name}": score.max(), f"mean:{name}": score.mean()}
    if DECLARED in columns:
        exprs |= audit_exprs()
    return exprs


def summary_queries(
    frame: pl.LazyFrame, columns: pl.Schema, schema: Schema, as_of: datetime | None, maturity_days: int
) -> dict[str, pl.LazyFrame]:
    """Named 1×1 queries behind a `DataSummary` that must not join the main pass.

    Distinct counts, and comparisons of every row with an aggregate (the
    immature rows, created after `as_of` minus the window), made the streaming
    engine hold every column of the main pass in memory (2.3 GB at 10M rows);
    alone, each holds at most the columns it reads.
    """
    created = utc_timestamp(CREATED_AT, columns)
    immature = (created > _as_of(columns, as_of) - pl.duration(days=maturity_days)).sum()
    queries = {"immature_rows": frame.select(immature)}
    queries |= {
        f"segment:{name}": frame.select(pl.col(name)).unique().select(pl.len())
        for name in segment_columns(columns, schema)
    }
    if DECLARED in columns:
        queries |= audit_by_segment(frame, segment_columns(columns, schema))
    return queries


SummaryMerge = Literal["sum", "min", "max"]


def shard_summary_exprs(columns: pl.Schema, schema: Schema, as_of: datetime, maturity_days: int
                        ) -> dict[str, tuple[pl.Expr, SummaryMerge]]:
    """The summary's aggregations over one shard, each with how shards' values combine (`merge_summary_parts`).

    The same aggregations as `summary_exprs` and the immature rows of `summary_queries`, in a
    mergeable form: a mean is kept as its sum and count, and the immature rows are counted
    against `as_of`, which a run knows before it reads the rows. The distinct counts of
    segment columns are the caller's (sets of values, `simulator.data.shard_checks`).
    """
    parts: dict[str, tuple[pl.Expr, SummaryMerge]] = {}
    for name, expr in summary_exprs(columns, schema, as_of).items():
        if name.startswith("mean:"):
            score = pl.col(name.removeprefix("mean:")).cast(pl.Float64)
            parts[f"sum:{name.removeprefix('mean:')}"] = (score.sum(), "sum")
            parts[f"count:{name.removeprefix('mean:')}"] = (score.count(), "sum")
        elif name.startswith("audit:"):
            raise ValueError("the propensity audit is not summarised per shard")  # a bug: callers check DECLARED
        elif name.endswith("_min") or name.startswith("min:"):
            parts[name] = (expr, "min")
        elif name.endswith("_max") or name.startswith("max:") or name == "as_of":
            parts[name] = (expr, "max")
        else:  # counts and volumes
            parts[name] = (expr, "sum")
    created = utc_timestamp(CREATED_AT, columns)
    parts["immature_rows"] = ((created > _as_of(columns, as_of) - pl.duration(days=maturity_days)).sum(), "sum")
    return parts


def merge_summary_parts(parts: Sequence[Mapping[str, Any]], rules: Mapping[str, SummaryMerge]) -> dict[str, Any]:
    """The values `summarise` reads, from every shard's `shard_summary_exprs` values (nulls ignored by min and max).

    Sums of floats are added in shard order, so a volume can differ from the one-pass
    validator's in its last bits.
    """
    out: dict[str, Any] = {}
    for name, rule in rules.items():
        values = [part[name] for part in parts]
        if rule == "sum":
            out[name] = sum(value for value in values if value is not None)
        else:
            present = [value for value in values if value is not None]
            out[name] = (min(present) if rule == "min" else max(present)) if present else None
    for name in [n for n in rules if n.startswith("sum:")]:
        score = name.removeprefix("sum:")
        count = out.pop(f"count:{score}")
        total = out.pop(name)
        out[f"mean:{score}"] = total / count if count else None
    return out


def _as_of(columns: pl.Schema, as_of: datetime | None) -> pl.Expr:
    """`as_of` as a UTC literal, or by default the latest created_at or disputed_at."""
    if as_of is not None:
        return pl.lit(_as_utc(as_of)).cast(UTC_DATETIME)
    latest = utc_timestamp(CREATED_AT, columns).max()
    if DISPUTED_AT in columns:
        latest = pl.max_horizontal(latest, utc_timestamp(DISPUTED_AT, columns).max())
    return latest


def summarise(
    values: Mapping[str, Any], columns: pl.Schema, schema: Schema, *, files: int, label_maturity_days: int,
    derived: frozenset[str] = frozenset(),
) -> DataSummary:
    """The `DataSummary` from the collected `summary_exprs` and `summary_queries` (plus `rows`)."""
    scores = {
        name: ScoreRange(values[f"min:{name}"], values[f"max:{name}"], values[f"mean:{name}"])
        for name in schema.resolved_scores(list(columns))
    }
    return DataSummary(
        rows=values["rows"],
        files=files,
        actions={name: values[f"action:{name}"] for name in schema.actions},
        propensity_min=values["propensity_min"],
        propensity_max=values["propensity_max"],
        auth_rate=_ratio(values["authorized"], values["not_blocked"]),
        fraud_rate_bps_count=_ratio(values["fraud"], values["authorized"], BPS),
        fraud_rate_bps_volume=_ratio(values["fraud_volume"], values["authorized_volume"], BPS),
        dispute_lost_share=_ratio(values["lost"], values["fraud"]),
        created_at_min=values["created_at_min"],
        created_at_max=values["created_at_max"],
        as_of=values["as_of"],
        label_maturity_days=label_maturity_days,
        immature_rows=values["immature_rows"],
        scores=scores,
        segments={name: values[f"segment:{name}"] for name in segment_columns(columns, schema)},
        has_logging_probs=all(logging_prob_column(action) in columns for action in schema.actions),
        derived=tuple(sorted(derived)),
        audit=_audit(values, columns, schema),
    )


def _entries(value: Any) -> list[dict[str, Any]]:
    """The rows of an imploded side query (a list, or a polars Series of structs)."""
    if value is None:
        return []
    return list(value.to_list() if isinstance(value, pl.Series) else value)


def _audit(values: Mapping[str, Any], columns: pl.Schema, schema: Schema) -> PropensityAudit | None:
    """The propensity audit from the collected `audit_exprs` and `audit_by_segment`, when there was one."""
    if DECLARED not in columns:
        return None
    worst = [
        SegmentAudit(column=name, value=entry["value"], rows=entry["rows"], disagree=entry["disagree"])
        for name in segment_columns(columns, schema)
        for entry in _entries(values[f"audit_segment:{name}"])
    ]
    worst.sort(key=lambda w: (-w.share, -w.disagree, w.column))
    return PropensityAudit(rows=values["audit:compared"], disagree=values["audit:disagree"],
                           max_gap=values["audit:max_gap"], tolerance=AUDIT_TOLERANCE, worst=tuple(worst[:10]))


def _as_utc(moment: datetime) -> datetime:
    """`moment` in UTC; a naive datetime (a TOML local date-time) is taken to be UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _ratio(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    """numerator / denominator, times `scale`; None when the denominator is 0."""
    return None if not denominator else numerator / denominator * scale
