"""Output folders: checked before any work, built beside the target, swapped in whole at the end.

Every command that writes (`run`, `sweep`, `review`, `generate`, `demo`) writes one
folder. So that a folder never mixes the files of two runs and a reader never
sees half of one:

- `check_output_folder` refuses, before any data is read, a folder that is a
  file, that holds the run's own input, that is not empty (unless `overwrite`),
  or that cannot be written (it creates and removes a staging folder to find out);
- `staged_folder` yields a new sibling folder to write into and, when the block
  ends without an error, puts it in the target's place: the previous contents,
  whichever command wrote them, are replaced whole. On an error the target is
  left untouched.

`overwrite` only ever replaces a folder of policysim outputs (one with a
`summary.json` or `generation.json` that policysim wrote, or only such folders
inside, as `demo` writes); anything else is refused rather than deleted, so a
mistyped `--out ~ --overwrite` cannot remove a home folder.

Folders are created with `os.mkdir` and files by their writers, so both get the
permissions of the user's umask (not the 0700/0600 of `tempfile`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from simulator.errors import InvalidConfig

_STAGING = "policysim-tmp"  # in the names of staging folders: .{target}.policysim-tmp-{token}
_OLD = "policysim-old"
_SHOWN_ENTRIES = 3


def check_output_folder(out: Path, *, overwrite: bool, inputs: Iterable[str | Path] = ()) -> Path:
    """The absolute output folder, or `InvalidConfig` saying why it cannot be used; writes nothing that stays.

    `inputs` (the data, the config) must not be inside it: replacing the folder would delete them.
    """
    target = Path(os.path.abspath(out))
    if target.exists() and not target.is_dir():
        raise InvalidConfig(f"output folder {target}: exists and is a file; choose a folder")
    for source in inputs:
        if _inside(source, target):
            raise InvalidConfig(f"output folder {target}: holds the input {source}; choose another folder")
    entries = sorted(p.name for p in target.iterdir()) if target.is_dir() else []
    if entries and not overwrite:
        raise InvalidConfig(f"output folder {target}: not empty ({_entries(entries)}); pass --overwrite to "
                            "replace its contents, or choose a new or empty folder")
    if entries and not is_policysim_output(target):
        raise InvalidConfig(f"output folder {target}: holds files policysim did not write ({_entries(entries)}); "
                            "--overwrite only replaces a folder of policysim outputs; choose another folder")
    shutil.rmtree(_new_sibling(target, _STAGING))  # can the folder be created and written? (e.g. not under /proc)
    return target


@contextmanager
def staged_folder(out: Path, *, overwrite: bool, inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield a new folder to write every output into; on success it replaces `out` whole.

    Checks `out` first (`check_output_folder`). If the block raises, the staging
    folder is removed and `out` is untouched.

    Example::

        with staged_folder(Path("out/run"), overwrite=True) as folder:
            write_parquet(results, folder / "results.parquet")
    """
    target = check_output_folder(out, overwrite=overwrite, inputs=inputs)
    staging = _new_sibling(target, _STAGING)
    try:
        yield staging
        _swap_in(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def is_policysim_output(folder: Path) -> bool:
    """Whether a folder holds what a policysim command wrote (what `overwrite` may replace)."""
    if _signed(folder / "summary.json", "policysim_version") or _signed(folder / "generation.json", "generator"):
        return True
    entries = list(folder.iterdir())
    return bool(entries) and all(entry.is_dir() and is_policysim_output(entry) for entry in entries)


def _signed(path: Path, key: str) -> bool:
    """Whether `path` is a JSON object with `key`, as policysim's summary.json and generation.json are."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(payload, dict) and key in payload


def _new_sibling(target: Path, purpose: str) -> Path:
    """Create a new hidden folder beside `target` (the umask applies); `InvalidConfig` when that is impossible."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        while True:
            sibling = target.parent / f".{target.name}.{purpose}-{secrets.token_hex(4)}"
            try:
                sibling.mkdir()
                return sibling
            except FileExistsError:
                continue
    except OSError as error:
        raise InvalidConfig(f"output folder {target}: cannot be created or written "
                            f"({error.strerror or error}); choose a folder you can write") from None


def _swap_in(staging: Path, target: Path) -> None:
    """Put `staging` where `target` is; the previous `target` is moved aside, then deleted."""
    if not target.exists():
        os.rename(staging, target)
        return
    old = _new_sibling(target, _OLD)
    os.rename(target, old / target.name)
    try:
        os.rename(staging, target)
    except OSError:
        os.rename(old / target.name, target)  # put the previous outputs back (if this fails, they stay in `old`)
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def _inside(path: str | Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies inside it (both made absolute, symlinks resolved)."""
    if "://" in str(path):  # object storage
        return False
    try:
        Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
    except ValueError:
        return False
    return True


def _entries(names: list[str]) -> str:
    """`3 entries, e.g. a, b, c` for a message."""
    shown = ", ".join(names[:_SHOWN_ENTRIES])
    return f"{len(names)} {'entry' if len(names) == 1 else 'entries'}: {shown}{', ...' if len(names) > _SHOWN_ENTRIES else ''}"
