"""Reading a dataset's files into polars: Parquet and CSV, typed by the data contract (SPEC §2).

Parquet files carry their types. CSV files do not, and types guessed from the
first rows go wrong on real exports (an outcome column empty for its first
thousand rows would be read as text), so the columns SPEC §2 names are read
with the contract's type, found through `[data.columns]`: identifiers, actions
and timestamps as text (timestamps are parsed later, `simulator.data.mapping`),
amounts, propensities, scores and `logging_prob_<action>` as float64, outcomes
as booleans. Any other column (segments, features) is typed from the whole
file, once, on the driver; every later read, on any worker, uses those types.

Every read error — a truncated or corrupt file, a CSV value that is not of its
column's type, an unreachable bucket — becomes `InvalidData` naming the file,
so the CLI exits 2 with a message instead of a traceback, on either engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import polars as pl

from simulator.data.storage import CSV, open_input
from simulator.errors import InvalidData, first_line
from simulator.schema import (
    ACTION,
    AMOUNT,
    AUTHORIZED,
    CREATED_AT,
    DISPUTE_LOST,
    DISPUTED_AT,
    FRAUD_DISPUTE,
    LOGGING_PROB_PREFIX,
    PROPENSITY,
    SCORE_SUFFIX,
    TRANSACTION_ID,
    Schema,
)

CONTRACT_TYPES: dict[str, pl.DataType] = {
    TRANSACTION_ID: pl.String(),  # ids are identifiers: "007" stays "007"
    CREATED_AT: pl.String(),
    DISPUTED_AT: pl.String(),
    ACTION: pl.String(),
    AMOUNT: pl.Float64(),
    PROPENSITY: pl.Float64(),
    AUTHORIZED: pl.Boolean(),
    FRAUD_DISPUTE: pl.Boolean(),
    DISPUTE_LOST: pl.Boolean(),
}


def read_errors() -> tuple[type[BaseException], ...]:
    """What a reader raises when a file cannot be read (pyarrow imported only when a read fails)."""
    import pyarrow as pa

    return (pl.exceptions.PolarsError, OSError, pa.ArrowException)


@contextmanager
def reading(file: str) -> Iterator[None]:
    """Turn any error reading `file` into `InvalidData` naming it, with the reader's first line of explanation."""
    try:
        yield
    except Exception as error:
        if not isinstance(error, read_errors()):
            raise
        raise InvalidData(f"cannot read {file}: {first_line(error)}") from None


def csv_header(file: str) -> list[str]:
    """A CSV file's column names, in order (only its first line is read)."""
    with reading(file):
        return list(pl.scan_csv(file, infer_schema=False).collect_schema())


def csv_types(header: Sequence[str], schema: Schema) -> dict[str, pl.DataType]:
    """The contract's types of the CSV columns SPEC §2 names, keyed by their names in the file."""
    from_file = {schema.file_name(name): name for name in CONTRACT_TYPES}
    types: dict[str, pl.DataType] = {}
    for column in header:
        if column in from_file:
            types[column] = CONTRACT_TYPES[from_file[column]]
        elif column.startswith(LOGGING_PROB_PREFIX) or column.endswith(SCORE_SUFFIX) or column in schema.score_ranges:
            types[column] = pl.Float64()
    return types


def csv_schema(file: str, schema: Schema) -> dict[str, pl.DataType]:
    """Every column of a CSV file with the type each read will use: the contract's, else inferred from the whole file."""
    header = csv_header(file)
    with reading(file):
        declared = csv_types(header, schema)
        inferred = pl.scan_csv(file, schema_overrides=declared, infer_schema_length=None).collect_schema()
    return {name: declared.get(name, inferred[name]) for name in header}


def file_schema(file: str, data_format: str, schema: Schema) -> dict[str, pl.DataType]:
    """The columns of one file and their types, from its footer (Parquet) or header and contents (CSV)."""
    if data_format == CSV:
        return csv_schema(file, schema)
    with reading(file):
        return dict(pl.read_parquet_schema(file))


def scan_files(files: Sequence[str], data_format: str, *, hive: bool,
               types: Mapping[str, pl.DataType] | None) -> pl.LazyFrame:
    """A lazy scan of `files` as they are (file column names); CSV with the given `types` for every column."""
    if data_format == CSV:
        return pl.scan_csv(list(files), schema=dict(types or {}), glob=False)
    return pl.scan_parquet(list(files), hive_partitioning=hive, glob=False, extra_columns="ignore")


def parquet_row_groups(file: str) -> list[int]:
    """The number of rows of each row group of a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    with reading(file):
        metadata = pq.ParquetFile(open_input(file)).metadata
        return [metadata.row_group(index).num_rows for index in range(metadata.num_row_groups)]


def parquet_int64_max(file: str, columns: Sequence[str]) -> dict[str, int | None] | None:
    """Each column's largest stored value (INT64), from the footer's row-group statistics, without reading a row.

    A column whose every value is null maps to None. Returns None when any row group
    lacks exact statistics for a column, or a column is not stored as INT64: the caller
    then reads the column instead.
    """
    import pyarrow.parquet as pq

    with reading(file):
        metadata = pq.ParquetFile(open_input(file)).metadata
    paths = {metadata.schema.column(index).path: index for index in range(metadata.num_columns)}
    if any(name not in paths for name in columns):
        return None
    out: dict[str, int | None] = {}
    for name in columns:
        largest: int | None = None
        for group in range(metadata.num_row_groups):
            chunk = metadata.row_group(group).column(paths[name])
            stats = chunk.statistics
            if chunk.physical_type != "INT64" or stats is None:
                return None
            if not stats.has_min_max:
                if stats.has_null_count and stats.null_count == chunk.num_values:
                    continue  # every value of this row group is null
                return None
            largest = stats.max_raw if largest is None else max(largest, stats.max_raw)
        out[name] = largest
    return out


def csv_rows(file: str, types: Mapping[str, pl.DataType]) -> int:
    """The number of data rows of a CSV file (one pass that splits lines, parsing no value)."""
    with reading(file):
        return int(pl.scan_csv(file, schema=dict(types)).select(pl.len()).collect().item())


def find_unreadable(files: Sequence[str], data_format: str, *, hive: bool, types: Mapping[str, pl.DataType] | None,
                    columns: Sequence[str]) -> None:
    """Raise `InvalidData` for the first file whose `columns` cannot be read; after a scan of many failed.

    A diagnosis, run only on that failure: a scan of many files does not say
    which one it could not read.
    """
    for file in files:
        with reading(file):
            scan_files([file], data_format, hive=hive, types=types).select(columns).collect()
