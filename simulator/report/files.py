"""Atomic output: a reader never sees a half-written file or directory.

Everything is written to a temporary path beside the target (same directory,
so the final rename stays on one filesystem) and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from simulator.data.storage import file_size, read_tail


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary file path beside `target`; rename it into place on success.

    The path does not exist yet: the writer creates the file, so it gets the
    permissions of the user's umask (`tempfile.mkstemp` would make it 0600, and
    the rename would keep that). On any exception the temporary file is removed
    and `target` is untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(target: Path, write: Callable[[Path], None]) -> Path:
    """Run `write(tmp_path)` and move the result to `target`."""
    with atomic_path(target) as tmp:
        write(tmp)
    return target


def write_parquet(frame: pl.DataFrame, target: Path) -> Path:
    """Write a frame to Parquet atomically."""
    return write_atomic(target, lambda tmp: frame.write_parquet(tmp))


def write_json(payload: Any, target: Path) -> Path:
    """Write JSON (sorted keys, ISO dates via `default=str`) atomically."""
    text = json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"
    return write_atomic(target, lambda tmp: tmp.write_text(text))


def write_text(text: str, target: Path) -> Path:
    """Write a text file atomically."""
    return write_atomic(target, lambda tmp: tmp.write_text(text))


def write_bytes(data: bytes, target: Path) -> Path:
    """Write bytes (e.g. a PNG) atomically."""
    return write_atomic(target, lambda tmp: tmp.write_bytes(data))


def parquet_footer_digest(files: Sequence[str | Path], root: str | Path) -> str:
    """A fingerprint of a dataset: each file's path below `root`, size and last 64 KiB (a Parquet footer).

    The footer holds row counts, offsets and column statistics, so any change to
    the data changes it, while hashing it costs nothing next to reading the data.
    (For a CSV file the tail is its last rows: with the size, a fingerprint, not a proof.)
    Files may be local paths or object-storage URIs.
    """
    digest = hashlib.sha256()
    base = os.fspath(root).rstrip("/") + "/"
    for file in map(os.fspath, files):
        size = file_size(file)
        name = file[len(base):] if file.startswith(base) else file.rsplit("/", 1)[-1]
        digest.update(f"{name}\0{size}\0".encode())
        digest.update(read_tail(file, size, _FOOTER_BYTES))
    return digest.hexdigest()


_FOOTER_BYTES = 1 << 16
