"""Session-wide fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from simulator.engine.execution import Execution

LOCAL = Execution(engine="local")  # what most tests run on: this process, no Ray cluster to start


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster for the whole test session (starting one costs seconds)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
