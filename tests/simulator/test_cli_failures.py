"""The failures a user meets in the first hour, each a clear error with exit code 2, before any work where it
can be; and a CLI that reads right (help, --version, the engine line). Issue #14."""

from __future__ import annotations

import ast
import re
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from simulator import __version__
from simulator.cli import app
from simulator.engine import ray_engine
from simulator.engine.address import UnreachableCluster, check_reachable
from simulator.engine.execution import Execution
from simulator.errors import InvalidConfig
from tests.simulator.conftest import CliRun

ROOT = Path(__file__).resolve().parents[2]
THRESHOLDS = ROOT / "configs" / "thresholds.toml"
POLICY = '[[policies]]\nname = "stricter"\nkind = "threshold"\nscore = "fraud_score"\nblock_above = 0.3\n'


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def run_local(data: Path, out: Path, *extra: str, config: Path = THRESHOLDS):
    return invoke("run", str(config), "--data", str(data), "--out", str(out), "--engine", "local", "--quiet", *extra)


@pytest.fixture(scope="module")
def data(generated: Path) -> Path:
    return generated / "transactions"


def signed_earlier_run(folder: Path, *names: str) -> None:
    """What an earlier policysim command left: a summary.json it signed, and other outputs."""
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"policysim_version": "0.0.9"}))
    for name in names:
        (folder / name).write_text("earlier")


# --- output folders --------------------------------------------------------------------------------


def test_out_under_proc_exits_2_before_reading_data(tmp_path: Path) -> None:
    result = run_local(tmp_path / "no-such-data", Path("/proc/x"))  # the data would fail too, later
    assert result.exit_code == 2
    assert "output folder /proc/x: cannot be created or written" in result.output
    assert "Traceback" not in result.output and "no-such-data" not in result.output


def test_an_existing_file_as_out_exits_2_and_is_kept(data: Path, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("mine")
    result = run_local(data, tmp_path / "out")
    assert result.exit_code == 2 and "exists and is a file" in result.output
    assert (tmp_path / "out").read_text() == "mine"


def test_a_non_empty_out_without_overwrite_exits_2_and_touches_nothing(data: Path, tmp_path: Path) -> None:
    signed_earlier_run(tmp_path / "out", "recommendation.json")
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    result = run_local(data, tmp_path / "out")
    assert result.exit_code == 2 and "pass --overwrite" in result.output
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == before


def test_overwrite_replaces_a_sweeps_outputs_whole(data: Path, tmp_path: Path) -> None:
    signed_earlier_run(tmp_path / "out", "recommendation.json", "by_segment.parquet", "by_segment_results.parquet")
    result = run_local(data, tmp_path / "out", "--overwrite")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    figures = (".png", ".svg")
    assert [n for n in names if not n.endswith(figures)] == ["changes.parquet", "examples.parquet", "report.html",
                                                             "report.md", "results.parquet", "summary.json"]
    assert not {"recommendation.json", "by_segment.parquet"} & set(names)  # nothing of the sweep is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_refuses_a_folder_policysim_did_not_write(data: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    result = run_local(data, tmp_path / "out", "--overwrite")
    assert result.exit_code == 2 and "holds files policysim did not write" in result.output
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_an_out_holding_the_data_is_refused(generated: Path) -> None:
    result = run_local(generated / "transactions", generated, "--overwrite")
    assert result.exit_code == 2 and "holds the input" in result.output
    assert (generated / "transactions").is_dir()


def test_generate_into_an_earlier_output_needs_overwrite(tmp_path: Path) -> None:
    assert invoke("generate", "--rows", "500", "--out", str(tmp_path / "d"), "--quiet").exit_code == 0
    refused = invoke("generate", "--rows", "700", "--out", str(tmp_path / "d"), "--quiet")
    assert refused.exit_code == 2 and "pass --overwrite" in refused.output
    assert invoke("generate", "--rows", "700", "--out", str(tmp_path / "d"), "--quiet", "--overwrite").exit_code == 0
    assert json.loads((tmp_path / "d" / "generation.json").read_text())["spec"]["rows"] == 700


def test_demo_refuses_a_non_empty_out_before_generating(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "notes.txt").write_text("mine")
    result = invoke("demo", "--out", str(tmp_path / "demo"), "--data", str(tmp_path / "data"), "--rows", "1000",
                    "--configs", str(ROOT / "configs"), "--engine", "local", "--quiet")
    assert result.exit_code == 2 and "not empty" in result.output
    assert not (tmp_path / "data").exists()


def test_sweep_checks_out_before_reading_data(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("")
    result = invoke("sweep", str(ROOT / "configs" / "sweep.toml"), "--data", str(tmp_path / "missing"), "--out",
                    str(tmp_path / "out"), "--engine", "local")
    assert result.exit_code == 2 and "exists and is a file" in result.output


def test_review_checks_out_before_reading_data(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("")
    result = invoke("review", str(ROOT / "configs" / "example.toml"), "--data", str(tmp_path / "missing"), "--out",
                    str(tmp_path / "out"), "--engine", "local")
    assert result.exit_code == 2 and "exists and is a file" in result.output


# --- engine flags and cluster addresses ------------------------------------------------------------


@pytest.mark.parametrize(("flags", "message"), [
    (["--engine", "local", "--address", "auto"], "Invalid value for '--address': it is for the Ray engine"),
    (["--engine", "local", "--num-cpus", "4"], "Invalid value for '--num-cpus': it is for the Ray engine"),
    (["--address", "auto", "--num-cpus", "4"], "Invalid value for '--num-cpus': it sets the CPUs of the local"),
], ids=["local+address", "local+num-cpus", "address+num-cpus"])
def test_conflicting_engine_flags_exit_2(data: Path, tmp_path: Path, flags: list[str], message: str) -> None:
    result = invoke("run", str(THRESHOLDS), "--data", str(data), "--out", str(tmp_path / "out"), *flags)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("settings", [{"engine": "local", "address": "auto"}, {"engine": "local", "num_cpus": 2},
                                      {"address": "auto", "num_cpus": 2}], ids=["local+address", "local+cpus", "address+cpus"])
def test_execution_refuses_settings_it_would_ignore(settings: dict[str, object]) -> None:
    with pytest.raises(InvalidConfig):
        Execution(**settings)  # type: ignore[arg-type]


def test_an_unreachable_address_exits_2_in_seconds_with_one_sentence(data: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "simulator.cli", "run", str(THRESHOLDS), "--data", str(data),
                           "--out", str(tmp_path / "out"), "--address", "127.0.0.1:1"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, start_new_session=True)
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - start < 60
    assert done.stderr.strip().splitlines() == [
        "error: cannot reach a Ray cluster at 127.0.0.1:1 (nothing listens on port 1): start one with "
        "`ray start --head`, or check the address (docs/cluster.md)"]
    assert not (tmp_path / "out").exists()


@pytest.fixture
def server() -> Iterator[tuple[int, list[bytes]]]:
    """A local TCP server whose first reply is set by the test (replies[0])."""
    replies: list[bytes] = [b""]
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(64)
                connection.sendall(replies[0])

    threading.Thread(target=answer, daemon=True).start()
    yield listener.getsockname()[1], replies
    listener.close()


def test_an_address_where_something_else_listens_is_refused(server: tuple[int, list[bytes]]) -> None:
    port, replies = server
    replies[0] = b"HTTP/1.1 400 Bad Request\r\n\r\n"
    with pytest.raises(UnreachableCluster, match=f"something else listens on port {port}, not a Ray head"):
        check_reachable(f"127.0.0.1:{port}")


def test_an_address_where_a_grpc_server_answers_is_accepted(server: tuple[int, list[bytes]]) -> None:
    port, replies = server
    replies[0] = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # an empty HTTP/2 SETTINGS frame, as a Ray head sends
    check_reachable(f"127.0.0.1:{port}")
    check_reachable(f"ray://127.0.0.1:{port}")


def test_a_malformed_address_is_refused() -> None:
    with pytest.raises(UnreachableCluster, match=re.escape("--address 'localhost:ray' is not a Ray address")):
        check_reachable("localhost:ray")


def test_one_ray_cluster_for_a_sweep_with_holdout_and_by(ray_cluster: None, data: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    held: list[object] = []
    holding = ray_engine._holding
    monkeypatch.setattr(ray_engine, "_holding", lambda used: (held.append(used), holding(used))[1])
    config = tmp_path / "sweep.toml"
    config.write_text('[segments]\nby = [["card_funding"]]\n[sweep]\nscore = "fraud_score"\n'
                      'block_above = [0.3, 0.6]\nchallenge_above = [0.05]\nby = "card_funding"\n'
                      '[sweep.objective]\nmaximize = "net_value"\n')
    result = invoke("sweep", str(config), "--data", str(data), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert len(held) == 1  # the holdout and per-value passes joined the first pass's cluster
    assert result.output.startswith("engine: ray, joined the Ray cluster at ")


# --- segments, help, version, messages -------------------------------------------------------------


def test_a_segmentation_that_would_explode_exits_2_before_any_shard(data: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[segments]\nby = [["created_at"]]\n' + POLICY)
    result = run_local(data, tmp_path / "out", config=config)
    instants = pl.scan_parquet(data / "*.parquet").select(pl.col("created_at").n_unique()).collect().item()
    assert instants == 40_000  # one segment per instant of the generated log
    assert result.exit_code == 2
    assert (f"segments.by[0]: ['created_at'] makes {instants:,} segments, more than segments.max_segments = 5,000"
            in result.output)
    assert not (tmp_path / "out").exists()


def test_the_first_line_says_which_engine_runs(thresholds_cli_run: CliRun) -> None:
    result = thresholds_cli_run  # `run configs/thresholds.toml --engine local` on the generated log
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "engine: local (this process)"


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.output == f"policysim {__version__}\n"


@pytest.mark.parametrize(("command", "shown"), [
    ("sweep", "Evaluate the config's [sweep] grid in one pass"),
    ("sweep", "(overrides [sweep] objective; grammar in docs/sweep.md)"),
    ("review", "Pre-launch review of the [review] candidate"),
])
def test_help_renders_bracketed_names(command: str, shown: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0 and shown in " ".join(result.output.split())


@pytest.mark.parametrize("command", ["generate", "validate", "run", "sweep", "review", "demo"])
def test_help_shows_flags_as_flags_and_cites_no_spec(command: str) -> None:
    text = invoke(command, "--help").output
    assert "<bool>" not in text and "SPEC" not in text and "§" not in text
    assert "  -q, --quiet " in text


def test_no_message_cites_spec_sections() -> None:
    """String constants that are not docstrings (messages, help, outputs) never cite the contract's sections."""
    found = set()
    for package in ("simulator", "policies", "segments"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                          if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                          and node.body and isinstance(node.body[0], ast.Expr)}
            for node in ast.walk(tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and "SPEC" in node.value \
                        and id(node) not in docstrings:
                    found.add((str(path.relative_to(ROOT)), node.value.strip()[:40]))
    assert not found
