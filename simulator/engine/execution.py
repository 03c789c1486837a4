"""How and where shards run (`Execution`), and running them: `execute(plan, data, execution)` (SPEC §7).

`Execution` is the one typed bundle of engine options every entry point takes
(`run`, `sweep`, `review`, the CLI builds one from its flags); `execute` cuts
the data into shards, runs `run_shard` on each with the chosen engine and
returns the merged statistics with what it cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

from simulator.data.load import Source, open_source
from simulator.data.shard_checks import CheckMerge, ShardChecks
from simulator.data.storage import storage_environment
from simulator.engine.ray_engine import Cluster, cluster, run_ray
from simulator.engine.shards import DEFAULT_SHARD_ROWS, Job, Shard, plan_shards, run_local
from simulator.errors import InvalidConfig, UnknownName
from simulator.plan.compiled import Plan
from simulator.plan.moments import needed_sums
from simulator.schema import Schema
from simulator.stats.shard import Stats

Engine = Literal["local", "ray"]


def ignored_setting(engine: str, address: str | None, num_cpus: int | None) -> tuple[str, str] | None:
    """The setting that would be silently ignored, and what makes it so: ("address" | "num_cpus", "local"), when the
    local engine runs in this process, or ("num_cpus", "address"), when a joined cluster has its own CPUs; else None.

    The one rule behind `Execution`'s refusal and the CLI's (which words it in flags).
    """
    if engine == "local" and (address is not None or num_cpus is not None):
        return ("address" if address is not None else "num_cpus", "local")
    if address is not None and num_cpus is not None:
        return ("num_cpus", "address")
    return None


@dataclass(frozen=True, slots=True)
class Execution:
    """Which engine runs the shards, where, in pieces of what size, and whom to tell about progress.

    `engine="ray"` (the default) runs one task per shard on a new local Ray
    cluster (`num_cpus` CPUs, default all), or joins the one at `address`
    (`auto`, `host:port`, `ray://host:port`); `engine="local"` runs the same
    code in this process. Results are identical. Settings that would be ignored
    (an address or CPUs for the local engine, CPUs for a joined cluster) raise
    `InvalidConfig`. `shard_rows` is about how many
    rows a shard holds (whole Parquet row groups). The callbacks see the planned
    shards (`on_plan`), each finished shard (`on_shard`) and the cluster used (`on_cluster`).

    Example::

        from simulator import Execution, run

        result = run(config, Path("data/transactions"), execution=Execution(engine="local"))
        on_ray = run(config, Path("data/transactions"), execution=Execution(num_cpus=2, on_shard=print))
    """

    engine: Engine = "ray"
    address: str | None = None
    num_cpus: int | None = None
    shard_rows: int = DEFAULT_SHARD_ROWS
    on_plan: Callable[[list[Shard]], None] | None = field(default=None, compare=False)
    on_shard: Callable[[Shard], None] | None = field(default=None, compare=False)
    on_cluster: Callable[[Cluster], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.engine not in get_args(Engine):
            raise UnknownName("engine", str(self.engine), get_args(Engine))
        if self.num_cpus is not None and self.num_cpus < 1:
            raise InvalidConfig(f"num_cpus: must be >= 1, got {self.num_cpus}")
        ignored = ignored_setting(self.engine, self.address, self.num_cpus)
        if ignored == ("address", "local") or ignored == ("num_cpus", "local"):
            raise InvalidConfig(f"{ignored[0]}: only the ray engine uses it; engine='local' runs in this process")
        if ignored == ("num_cpus", "address"):
            raise InvalidConfig("num_cpus: sets the CPUs of a local cluster the run starts; "
                                f"the cluster at address={self.address!r} has its own")
        if self.shard_rows < 1:
            raise InvalidConfig(f"shard_rows: must be >= 1, got {self.shard_rows}")


@dataclass(frozen=True, slots=True)
class Executed:
    """The merged statistics of every shard, the engine that computed them, and the time each step took."""

    stats: Stats
    engine: str  # "local", or e.g. "ray (started 127.0.0.1:6379, 2 CPUs)"
    timings: dict[str, float]  # plan_s (cutting shards), cluster_start_s (ray only), stats_s
    checked: CheckMerge | None = None  # every shard's checks, when asked for (`execute(..., checks=)`)


def execute(plan: Plan, data: str | Path | Source, schema: Schema, execution: Execution, *,
            checks: ShardChecks | None = None) -> Executed:
    """Merged statistics of every shard of the data (a location or an opened `Source`) on the chosen engine.

    With `checks`, every shard also validates its rows in the same read (`simulator.data.shard_checks`);
    `Executed.checked` holds them, merged, for the caller to finish before it trusts the statistics.
    """
    mark = time.perf_counter()
    source = open_source(data, schema)
    job = Job(plan=plan, needs=needed_sums(plan), schema=schema, source=source, checks=checks)
    shards = plan_shards(source, execution.shard_rows)
    if execution.on_plan is not None:
        execution.on_plan(shards)
    timings = {"plan_s": time.perf_counter() - mark}
    mark = time.perf_counter()
    if execution.engine == "local":
        merged = run_local(shards, job, execution.on_shard)
        return Executed(stats=merged.result(), engine="local", timings=timings | {"stats_s": time.perf_counter() - mark},
                        checked=merged.checked)
    with cluster(execution.address, execution.num_cpus) as used:
        timings["cluster_start_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        if execution.on_cluster is not None:
            execution.on_cluster(used)
        # a cluster this process did not start has its own environment: give its workers the storage credentials
        environment = {} if used.started else storage_environment(source.files)
        merged = run_ray(shards, job, execution.on_shard, environment=environment)
        stats = merged.result()
        timings["stats_s"] = time.perf_counter() - mark
    return Executed(stats=stats, engine=used.label(), timings=timings, checked=merged.checked)


@contextmanager
def shared_cluster(execution: Execution) -> Iterator[Execution]:
    """One Ray cluster for a workflow's several passes: each `execute` inside joins it (the local engine needs none).

    Yields the execution to use inside, which reports the cluster once, here.
    """
    if execution.engine != "ray":
        yield execution
        return
    with cluster(execution.address, execution.num_cpus) as used:
        if execution.on_cluster is not None:
            execution.on_cluster(used)
        yield replace(execution, on_cluster=None)
