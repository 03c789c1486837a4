"""Run a config on a simulated two-node Ray cluster (`ray.cluster_utils.Cluster`); used by a test.

    python -m tests.simulator.engine.multinode_run DATA OUT NODES_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from simulator.config import load_config, parse_config  # noqa: E402
from simulator.workflows.run import run  # noqa: E402
from simulator.engine.execution import Execution  # noqa: E402


def main(data: Path, out: Path, nodes: Path) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        base = load_config(Path(__file__).parents[3] / "configs" / "thresholds.toml")
        table = base.model_dump(mode="python")
        table["policies"] = [p.model_dump() for p in base.policies] + [{
            "name": "where", "kind": "python", "object": "tests.simulator.engine.crashing_policy:RecordNode",
            "params": {"directory": str(nodes)},
        }]
        result = run(parse_config(table), data, execution=Execution(engine="ray", shard_rows=2_500))
        result.results.filter(result.results["policy"] != "where").write_parquet(out)
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
