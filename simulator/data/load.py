"""Finding and scanning logged transactions (SPEC §2).

The input is a Parquet file or a directory of Parquet files, possibly hive
partitioned (`dt=2026-01-01/part-0.parquet`). This module turns that path into
one lazy polars scan whose columns carry the canonical names of SPEC §2, so
every later stage reads `amount` whatever the files call it.

Files are compared before they are scanned: polars would otherwise fail deep
inside `collect()` with a schema error that names neither the column the user
should fix nor, always, the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypeVar

import polars as pl

from simulator.errors import InvalidData
from simulator.schema import CREATED_AT, DISPUTED_AT, Schema

PARQUET_SUFFIX = ".parquet"
# Spark, Hive and friends leave `_SUCCESS`, `_metadata`, `.part-0.crc` or
# `_temporary/` beside the data; none of it is data.
IGNORED_PREFIXES: tuple[str, ...] = (".", "_")


def dataset_files(path: Path) -> list[Path]:
    """The Parquet files of a dataset, sorted so every run reads them in one order.

    `path` is a Parquet file or a directory searched recursively; hidden and
    bookkeeping entries (names starting with `.` or `_`, at any depth) and
    non-Parquet files are ignored.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidData(f"data path {path} does not exist")
    if path.is_file():
        if path.suffix != PARQUET_SUFFIX:
            raise InvalidData(
                f"data path {path} is not a Parquet file (expected a *{PARQUET_SUFFIX} file or a directory)"
            )
        return [path]
    files = sorted(
        candidate
        for candidate in path.rglob(f"*{PARQUET_SUFFIX}")
        if candidate.is_file() and not _is_ignored(candidate.relative_to(path))
    )
    if not files:
        raise InvalidData(f"data directory {path} holds no {PARQUET_SUFFIX} files")
    return files


def _is_ignored(relative: Path) -> bool:
    """Whether any part of a path inside the dataset directory is hidden or bookkeeping."""
    return any(part.startswith(IGNORED_PREFIXES) for part in relative.parts)


def scan_dataset(path: Path, schema: Schema, columns: Iterable[str] | None = None) -> pl.LazyFrame:
    """A lazy scan of the dataset at `path` with canonical column names.

    Columns are renamed from their file names to canonical names per
    `schema.rename` (canonical → file name). With `columns` (canonical names)
    only those are read; a missing one raises `InvalidData`. Without, every
    column is read and missing required columns are left for the validator to
    report together with everything else.
    """
    files = dataset_files(Path(path))
    frame = pl.scan_parquet(
        files,
        hive_partitioning=Path(path).is_dir(),
        glob=False,  # paths are already expanded; `[` in a name is not a pattern
        extra_columns="raise" if columns is None else "ignore",
    )
    available = frame.collect_schema()  # the first file's columns plus hive partition keys
    to_canonical = _renames(available, schema.rename)
    wanted = None if columns is None else _file_columns(list(columns), available, to_canonical, Path(path))
    first = pl.read_parquet_schema(files[0])
    _check_consistent(files, first, None if wanted is None else [name for name in wanted if name in first])
    if wanted is not None:
        frame = frame.select(wanted)
    return in_utc(frame.rename(to_canonical, strict=False))


FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


def in_utc(frame: FrameT) -> FrameT:
    """Timestamps in UTC, as the engine compares them: naive ones are read as UTC, zoned ones converted.

    Done wherever rows enter (scans, shards, in-memory frames), so data written
    with local zones or without one gives the same results as UTC data.
    """
    schema = frame.collect_schema()
    fixes = []
    for name in (CREATED_AT, DISPUTED_AT):
        dtype = schema.get(name)
        if isinstance(dtype, pl.Datetime) and dtype.time_zone != "UTC":
            column = pl.col(name)
            fixes.append(column.dt.replace_time_zone("UTC") if dtype.time_zone is None
                         else column.dt.convert_time_zone("UTC"))
    return frame.with_columns(fixes) if fixes else frame


def _renames(file_schema: Mapping[str, pl.DataType], rename: Mapping[str, str]) -> dict[str, str]:
    """File name → canonical name for the renamed columns present in the files.

    Raises when a rename would give two columns the same canonical name.
    """
    to_canonical = {
        source: canonical for canonical, source in rename.items() if source != canonical and source in file_schema
    }
    ignored = [
        f"{canonical}: [data.columns] maps it to {source!r}, which is not in the data, but the data has a column "
        f"{canonical!r}; fix the mapping, or remove it to use {canonical!r}"
        for canonical, source in rename.items()
        if source != canonical and source not in file_schema and canonical in file_schema
    ]
    if ignored:  # using the unmapped column would silently read the wrong one
        raise InvalidData("a column mapping names no column:\n" + _bullets(ignored), problems=tuple(ignored))
    sources = list(rename.values())
    clashes = [
        f"{canonical}: the files have both {rename[canonical]!r} (renamed to {canonical!r}) and {canonical!r}"
        for canonical in to_canonical.values()
        if canonical in file_schema and canonical not in to_canonical
    ]
    clashes += [
        f"{source}: named by more than one column of [data.columns]"
        for source in sorted(set(sources))
        if sources.count(source) > 1
    ]
    if clashes:
        raise InvalidData("column names clash after renaming:\n" + _bullets(clashes), problems=tuple(clashes))
    return to_canonical


def _file_columns(
    canonical: list[str],
    file_schema: Mapping[str, pl.DataType],
    to_canonical: Mapping[str, str],
    path: Path,
) -> list[str]:
    """File names of the requested canonical columns; raises if any is absent from `path`."""
    from_canonical = {target: source for source, target in to_canonical.items()}
    names = [from_canonical.get(name, name) for name in canonical]
    missing = [
        f"{name}: missing column (looked for {source!r} in {path})"
        for name, source in zip(canonical, names, strict=True)
        if source not in file_schema
    ]
    if missing:
        raise InvalidData("required columns are missing:\n" + _bullets(missing), problems=tuple(missing))
    return names


def _check_consistent(files: list[Path], first: Mapping[str, pl.DataType], wanted: list[str] | None) -> None:
    """Raise `InvalidData` naming file and column where a file disagrees with the first.

    Only the columns that will be read are compared (all of them when `wanted`
    is None), so an unused column of another type does not block a run.
    """
    names = list(first) if wanted is None else wanted
    problems: list[str] = []
    for file in files[1:]:
        other = pl.read_parquet_schema(file)
        for name in names:
            if name not in other:
                problems.append(f"{file}: column {name!r} is missing (present in {files[0]})")
            elif other[name] != first[name]:
                problems.append(f"{file}: column {name!r} has type {other[name]}, but {files[0]} has {first[name]}")
        if wanted is None:
            problems += [f"{file}: column {name!r} is not in {files[0]}" for name in other if name not in first]
    if problems:
        raise InvalidData(
            "the Parquet files disagree on their columns:\n" + _bullets(problems), problems=tuple(problems)
        )


def _bullets(lines: list[str]) -> str:
    """One indented bullet per line, for multi-problem messages."""
    return "\n".join(f"  - {line}" for line in lines)
