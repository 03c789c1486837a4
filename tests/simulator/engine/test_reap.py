"""A started cluster's processes that outlive `ray.shutdown()` are killed after a grace period (`_reap`)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from simulator.engine import ray_engine


def test_a_process_that_outlives_the_grace_period_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ray_engine, "STOP_GRACE_SECONDS", 0.5)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        process, began = psutil.Process(child.pid), time.monotonic()
        ray_engine._reap([process])
        assert not process.is_running()  # killed: it would have slept for a minute
        assert time.monotonic() - began < 5
    finally:
        child.kill()


def test_nothing_recorded_nothing_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """A joined cluster records no processes: shutting down neither waits for nor signals anything."""
    waited: list[object] = []
    monkeypatch.setattr(psutil, "wait_procs", lambda *args, **kwargs: waited.append(args) or ([], []))
    ray_engine._reap([])
    assert waited == []
