"""From an export's shape to the canonical one (SPEC §2): names, action values, timestamps, propensities.

The config describes a log exported by another system (`[data.columns]`,
`[data.action_values]`, `[data.timestamp_format]`, `[data.logging_policy]`);
`to_canonical` applies that description to rows as they are read, lazily, in
the one place every consumer goes through (`simulator.data.load`): the
validator, the summary, the plan, the policies and each shard on either
engine see canonical names, canonical actions, UTC timestamps and a
`propensity`, whatever the files hold. The files themselves are never
rewritten.

Scores are not rescaled: a score declared on another range
(`[data.score_range]`) keeps its units, and thresholds are written in them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

import polars as pl

from simulator.data.logging_policy import derived_columns, logging_inputs, with_logging_columns
from simulator.errors import InvalidData
from simulator.schema import ACTION, TIMESTAMP_COLUMNS, Schema

FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def to_canonical(frame: FrameT, schema: Schema, *, audit: bool = False) -> FrameT:
    """`frame` (columns as named in the files) with the config's description of the export applied.

    Renames file columns to canonical names, maps action values, parses string
    timestamps, reads naive timestamps as UTC, and derives `propensity` and
    `logging_prob_<action>` from a declared logging policy where the files lack them
    (with `audit`, also the declared propensity of a log that has one: see
    `simulator.data.logging_policy`).
    """
    names = frame.collect_schema()
    frame = frame.rename(renames(names, schema.rename), strict=False)
    frame = with_actions(frame, schema)
    frame = in_utc(with_parsed_timestamps(frame, schema))
    return with_logging_columns(frame, schema, audit=audit)


def renames(file_columns: Iterable[str], rename: Mapping[str, str]) -> dict[str, str]:
    """File name → canonical name for the renamed columns present in the files.

    Raises when a mapping names no column while the canonical one exists (the
    canonical column would silently be read instead), or when a rename would
    give two columns the same canonical name.
    """
    present = set(file_columns)
    to_canonical = {source: canonical for canonical, source in rename.items() if source != canonical and source in present}
    ignored = [
        f"{canonical}: [data.columns] maps it to {source!r}, which is not in the data, but the data has a column "
        f"{canonical!r}; fix the mapping, or remove it to use {canonical!r}"
        for canonical, source in rename.items()
        if source != canonical and source not in present and canonical in present
    ]
    if ignored:
        raise InvalidData("a column mapping names no column:\n" + bullets(ignored), problems=tuple(ignored))
    sources = list(rename.values())
    clashes = [
        f"{canonical}: the files have both {rename[canonical]!r} (renamed to {canonical!r}) and {canonical!r}"
        for canonical in to_canonical.values()
        if canonical in present and canonical not in to_canonical
    ]
    clashes += [f"{source}: named by more than one column of [data.columns]"
                for source in sorted(set(sources)) if sources.count(source) > 1]
    if clashes:
        raise InvalidData("column names clash after renaming:\n" + bullets(clashes), problems=tuple(clashes))
    return to_canonical


def file_columns(canonical: Iterable[str], schema: Schema, available: Iterable[str]) -> list[str]:
    """The file columns to read to produce the canonical columns `canonical`, in order, without repeats.

    A column derived from the declared logging policy is replaced by what the
    policy reads (and `action`); a column the files lack is left out, for the
    caller or the validator to report.
    """
    present = set(available)
    derived = derived_columns(schema, {schema_name(name, schema) for name in present})
    wanted: list[str] = []
    for name in canonical:
        sources = logging_inputs(schema) if name in derived else [name]
        wanted += [schema.file_name(source) for source in sources]
    return [name for name in dict.fromkeys(wanted) if name in present]


def schema_name(file_column: str, schema: Schema) -> str:
    """The canonical name of a file column (itself when not renamed)."""
    return next((canonical for canonical, source in schema.rename.items() if source == file_column), file_column)


def with_actions(frame: FrameT, schema: Schema) -> FrameT:
    """`action` with the files' values (`[data.action_values]`) replaced by the canonical actions.

    A value the mapping does not name is kept, so the validator reports it as
    an unknown action with the value the user wrote; a canonical name that the
    files spell otherwise (`allow` when allow is `"approve"`) is not accepted
    as itself.
    """
    if not schema.action_values or ACTION not in frame.collect_schema():
        return frame
    spelled = {schema.action_values.get(action, action): action for action in schema.actions}
    respelled = [action for action in schema.actions if action not in spelled]
    raw = pl.col(ACTION).cast(pl.String)
    unmapped = pl.concat_str(raw, pl.lit(" (not a value of [data.action_values])"))
    return frame.with_columns(pl.when(raw.is_in(respelled)).then(unmapped).otherwise(raw.replace(spelled)).alias(ACTION))


def with_parsed_timestamps(frame: FrameT, schema: Schema) -> FrameT:
    """String timestamp columns parsed: with `[data.timestamp_format]` when declared, else as ISO 8601.

    A value that does not parse becomes null, which the validator reports
    (naming the format); a column that already is a timestamp is left as it is.
    """
    types = frame.collect_schema()
    parsed = [
        (pl.col(name).str.to_datetime(schema.timestamp_formats[name], time_unit="us", strict=False)
         if name in schema.timestamp_formats else iso_8601(pl.col(name))).alias(name)
        for name in TIMESTAMP_COLUMNS
        if name in types and types[name] == pl.String
    ]
    return frame.with_columns(parsed) if parsed else frame


def iso_8601(text: pl.Expr) -> pl.Expr:
    """ISO 8601 text as UTC timestamps, value by value: with an offset or `Z`, naive (UTC), or a date alone.

    polars infers one format from the first value, so a column mixing
    `2026-01-01T00:00:00` and `2026-01-02T00:00:00Z` would lose one kind; each
    form is tried on every value instead. A space may stand for the `T`.
    """
    value = text.str.replace(" ", "T", literal=True, n=1)
    zoned = value.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="us", time_zone="UTC", strict=False)
    naive = value.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False)
    day = value.str.to_datetime("%Y-%m-%d", time_unit="us", strict=False)
    return pl.coalesce(zoned, naive.dt.replace_time_zone("UTC"), day.dt.replace_time_zone("UTC"))


def in_utc(frame: FrameT) -> FrameT:
    """Timestamps in UTC, as the engine compares them: naive ones are read as UTC, zoned ones converted.

    Done wherever rows enter (scans, shards, in-memory frames), so data written
    with local zones or without one gives the same results as UTC data.
    """
    types = frame.collect_schema()
    fixes = []
    for name in TIMESTAMP_COLUMNS:
        dtype = types.get(name)
        if isinstance(dtype, pl.Datetime) and dtype.time_zone != "UTC":
            column = pl.col(name)
            fixes.append(column.dt.replace_time_zone("UTC") if dtype.time_zone is None
                         else column.dt.convert_time_zone("UTC"))
    return frame.with_columns(fixes) if fixes else frame


def bullets(lines: list[str]) -> str:
    """One indented bullet per line, for multi-problem messages."""
    return "\n".join(f"  - {line}" for line in lines)
