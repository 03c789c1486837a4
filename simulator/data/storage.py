"""Where data files live: local paths and object storage (`s3://`, `gs://`, `az://`) (SPEC §2).

A dataset location is a file, a directory (searched recursively) or a glob,
locally or as a URI. This module lists its data files, sorted so every run
reads them in one order, skipping the debris writers leave (names starting
with `.` or `_`: `_SUCCESS`, `_temporary/`, `.crc` files), and reads the few
bytes the driver needs without reading rows (file sizes and tails, for
Parquet footers and fingerprints), through pyarrow's filesystems. Rows are read
by polars, which reads the same URIs with its own object-store client.

Credentials come from the environment, as polars and pyarrow read them
(`AWS_*`, `GOOGLE_*`, `AZURE_*`); nothing here takes a key. `storage_environment`
names those variables so that a joined Ray cluster's workers can be given the
driver's (`simulator.engine.ray_engine`).
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterable
from pathlib import Path

from simulator.errors import InvalidData

PARQUET = "parquet"
CSV = "csv"
SUFFIXES: dict[str, tuple[str, ...]] = {PARQUET: (".parquet",), CSV: (".csv", ".csv.gz")}
# Spark, Hive and friends leave `_SUCCESS`, `_metadata`, `.part-0.crc` or `_temporary/` beside the data.
IGNORED_PREFIXES: tuple[str, ...] = (".", "_")
SCHEMES: tuple[str, ...] = ("s3", "gs", "az")
GLOB_CHARACTERS = "*?["
# Environment variables through which polars and pyarrow find object-storage endpoints and credentials.
CREDENTIAL_PREFIXES: tuple[str, ...] = ("AWS_", "GOOGLE_", "GCS_", "AZURE_")
AZURE_ACCOUNT = "AZURE_STORAGE_ACCOUNT_NAME"


def is_uri(location: str) -> bool:
    """Whether `location` names object storage (`s3://bucket/key`, `gs://...`, `az://container/...`)."""
    scheme, separator, _ = str(location).partition("://")
    return bool(separator) and scheme in SCHEMES


def absolute(location: str | Path) -> str:
    """`location` as messages show it: a URI as given, a local path made absolute (not resolving symlinks)."""
    text = os.fspath(location)
    return text if is_uri(text) else os.path.normpath(Path(text).absolute())


def data_format(file: str) -> str | None:
    """`parquet` or `csv` from a file name's suffix, None for anything else."""
    name = file.lower()
    return next((kind for kind, suffixes in SUFFIXES.items() if name.endswith(suffixes)), None)


def is_glob(location: str) -> bool:
    return any(character in location for character in GLOB_CHARACTERS)


def list_files(location: str) -> tuple[list[str], bool]:
    """The data files at `location` (absolute paths or URIs, sorted), and whether it named a folder or a glob.

    A single file must be Parquet or CSV; a folder or glob keeps the files with
    a data suffix and no hidden or bookkeeping part below the folder. An
    existing path is never read as a glob (a `[` in a name is literal).
    """
    location = absolute(location)
    remote = is_uri(location)
    kind = _remote_kind(location) if remote else _local_kind(location)
    if kind == "file":
        if data_format(location) is None:
            raise InvalidData(f"data path {location} is not a Parquet file (.parquet) or a CSV file (.csv, .csv.gz)")
        return [location], False
    if kind == "missing" and not is_glob(location):
        raise InvalidData(f"data path {location} does not exist")
    if kind == "folder":
        base, candidates = location, _remote_walk(location) if remote else _local_walk(location)
    else:
        base = _glob_base(location)
        candidates = [f for f in (_remote_walk(base) if remote else _local_glob(location)) if fnmatch.fnmatchcase(f, location)]
    files = sorted(f for f in candidates if data_format(f) is not None and not _is_ignored(f, base))
    if not files:
        what = "data directory" if kind == "folder" else "data path pattern"
        raise InvalidData(f"{what} {location} holds no .parquet files (nor .csv or .csv.gz files)")
    return files, True


def _is_ignored(file: str, base: str) -> bool:
    """Whether any part of `file` below `base` is hidden or bookkeeping."""
    relative = file[len(base):].lstrip("/").split("/")
    return any(part.startswith(IGNORED_PREFIXES) for part in relative)


def _glob_base(pattern: str) -> str:
    """The folder above a glob's first wildcard: where to start listing."""
    head = pattern[: min(pattern.index(c) for c in GLOB_CHARACTERS if c in pattern)]
    return head.rsplit("/", 1)[0]


def _local_kind(path: str) -> str:
    return "file" if os.path.isfile(path) else "folder" if os.path.isdir(path) else "missing"


def _local_walk(folder: str) -> list[str]:
    return [str(p) for p in Path(folder).rglob("*") if p.is_file()]


def _local_glob(pattern: str) -> list[str]:
    return [p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p)]


# --- object storage --------------------------------------------------------------------------------------------


def _filesystem(uri: str):  # type: ignore[no-untyped-def]
    """pyarrow's filesystem for a URI and the path inside it; errors name the location."""
    import pyarrow.fs as pafs

    scheme, _, rest = uri.partition("://")
    try:
        if scheme == "az":  # pyarrow knows abfs:// URLs only; az://container/path needs the account from the env
            return pafs.AzureFileSystem(account_name=os.environ.get(AZURE_ACCOUNT, "")), rest
        return pafs.FileSystem.from_uri(uri)
    except (OSError, ValueError) as error:
        raise InvalidData(f"cannot open {uri}: {error}") from None


def _remote_kind(uri: str) -> str:
    import pyarrow.fs as pafs

    fs, path = _filesystem(uri)
    try:
        kind = fs.get_file_info(path).type
    except OSError as error:
        raise InvalidData(f"cannot read {uri}: {error}") from None
    return {pafs.FileType.File: "file", pafs.FileType.Directory: "folder"}.get(kind, "missing")


def _remote_walk(uri: str) -> list[str]:
    import pyarrow.fs as pafs

    fs, path = _filesystem(uri)
    scheme = uri.partition("://")[0]
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    except OSError as error:
        raise InvalidData(f"cannot list {uri}: {error}") from None
    return [f"{scheme}://{info.path}" for info in infos if info.type == pafs.FileType.File]


def file_size(file: str) -> int:
    """The size of a data file in bytes."""
    if not is_uri(file):
        return os.path.getsize(file)
    fs, path = _filesystem(file)
    return int(fs.get_file_info(path).size or 0)


def read_tail(file: str, size: int, length: int) -> bytes:
    """The last `length` bytes of a file of `size` bytes (a Parquet footer lives there)."""
    start = max(0, size - length)
    if not is_uri(file):
        with open(file, "rb") as handle:
            handle.seek(start)
            return handle.read()
    fs, path = _filesystem(file)
    with fs.open_input_file(path) as handle:
        return handle.read_at(size - start, start)


def open_input(file: str):  # type: ignore[no-untyped-def]
    """Something pyarrow's readers accept for `file`: the local path, or an open remote file."""
    if not is_uri(file):
        return file
    fs, path = _filesystem(file)
    return fs.open_input_file(path)


def storage_environment(files: Iterable[str]) -> dict[str, str]:
    """The driver's object-storage variables when any file is remote (else none), for workers on other machines."""
    if not any(is_uri(file) for file in files):
        return {}
    return {key: value for key, value in os.environ.items() if key.startswith(CREDENTIAL_PREFIXES)}
