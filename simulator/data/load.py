"""Finding and reading logged transactions, in the canonical shape every later stage expects (SPEC §2).

The input is a Parquet file, a folder of Parquet files (hive partitions
allowed: `dt=2026-01-01/part-0.parquet`), a glob, a CSV file (`.csv`,
`.csv.gz`) or several, locally or on object storage (`simulator.data.storage`).
`open_source` finds its files once and fixes their types (`Source`);
`scan_dataset` scans them lazily and `read_rows` reads one shard's rows, both
through `simulator.data.mapping.to_canonical`, so every consumer — the
validator, the summary, the plan, the policies, each shard on either engine —
reads `amount`, `allow`, UTC timestamps and a `propensity`, whatever the export
calls them.

Files are compared before they are scanned: polars would otherwise fail deep
inside `collect()` with a schema error that names neither the column the user
should fix nor, always, the file. Read errors name the file (`simulator.data.readers`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from simulator.data.logging_policy import derived_columns, logging_inputs
from simulator.data.mapping import bullets, file_columns, in_utc, renames, schema_name, to_canonical
from simulator.data.readers import csv_header, file_schema, find_unreadable, parquet_int64_max, read_errors, scan_files
from simulator.data.storage import CSV, PARQUET, absolute, data_format, list_files
from simulator.errors import InvalidData, first_line
from simulator.schema import CREATED_AT, DISPUTED_AT, Schema

__all__ = ["Source", "dataset_files", "in_utc", "latest_timestamp", "open_source", "read_rows", "reading_source",
           "scan_dataset"]


@dataclass(frozen=True, slots=True)
class Source:
    """A dataset's files, their format and their column types: found once, shipped with every shard task.

    `location` is what the user named (absolute path or URI, as messages show
    it); `files` are sorted; `hive` says partition keys in folder names
    (`key=value`) are columns; `types` are the file columns and their types
    (for CSV, the types every read uses); `file_types` each Parquet file's own,
    read from its footer once, when the source is opened.
    """

    location: str
    files: tuple[str, ...]
    format: str  # "parquet" or "csv"
    hive: bool
    types: Mapping[str, pl.DataType]
    file_types: tuple[Mapping[str, pl.DataType], ...] = ()


def dataset_files(location: str | Path) -> list[str]:
    """The data files of a dataset, sorted so every run reads them in one order (see `storage.list_files`)."""
    return list_files(str(location))[0]


def open_source(location: str | Path | Source, schema: Schema) -> Source:
    """Find the files at `location`, check they are of one format (CSV files: of one header), and fix the types.

    Every Parquet footer is read here, once; the files are compared column by column when they are
    scanned (`scan_dataset`), for the columns read.
    """
    if isinstance(location, Source):
        return location
    files, folder = list_files(str(location))
    formats = sorted({data_format(file) or "" for file in files})
    if len(formats) > 1:
        raise InvalidData(f"data path {absolute(location)} mixes Parquet and CSV files; keep one format per dataset")
    kind = formats[0]
    first = file_schema(files[0], kind, schema)
    if kind == CSV:
        _check_headers(files, first)
    others = tuple(file_schema(file, PARQUET, schema) for file in files[1:]) if kind == PARQUET else ()
    return Source(location=absolute(location), files=tuple(files), format=kind, hive=folder and kind == PARQUET,
                  types=first, file_types=(first, *others) if kind == PARQUET else ())


def scan_dataset(location: str | Path | Source, schema: Schema, columns: Iterable[str] | None = None, *,
                 audit: bool = False) -> pl.LazyFrame:
    """A lazy scan of the dataset with canonical columns and values (`simulator.data.mapping.to_canonical`).

    With `columns` (canonical names) only those are produced, and only the file
    columns they need are read; a missing one raises `InvalidData`. Without,
    every column is read and missing required columns are left for the
    validator to report together with everything else. `audit` adds the
    declared propensity of a log that has its own, for the validator.
    """
    source = open_source(location, schema)
    frame = scan_files(source.files, source.format, hive=source.hive, types=source.types)
    available = frame.collect_schema()  # the first file's columns plus hive partition keys
    renames(available, schema.rename)  # a bad mapping fails here, naming the columns
    if columns is None:
        if source.format == PARQUET:
            _check_consistent(source, None)
        return to_canonical(frame, schema, audit=audit)
    wanted = list(columns)
    needed = _file_columns(wanted, available, schema, source.location)
    if source.format == PARQUET:  # only the columns read: an unused column of another type does not block a run
        _check_consistent(source, [name for name in needed if name in source.types])
    return to_canonical(frame.select(needed), schema).select(wanted)


def read_rows(source: Source, file: str, *, offset: int, rows: int, columns: Iterable[str], schema: Schema) -> pl.DataFrame:
    """Rows `offset .. offset + rows` of one file, canonical columns `columns` only: what a shard task reads."""
    scan = scan_files([file], source.format, hive=source.hive, types=source.types)
    with reading_source(source, [file]):
        wanted = file_columns(columns, schema, scan.collect_schema())
        frame = scan.select(wanted).slice(offset, rows).collect()
    return to_canonical(frame, schema)


_EPOCH = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))  # the tzinfo polars gives UTC timestamps
_UNITS = {"us": "microseconds", "ms": "milliseconds"}  # units a Python datetime holds exactly


def latest_timestamp(source: Source, schema: Schema) -> datetime | None:
    """The latest `created_at` or `disputed_at` of a Parquet dataset, from its footers; None when they cannot say.

    This is the default as-of date, which `compile_plan` otherwise finds by reading both
    columns of every row on the driver (0.15 s on 10 M rows; at a billion rows a
    single-process pass). Exact: an INT64 timestamp's statistics are its own extreme
    values, stored as instants, which the canonical column holds in UTC (a naive
    timestamp is read as UTC). Anything else (CSV, timestamps parsed from text,
    nanoseconds, a hive key, a row group without statistics) returns None.
    """
    if source.format != PARQUET or not source.file_types:
        return None
    names = {CREATED_AT: schema.file_name(CREATED_AT), DISPUTED_AT: schema.file_name(DISPUTED_AT)}
    latest: datetime | None = None
    for file, types in zip(source.files, source.file_types, strict=True):
        wanted: dict[str, str] = {}
        for canonical, name in names.items():
            dtype = types.get(name)
            if (dtype is None and canonical == DISPUTED_AT) or (dtype is not None and dtype == pl.Null):
                continue  # no dispute dates in this file, or none set
            if not isinstance(dtype, pl.Datetime) or dtype.time_unit not in _UNITS:
                return None
            wanted[name] = dtype.time_unit
        stored = parquet_int64_max(file, list(wanted))
        if stored is None:
            return None
        for name, raw in stored.items():
            if raw is not None:
                moment = _EPOCH + timedelta(**{_UNITS[wanted[name]]: raw})
                latest = moment if latest is None else max(latest, moment)
    return latest


@contextmanager
def reading_source(source: Source, files: Iterable[str] | None = None, columns: Iterable[str] | None = None
                   ) -> Iterator[None]:
    """Turn an error while reading `files` of `source` (default: all) into `InvalidData` naming the file.

    A scan does not say which file failed, nor whether the failure was the
    data's: each file is read again on its own (`columns` of it, default all)
    to find it, which costs a pass only on failure. When every file reads, a
    polars error is not the data's but ours, and keeps its traceback; an I/O
    error (a storage that stopped answering) still names the dataset.
    """
    files = list(source.files if files is None else files)
    try:
        yield
    except Exception as error:
        if not isinstance(error, read_errors()):
            raise
        find_unreadable(files, source.format, hive=source.hive, types=source.types,
                        columns=list(columns or source.types))
        if isinstance(error, pl.exceptions.PolarsError):
            raise
        where = files[0] if len(files) == 1 else source.location
        raise InvalidData(f"cannot read {where}: {first_line(error)}") from None


def _file_columns(canonical: list[str], available: Mapping[str, pl.DataType], schema: Schema, location: str) -> list[str]:
    """File names of the columns needed for the canonical `canonical`; raises if any is absent."""
    needed = file_columns(canonical, schema, available)
    produced = {name for name in canonical if schema.file_name(name) in needed or name in _derivable(schema, available)}
    missing = [
        f"{name}: missing column (looked for {schema.file_name(name)!r} in {location})"
        for name in canonical
        if name not in produced
    ]
    if missing:
        raise InvalidData("required columns are missing:\n" + bullets(missing), problems=tuple(missing))
    return needed


def _derivable(schema: Schema, available: Iterable[str]) -> set[str]:
    """Canonical columns the declared logging policy derives from the available file columns."""
    present = {schema_name(name, schema) for name in available}
    if any(name not in present for name in logging_inputs(schema)):
        return set()
    return set(derived_columns(schema, present))


def _check_consistent(source: Source, wanted: list[str] | None) -> None:
    """Raise `InvalidData` naming file and column where a Parquet file disagrees with the first.

    Only the columns that will be read are compared (all of them when `wanted` is None), from the
    footers the source read when it was opened.
    """
    files, first = source.files, source.types
    names = list(first) if wanted is None else wanted
    problems: list[str] = []
    for file, other in zip(files[1:], source.file_types[1:], strict=True):
        for name in names:
            if name not in other:
                problems.append(f"{file}: column {name!r} is missing (present in {files[0]})")
            elif other[name] != first[name]:
                problems.append(f"{file}: column {name!r} has type {other[name]}, but {files[0]} has {first[name]}")
        if wanted is None:
            problems += [f"{file}: column {name!r} is not in {files[0]}" for name in other if name not in first]
    if problems:
        raise InvalidData("the Parquet files disagree on their columns:\n" + bullets(problems), problems=tuple(problems))


def _check_headers(files: list[str], first: Mapping[str, pl.DataType]) -> None:
    """Raise `InvalidData` naming the file where a CSV file's header differs from the first's."""
    problems = []
    for file in files[1:]:
        header = csv_header(file)
        if header != list(first):
            problems.append(f"{file}: columns {', '.join(header)}; {files[0]} has {', '.join(first)}")
    if problems:
        raise InvalidData("the CSV files disagree on their columns:\n" + bullets(problems), problems=tuple(problems))
