"""`policysim run --address` against a separately started Ray head on loopback."""

from __future__ import annotations

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


def test_run_joins_an_existing_cluster(ray_head: str, generated: Path, tmp_path: Path) -> None:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "200"}
    completed = subprocess.run(
        [str(BIN / "policysim"), "run", str(CONFIG), "--data", str(generated / "transactions"),
         "--out", str(tmp_path / "out"), "--address", ray_head, "--quiet"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    got = pl.read_parquet(tmp_path / "out" / "results.parquet").sort("policy", "segmentation", "segment", "metric")
    expected = run(load_config(CONFIG), generated / "transactions", engine="local").results.sort(
        "policy", "segmentation", "segment", "metric"
    )
    for column in ["estimate", "ci_low", "ci_high", "delta", "delta_ci_low", "delta_ci_high"]:
        np.testing.assert_allclose(got[column].to_numpy().astype(float), expected[column].to_numpy().astype(float),
                                   rtol=1e-9, equal_nan=True, err_msg=column)


def test_tasks_spread_over_a_two_node_cluster(generated: Path, tmp_path: Path) -> None:
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
    expected = run(load_config(CONFIG), data, engine="local").results.sort("policy", "segmentation", "segment", "metric")
    for column in ["estimate", "ci_low", "ci_high", "delta", "delta_ci_low", "delta_ci_high"]:
        np.testing.assert_allclose(got[column].to_numpy().astype(float), expected[column].to_numpy().astype(float),
                                   rtol=1e-9, equal_nan=True, err_msg=column)


def _raylets() -> int:
    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return sum("raylet" in line and "grep" not in line for line in listing.splitlines())


def test_ctrl_c_stops_cleanly(generated: Path, tmp_path: Path) -> None:
    """SIGINT mid-run: exit 130 promptly, no output written, the cluster the command started is gone."""
    config = tmp_path / "slow.toml"
    config.write_text('[[policies]]\nname = "slow"\nkind = "python"\n'
                      'object = "tests.simulator.engine.crashing_policy:Slow"\nparams = { seconds = 120 }\n')
    before = _raylets()
    root = Path(__file__).parents[3]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(root)}
    process = subprocess.Popen(
        [str(BIN / "policysim"), "run", str(config), "--data", str(generated / "transactions"),
         "--out", str(tmp_path / "out"), "--num-cpus", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=root,
    )
    deadline = time.monotonic() + 120
    while _raylets() <= before and time.monotonic() < deadline:  # wait for its cluster, then for tasks to start
        assert process.poll() is None, process.communicate()[0][-2000:]
        time.sleep(0.5)
    time.sleep(5)
    process.send_signal(signal.SIGINT)
    began = time.monotonic()
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output[-2000:]
    assert time.monotonic() - began < 30
    assert not (tmp_path / "out").exists()
    deadline = time.monotonic() + 30
    while _raylets() > before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _raylets() == before
