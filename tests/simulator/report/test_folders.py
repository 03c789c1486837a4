"""Output folders: refused before any work when they cannot be used, written whole, replaced only with
overwrite, never mixing two runs, and readable per the user's umask."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.errors import InvalidConfig
from simulator.report.files import write_json, write_text
from simulator.report.folders import check_output_folder, is_policysim_output, staged_folder


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def earlier_run(folder: Path, *names: str) -> None:
    """A folder as a policysim command leaves it: a signed summary.json and other outputs."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps({"policysim_version": "0.1.0"}))
    for name in names:
        (folder / name).write_text("earlier")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_folder_is_written_whole(tmp_path: Path) -> None:
    with staged_folder(tmp_path / "a" / "out", overwrite=False) as folder:
        write_text("x", folder / "results.txt")
        assert not (tmp_path / "a" / "out").exists()  # nothing is visible before the end
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["out"]  # no staging folder left
    assert (tmp_path / "a" / "out" / "results.txt").read_text() == "x"


def test_files_and_folders_get_the_umask_permissions(tmp_path: Path, umask_022: None) -> None:
    with staged_folder(tmp_path / "out", overwrite=False) as folder:
        write_json({"a": 1}, folder / "summary.json")
        write_text("<html>", folder / "review.html")
    assert mode(tmp_path / "out") == 0o755
    assert mode(tmp_path / "out" / "summary.json") == mode(tmp_path / "out" / "review.html") == 0o644


def test_a_stricter_umask_is_kept(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        with staged_folder(tmp_path / "out", overwrite=False) as folder:
            write_text("x", folder / "review.md")
    finally:
        os.umask(previous)
    assert mode(tmp_path / "out") == 0o750 and mode(tmp_path / "out" / "review.md") == 0o640


def test_an_empty_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    assert check_output_folder(tmp_path / "out", overwrite=False) == tmp_path / "out"


def test_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("mine")
    with pytest.raises(InvalidConfig, match=re.escape(f"output folder {tmp_path / 'out'}: exists and is a file")):
        check_output_folder(tmp_path / "out", overwrite=True)
    assert (tmp_path / "out").read_text() == "mine"


def test_a_folder_that_cannot_be_created_is_refused() -> None:
    with pytest.raises(InvalidConfig, match=re.escape("output folder /proc/policysim-x: cannot be created or written")):
        check_output_folder(Path("/proc/policysim-x"), overwrite=False)


def test_a_non_empty_folder_is_refused_without_overwrite_and_left_untouched(tmp_path: Path) -> None:
    earlier_run(tmp_path / "out", "results.parquet")
    with pytest.raises(InvalidConfig, match=re.escape("not empty (2 entries: results.parquet, summary.json); "
                                                      "pass --overwrite")):
        with staged_folder(tmp_path / "out", overwrite=False):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out" / "results.parquet").read_text() == "earlier"


def test_overwrite_replaces_the_previous_outputs_whole(tmp_path: Path) -> None:
    earlier_run(tmp_path / "out", "recommendation.json", "by_segment.parquet")  # e.g. a sweep
    with staged_folder(tmp_path / "out", overwrite=True) as folder:
        write_text("new", folder / "results.parquet")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["results.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_run_leaves_the_previous_outputs(tmp_path: Path) -> None:
    earlier_run(tmp_path / "out", "results.parquet")
    with pytest.raises(RuntimeError, match="boom"):
        with staged_folder(tmp_path / "out", overwrite=True) as folder:
            write_text("half", folder / "results.parquet")
            raise RuntimeError("boom")
    assert (tmp_path / "out" / "results.parquet").read_text() == "earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_never_deletes_files_policysim_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("years of work")
    with pytest.raises(InvalidConfig, match=re.escape("holds files policysim did not write (1 entry: thesis.tex)")):
        check_output_folder(tmp_path / "home", overwrite=True)
    assert (tmp_path / "home" / "thesis.tex").exists()


def test_a_folder_holding_the_input_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data" / "transactions").mkdir(parents=True)
    with pytest.raises(InvalidConfig, match=re.escape("holds the input")):
        check_output_folder(tmp_path / "data", overwrite=True, inputs=[tmp_path / "data" / "transactions"])


def test_generated_data_and_a_demo_folder_are_policysim_outputs(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "generation.json").write_text(json.dumps({"generator": "policysim generate"}))
    earlier_run(tmp_path / "demo" / "thresholds")
    earlier_run(tmp_path / "demo" / "review")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "summary.json").write_text("{}")  # not signed
    assert is_policysim_output(tmp_path / "data") and is_policysim_output(tmp_path / "demo")
    assert not is_policysim_output(tmp_path / "other")
