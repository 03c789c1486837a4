"""Issue #11 (ops): engine options are one typed `Execution`; results carry complete timings; bugs exit 70."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

import simulator
from simulator.cli import EX_SOFTWARE, app
from simulator.config import parse_config
from simulator.engine import execution as execution_module
from simulator.engine.execution import Execution
from simulator.engine import shards as shards_module
from simulator.engine.shards import Job, OrderedMerge, Shard, ShardResult
from simulator.errors import InvalidConfig, PolicysimError, UnknownName
from simulator.stats.shard import Stats
from simulator.workflows.review import review
from simulator.workflows.run import run
from tests.conftest import LOCAL
from tests.factories import make_transactions, write_parquet

CONFIG = {
    "segments": {"by": [["card_country"]]},
    "policies": [{"name": "stricter", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.05,
                  "block_above": 0.3}],
    "review": {"candidate": "stricter", "guardrails": [{"metric": "fraud_rate_bps", "max_increase": 100.0}]},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parquet(make_transactions(n=600, seed=4), tmp_path_factory.mktemp("ops") / "data.parquet")


def test_execution_defaults_to_ray_and_is_exported() -> None:
    assert simulator.Execution is Execution and "Execution" in simulator.__all__
    assert Execution().engine == "ray" and Execution().address is None


def test_unknown_engine_is_a_user_error_with_a_suggestion() -> None:
    with pytest.raises(UnknownName, match=re.escape("unknown engine 'lokal'; known: local, ray (did you mean 'local'?)")):
        Execution(engine="lokal")  # type: ignore[arg-type]


@pytest.mark.parametrize(("field", "value"), [("num_cpus", 0), ("shard_rows", 0)])
def test_sizes_must_be_positive(field: str, value: int) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(f"{field}: must be >= 1, got {value}")):
        Execution(**{field: value})  # type: ignore[arg-type]


def test_execution_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        LOCAL.engine = "ray"  # type: ignore[misc]


def test_run_returns_complete_timings_and_sees_the_shards(data: Path) -> None:
    shards: list[Shard] = []
    result = run(parse_config(CONFIG), data, execution=Execution(engine="local", on_plan=shards.extend))
    assert len(shards) == 1
    assert list(result.timings) == ["plan_s", "stats_s", "finalize_s", "changes_s", "total_s", "validate_s"]
    assert result.timings["total_s"] >= result.timings["stats_s"] >= 0


def test_review_adds_its_time_without_mutating_the_run(data: Path) -> None:
    reviewed = review(parse_config(CONFIG), data, execution=LOCAL)
    assert "review_s" in reviewed.run.timings and reviewed.summary["timings"] == reviewed.run.timings


def test_an_internal_invariant_is_not_a_user_error() -> None:
    merge = OrderedMerge([Shard(id=0, path=Path("x.parquet"), offset=0, rows=1)])
    merge.add(0, Stats.empty())
    with pytest.raises(RuntimeError, match="repeated result for shard 0") as caught:
        merge.add(0, Stats.empty())
    assert not isinstance(caught.value, PolicysimError)


def test_the_merge_says_which_shard_it_takes_next_whatever_arrives_first() -> None:
    """The Ray engine fetches a shard's statistics only when the merge expects it (early ones wait in the object store)."""
    merge = OrderedMerge([Shard(id=i, path=Path("x.parquet"), offset=i, rows=1) for i in (4, 1, 7)])
    assert merge.expecting == 1
    merge.add(7, Stats.empty())  # early: buffered, the merge still waits for 1
    assert merge.expecting == 1
    merge.add(1, Stats.empty())
    assert merge.expecting == 4
    merge.add(4, Stats.empty())
    assert merge.expecting is None  # 7 was merged as soon as 4 was in


def test_a_bug_prints_its_traceback_and_exits_ex_software(tmp_path: Path, data: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[[policies]]\nname = "stricter"\nkind = "threshold"\nscore = "fraud_score"\nblock_above = 0.3\n')
    planned = execution_module.plan_shards
    monkeypatch.setattr(execution_module, "plan_shards", lambda path, rows: planned(path, rows) * 2)  # a shard twice
    result = CliRunner().invoke(app, ["run", str(config), "--data", str(data), "--out", str(tmp_path / "out"),
                                      "--engine", "local", "--quiet"])
    assert result.exit_code == EX_SOFTWARE == 70
    assert "Traceback" in result.output and "RuntimeError: unexpected or repeated result for shard 0" in result.output
    assert "internal error" in result.output


def test_user_errors_still_exit_2_without_traceback(tmp_path: Path, data: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[review]\ncandidate = "nobody"\n')
    result = CliRunner().invoke(app, ["review", str(config), "--data", str(data), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "review.candidate: unknown policy 'nobody'" in result.output and "Traceback" not in result.output


def test_the_local_engine_runs_shards_on_threads_with_the_results_of_one_at_a_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards overlap on threads, and the in-order merge makes the results identical to the bit to one thread's."""
    data = tmp_path / "data.parquet"
    make_transactions(n=600, seed=4).write_parquet(data, row_group_size=50)  # 12 shards of 50 rows
    workers = 3  # threads whatever the machine's CPUs (on one CPU they still overlap)
    monkeypatch.setattr(shards_module, "local_workers", lambda shards, rows: workers)
    together = threading.Barrier(workers)  # the first shards wait for each other: only threads get past
    threads: set[str] = set()
    alone = shards_module.run_shard

    def recorded(shard: Shard, job: Job) -> ShardResult:
        threads.add(threading.current_thread().name)
        if shard.id < workers:
            together.wait(timeout=60)
        return alone(shard, job)

    monkeypatch.setattr(shards_module, "run_shard", recorded)
    config = parse_config(CONFIG)
    many = run(config, data, execution=Execution(engine="local", shard_rows=50))
    assert len(threads) == workers and all(t.startswith("policysim-shard") for t in threads)
    monkeypatch.setattr(shards_module, "run_shard", alone)
    monkeypatch.setattr(shards_module, "local_workers", lambda shards, rows: 1)
    one = run(config, data, execution=Execution(engine="local", shard_rows=50))
    assert_frame_equal(many.results, one.results, check_exact=True)
    assert_frame_equal(many.changes, one.changes, check_exact=True)


def test_a_failing_shard_stops_the_local_engine_without_starting_the_rest(
        data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shard's own error reaches the caller (a user error stays one); shards not yet started never start."""
    started: list[int] = []

    def failing(shard: Shard, job: Job) -> ShardResult:
        started.append(shard.id)
        if shard.id == 1:
            raise InvalidConfig("policies[0]: this shard's policy failed")
        return ShardResult(Stats.empty())

    monkeypatch.setattr(shards_module, "run_shard", failing)
    monkeypatch.setattr(shards_module, "local_workers", lambda shards, rows: 2)
    shards = [Shard(id=i, path="x.parquet", offset=i, rows=1) for i in range(20)]
    with pytest.raises(InvalidConfig, match="this shard's policy failed"):
        shards_module.run_local(shards, SimpleNamespace(checks=None))  # type: ignore[arg-type]  # run_shard is stubbed
    assert 1 in started and len(started) <= 1 + 2 * 2  # at most twice the threads were in flight


def test_ctrl_c_stops_the_local_engine_at_once_while_shards_run_on_threads(tmp_path: Path) -> None:
    """SIGINT while two shards sleep on their threads: exit 130 within seconds, not when the shards end, no output.

    The kernel may hand the signal to a shard's thread; the engine's wait for results must still see it.
    """
    data = tmp_path / "data"
    data.mkdir()
    frame = make_transactions(n=600, seed=4)
    frame[:300].write_parquet(data / "part-0.parquet")  # 2 files: 2 shards
    frame[300:].write_parquet(data / "part-1.parquet")
    started = tmp_path / "started"
    started.mkdir()
    config = tmp_path / "slow.toml"
    config.write_text('[[policies]]\nname = "slow"\nkind = "python"\n'
                      'object = "tests.simulator.engine.crashing_policy:Slow"\n'
                      f'params = {{ seconds = 120, started = "{started}" }}\n')
    root = Path(__file__).parents[3]
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "run", str(config), "--data", str(data), "--out", str(tmp_path / "out"),
         "--engine", "local", "--quiet"],
        env={**os.environ, "PYTHONPATH": str(root)}, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(list(started.iterdir())) < shards_module.local_workers(2, 300):  # every thread is in a shard
            assert process.poll() is None, process.communicate()[0][-2000:]
            assert time.monotonic() < deadline, "the shards did not start"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        began = time.monotonic()
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 130, output[-2000:]
        assert time.monotonic() - began < 20  # the shards sleep 120 s
        assert not (tmp_path / "out").exists()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_local_engine_takes_no_more_threads_than_memory_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each thread needs room for two shards at their peak: a big machine with little memory gets fewer threads."""
    import psutil

    per_shard = 1_000_000 * shards_module.SHARD_BYTES_PER_ROW
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=9 * per_shard))
    assert shards_module.local_workers(100, 1_000_000) == 4  # 64 CPUs, memory for 4 threads
    assert shards_module.local_workers(3, 1_000_000) == 3  # no more threads than shards
    assert shards_module.local_workers(100, 100_000_000) == 1  # always one
    assert shards_module.local_workers(100, 1_000) == 64


def test_a_shard_timing_out_on_its_storage_is_an_error_not_a_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shard's own TimeoutError (a read from object storage) reaches the caller; the engine does not take it for
    its own wait running out and wait forever."""
    def timing_out(shard: Shard, job: Job) -> ShardResult:
        raise TimeoutError("s3://bucket/part-0.parquet: read timed out")

    monkeypatch.setattr(shards_module, "run_shard", timing_out)
    monkeypatch.setattr(shards_module, "local_workers", lambda shards, rows: 2)
    shards = [Shard(id=i, path="x.parquet", offset=i, rows=1) for i in range(4)]
    with pytest.raises(TimeoutError, match="read timed out"):
        shards_module.run_local(shards, SimpleNamespace(checks=None))  # type: ignore[arg-type]  # run_shard is stubbed
