"""The Ray engine gives the local engine's results, whatever the sharding, and survives a dying worker."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulator.config import parse_config
from simulator.errors import PolicysimError
from simulator.workflows.run import run
from simulator.engine.execution import Execution
from tests.conftest import LOCAL
from tests.factories import in_row_groups

CONFIG = {
    "segments": {"by": [["card_country"], ["card_funding", "channel"]]},
    "estimation": {"bootstrap": 20, "seed": 3},
    "policies": [
        {"name": "strict", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.02, "block_above": 0.3},
        {"name": "rules", "kind": "rules", "fallback": "allow",
         "rules": [{"when": "amount > 500 AND fraud_score > 0.1", "action": "block"}]},
    ],
}
NUMBERS = ["estimate", "ci_low", "ci_high", "delta", "delta_ci_low", "delta_ci_high", "ess"]
KEYS = ["policy", "segmentation", "segment", "metric"]


@pytest.fixture(scope="module")
def dataset(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated log rewritten with small row groups, so files split into several shards."""
    return in_row_groups(generated / "transactions", tmp_path_factory.mktemp("rowgroups"), 2_500)


def _same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    a, b = a.sort(KEYS), b.sort(KEYS)
    assert a.select(KEYS + ["flag"]).equals(b.select(KEYS + ["flag"]))
    for column in NUMBERS:
        x, y = a[column].to_numpy().astype(float), b[column].to_numpy().astype(float)
        scale = float(np.nanmax(np.abs(y))) if np.isfinite(y).any() else 1.0
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12 * scale, equal_nan=True, err_msg=column)


@pytest.fixture(scope="module")
def local_results(dataset: Path) -> pl.DataFrame:
    return run(parse_config(CONFIG), dataset, execution=LOCAL).results


@pytest.mark.parametrize("shard_rows", [2_500, 7_500, 100_000])
def test_ray_matches_local_for_any_shard_size(ray_cluster, dataset: Path, local_results: pl.DataFrame, shard_rows: int) -> None:
    shards = []
    result = run(parse_config(CONFIG), dataset, execution=Execution(engine="ray", shard_rows=shard_rows, on_plan=shards.extend))
    assert len(shards) == {2_500: 16, 7_500: 6, 100_000: 2}[shard_rows]
    _same(result.results, local_results)


def test_a_dying_worker_is_retried_without_losing_or_double_counting(ray_cluster, dataset: Path, tmp_path: Path) -> None:
    marker = tmp_path / "crash-once"
    policy = {"name": "crashy", "kind": "python", "object": "tests.simulator.engine.crashing_policy:CrashOnce",
              "params": {"marker": str(marker)}}
    config = parse_config(CONFIG | {"policies": [*CONFIG["policies"], policy]})
    clean = run(config, dataset, execution=LOCAL).results
    marker.touch()
    crashed = run(config, dataset, execution=Execution(engine="ray", shard_rows=7_500))
    assert not marker.exists()  # a worker really died
    _same(crashed.results, clean)
    assert crashed.stats.rows == 40_000


def test_an_error_inside_a_task_surfaces_as_itself(ray_cluster, dataset: Path) -> None:
    bad = {"name": "bad", "kind": "python", "object": "tests.policies.broken_user_policies:WrongShape", "params": {}}
    with pytest.raises(PolicysimError, match=re.escape("WrongShape).probabilities: returned shape (20000, 2)")):
        run(parse_config(CONFIG | {"policies": [bad]}), dataset, execution=Execution(engine="ray"))
