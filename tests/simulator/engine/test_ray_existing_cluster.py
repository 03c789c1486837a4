"""`policysim run --address` against a separately started Ray head on loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulator.config import load_config
from simulator.workflows.run import run
from tests.conftest import LOCAL

BIN = Path(sys.executable).parent
CONFIG = Path(__file__).parents[3] / "configs" / "thresholds.toml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head():
    """`ray start --head --block` in its own process group, torn down with the group."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
         "--temp-dir", temp],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None, "ray start exited early"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)


def _stop(head: subprocess.Popen) -> None:
    """SIGTERM the head's process group, then SIGKILL what is left (draining can take 30 s)."""
    for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            return
        try:
            head.wait(timeout=grace)
            if sig == signal.SIGKILL:
                return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def expected(generated: Path) -> pl.DataFrame:
    """What the local engine gives for the config on the generated log (both tests below compare with it)."""
    return run(load_config(CONFIG), generated / "transactions", execution=LOCAL).results.sort(
        "policy", "segmentation", "segment", "metric")


def test_run_joins_an_existing_cluster(ray_head: str, generated: Path, expected: pl.DataFrame, tmp_path: Path) -> None:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "200"}
    completed = subprocess.run(
        [str(BIN / "policysim"), "run", str(CONFIG), "--data", str(generated / "transactions"),
         "--out", str(tmp_path / "out"), "--address", ray_head, "--quiet"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    got = pl.read_parquet(tmp_path / "out" / "results.parquet").sort("policy", "segmentation", "segment", "metric")
    _assert_same(got, expected)


def _assert_same(got: pl.DataFrame, expected: pl.DataFrame) -> None:
    """Equal up to rounding, relative to each metric's scale.

    The runs differ in how rows are summed (a per-row policy turns the units into rows), so a
    delta of exactly 0 can come out as rounding noise, and its interval as √(noise) of the
    metric's scale: compare against 1e-6 of the largest estimate of the metric.
    """
    scale = expected.group_by("metric").agg(pl.col("estimate").abs().max().fill_null(0.0).alias("scale"))
    atol = expected.join(scale, on="metric", how="left")["scale"].to_numpy() * 1e-6 + 1e-12
    for column in ["estimate", "ci_low", "ci_high", "delta", "delta_ci_low", "delta_ci_high"]:
        a, b = got[column].to_numpy().astype(float), expected[column].to_numpy().astype(float)
        both = np.isfinite(a) & np.isfinite(b)
        assert (np.isnan(a) == np.isnan(b)).all(), column
        assert (np.abs(a - b)[both] <= (1e-9 * np.abs(b) + atol)[both]).all(), column


def test_tasks_spread_over_a_two_node_cluster(generated: Path, expected: pl.DataFrame, tmp_path: Path) -> None:
    nodes = tmp_path / "nodes"
    nodes.mkdir()
    data = tmp_path / "rowgroups"
    data.mkdir()
    for i, file in enumerate(sorted((generated / "transactions").glob("*.parquet"))):
        pl.read_parquet(file).write_parquet(data / f"part-{i}.parquet", row_group_size=2_500)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    completed = subprocess.run(
        [sys.executable, "-m", "tests.simulator.engine.multinode_run", str(data), str(tmp_path / "r.parquet"), str(nodes)],
        env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[3],
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert len(list(nodes.iterdir())) == 2  # both nodes ran shards
    got = pl.read_parquet(tmp_path / "r.parquet").sort("policy", "segmentation", "segment", "metric")
    _assert_same(got, expected)  # the same rows in other files: the same results, up to rounding


def _our_processes(session: int, seen: dict[tuple[int, int], str]) -> dict[tuple[int, int], str]:
    """Live processes of the session we started, or descended from its leader, as {(pid, start time): name}.

    Only processes this test started count: the session (`start_new_session=True` makes the leader's pid
    the session id, and Ray does not leave it), plus descendants of any process already recorded in
    `seen`, so a child that left the session is still followed. A Ray cluster that something else on the
    machine runs is never looked at. Read from /proc (Linux), no dependency.
    """
    table: dict[int, tuple[int, int, int, str, str]] = {}  # pid -> (ppid, session, start, state, name)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        # fields after the name: state ppid pgrp session ... starttime is the 20th (proc(5))
        table[int(entry.name)] = (int(rest[1]), int(rest[3]), int(rest[19]), rest[0], name)
    ours = {pid for pid, (_, sid, start, _, _) in table.items() if sid == session or (pid, start) in seen}
    changed = True
    while changed:  # close under "child of"
        grown = ours | {pid for pid, (ppid, *_) in table.items() if ppid in ours}
        changed, ours = grown != ours, grown
    return {(pid, table[pid][2]): table[pid][4] for pid in ours if pid in table and table[pid][3] != "Z"}


def test_ctrl_c_stops_cleanly(generated: Path, tmp_path: Path) -> None:
    """SIGINT mid-run: exit 130 promptly, no output written, the cluster the command started is gone.

    The command runs in a session of its own; only that session's processes (and their descendants)
    are checked, so another Ray cluster on the machine does not matter.
    """
    config = tmp_path / "slow.toml"
    config.write_text('[[policies]]\nname = "slow"\nkind = "python"\n'
                      'object = "tests.simulator.engine.crashing_policy:Slow"\nparams = { seconds = 120 }\n')
    root = Path(__file__).parents[3]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [str(BIN / "policysim"), "run", str(config), "--data", str(generated / "transactions"),
         "--out", str(tmp_path / "out"), "--num-cpus", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=root, start_new_session=True,
    )
    seen: dict[tuple[int, int], str] = {}
    try:
        deadline = time.monotonic() + 120
        while "raylet" not in seen.values() and time.monotonic() < deadline:  # wait for its cluster
            assert process.poll() is None, process.communicate()[0][-2000:]
            seen |= _our_processes(process.pid, seen)
            time.sleep(0.5)
        assert "raylet" in seen.values(), sorted(set(seen.values()))
        for _ in range(10):  # then for tasks to start, still recording what the command starts
            seen |= _our_processes(process.pid, seen)
            time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        began = time.monotonic()
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 130, output[-2000:]
        assert time.monotonic() - began < 30
        assert not (tmp_path / "out").exists()
        deadline = time.monotonic() + 30
        while (left := _our_processes(process.pid, seen)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not left, left  # every process the command started (raylet, GCS, workers) is gone
    finally:
        with contextlib.suppress(ProcessLookupError):  # on failure, leave nothing of ours running
            os.killpg(process.pid, signal.SIGKILL)
