"""The Ray engine: one task per shard on a local or existing Ray cluster.

Each task runs the same `run_shard(shard, job)` as the local engine and
returns small mergeable statistics; the driver never sees rows. A task whose
worker dies is retried by Ray (`max_retries`); the driver accepts exactly one
result per shard id and merges in shard-id order as results arrive, so a retry
can neither lose nor double-count a shard, and reruns are bit-identical.

Address resolution is explicit (a bare `ray.init()` would silently join
whatever RAY_ADDRESS names): no address starts a private local cluster, which
is shut down when the run ends; `auto`, `host:port` (GCS) or `ray://host:port`
(Ray Client) joins an existing one, which is left running, after checking that
a cluster answers there (`simulator.engine.address`). One cluster per command:
a `cluster()` block inside another uses the outer block's cluster.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator.engine.address import UnreachableCluster, check_reachable
from simulator.errors import PolicysimError, first_line
from simulator.engine.shards import Job, OrderedMerge, Shard, run_shard
from simulator.data.shard_checks import CheckedShard
from simulator.stats.shard import Stats

if TYPE_CHECKING:
    import psutil

MAX_RETRIES = 3
# One thread per task: Ray already runs one task per CPU, and polars' or BLAS's own
# thread pools inside every worker would oversubscribe the cores.
TASK_ENV = {"POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_QUIET_RAY = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass(frozen=True, slots=True)
class Cluster:
    """Which cluster a run used, for messages and run metadata."""

    address: str
    started: bool  # this process started it (and shuts it down)
    cpus: float
    seconds: float = 0.0  # how long starting or joining it took

    def label(self) -> str:
        """E.g. `ray (started 10.0.0.5:6379, 2 CPUs)`: the engine a run names in its outputs."""
        return f"ray ({'started' if self.started else 'joined'} {self.address}, {self.cpus:g} CPUs)"

    def describe(self) -> str:
        """E.g. `started a local Ray cluster at 10.0.0.5:6379 with 2 CPUs in 3.4 s`."""
        if self.started:
            return f"started a local Ray cluster at {self.address} with {self.cpus:g} CPUs in {self.seconds:.1f} s"
        return f"joined the Ray cluster at {self.address} ({self.cpus:g} CPUs) in {self.seconds:.1f} s"


# The cluster an enclosing `cluster()` block of this process holds: nested blocks use it, so a
# command that makes several passes (a sweep's holdout and per-value passes) starts one cluster.
_HELD: list[Cluster] = []


@contextmanager
def cluster(address: str | None, num_cpus: int | None) -> Iterator[Cluster]:
    """Connect to (or start) a Ray cluster for the duration of a run; inside another `cluster()` block, use its.

    An address is probed first (`simulator.engine.address`): where no Ray cluster
    answers, `UnreachableCluster` is raised within seconds instead of Ray retrying
    for minutes.
    """
    if _HELD:
        yield _HELD[-1]
        return
    for key, value in _QUIET_RAY.items():
        os.environ.setdefault(key, value)
    import ray  # imported lazily: the local engine and the CLI's start-up do not pay for it

    start = time.perf_counter()
    if ray.is_initialized():  # e.g. a notebook or a test session that connected already
        used = Cluster(address=_connected_address(ray), started=False, cpus=ray.cluster_resources().get("CPU", 0.0))
        with _holding(used):
            yield used
        return
    started: list[psutil.Process] = []
    try:  # a Ctrl-C while the cluster starts must stop what has started too
        context = _connect(ray, address, num_cpus)
        started = _node_processes() if address is None else []  # its agents, while the raylet is still their parent
        used = Cluster(address=str(getattr(context, "address_info", {}).get("gcs_address", address or "local")),
                       started=address is None, cpus=ray.cluster_resources().get("CPU", 0.0),
                       seconds=time.perf_counter() - start)
        with _holding(used):
            yield used
    finally:
        node = set(started) | set(_node_processes() if address is None else [])
        ray.shutdown()
        _reap(list(node))


STOP_GRACE_SECONDS = 10.0  # how long a started cluster's processes get to exit after `ray.shutdown()`


def _node_processes() -> list[psutil.Process]:
    """The processes of the local cluster this process started: its Ray descendants (raylet, GCS, workers, agents).

    Recorded when the cluster starts and again before the shutdown: the raylet's agents are re-parented once it
    exits (a Ctrl-C can stop it before the shutdown runs), and would be lost.
    """
    import psutil  # a dependency of Ray's

    def ray_process(child: psutil.Process) -> bool:
        try:
            name = child.name()
            return name.startswith("ray::") or name in ("raylet", "gcs_server") or \
                any("/ray/" in part for part in child.cmdline()[:3])  # e.g. python .../ray/dashboard/dashboard.py
        except psutil.Error:  # gone meanwhile, or not ours to read
            return False

    try:
        return [child for child in psutil.Process().children(recursive=True) if ray_process(child)]
    except psutil.Error:
        return []


def _reap(processes: Sequence[psutil.Process]) -> None:
    """Wait for the started cluster's processes to exit; kill those still running after STOP_GRACE_SECONDS.

    `ray.shutdown()` stops them, but on a loaded machine an agent can outlive the command that started it
    (measured: the dashboard and runtime-env agents still running 30 s after Ctrl-C at load ~16). Only the
    recorded processes are touched (psutil checks each one's start time, so a reused pid is never signalled).
    """
    if not processes:
        return
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=STOP_GRACE_SECONDS)
    for process in alive:
        with suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=STOP_GRACE_SECONDS)


@contextmanager
def _holding(used: Cluster) -> Iterator[None]:
    """Make `used` the cluster nested `cluster()` blocks use, for the duration of the block."""
    _HELD.append(used)
    try:
        yield
    finally:
        _HELD.pop()


def _connected_address(ray) -> str:  # type: ignore[no-untyped-def]
    """The GCS address of the cluster this process is already connected to, when Ray says."""
    try:
        return str(ray.get_runtime_context().gcs_address)
    except Exception:  # noqa: BLE001 - only for messages: never fail a run over it
        return "the connected cluster"


def _connect(ray, address: str | None, num_cpus: int | None):  # type: ignore[no-untyped-def]
    """`ray.init` for a new local cluster (no address) or an existing one, which is probed first."""
    job_env = {"env_vars": TASK_ENV}  # set for the job, so workers are prestarted with it
    try:
        if address is None:
            return ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                            runtime_env=job_env, logging_level="warning")
        check_reachable(address)
        return ray.init(address=address, log_to_driver=False, runtime_env=job_env, logging_level="warning")
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise UnreachableCluster(f"cannot reach a Ray cluster at {address or 'a new local cluster'}: "
                                 f"{first_line(error)}") from None


def run_ray(shards: Sequence[Shard], job: Job, on_shard: Callable[[Shard], None] | None = None, *,
            environment: Mapping[str, str] | None = None) -> OrderedMerge:
    """Run every shard as a Ray task on the connected cluster; merge in shard-id order (statistics and checks).

    `environment`: variables the tasks need that the cluster's workers may lack
    (object-storage credentials of a joined cluster); they get a runtime
    environment of their own, which Ray starts fresh workers for.
    """
    import ray

    task = ray.remote(max_retries=MAX_RETRIES, num_returns=2)(_split_shard)
    if environment:
        task = task.options(runtime_env={"env_vars": {**TASK_ENV, **environment}})
    job_ref = ray.put(job)  # shipped once, shared by every task
    pending: dict[object, tuple[Shard, object]] = {}
    for shard in shards:
        checked_ref, stats_ref = task.remote(shard, job_ref)
        pending[checked_ref] = (shard, stats_ref)
    merge = OrderedMerge(shards, job.checks)
    ready: dict[int, tuple[CheckedShard | None, object]] = {}  # finished, waiting for their turn in the object store
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            shard, stats_ref = pending.pop(done[0])
            ready[shard.id] = (_get(ray, done[0]), stats_ref)  # a failed shard raises here, as soon as it fails
            if on_shard is not None:
                on_shard(shard)
            while merge.expecting in ready:  # fetch statistics only in merge order: the driver holds one at a time
                checked, ref = ready.pop(merge.expecting)
                merge.add(merge.expecting, _get(ray, ref), checked)
                del ref
    except BaseException:  # Ctrl-C or a failed shard: stop the rest before leaving
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return merge


def _split_shard(shard: Shard, job: Job) -> tuple[CheckedShard | None, Stats]:
    """`run_shard` as two objects: the small checks, fetched as soon as the task ends (a shard's bad input stops the
    run at once), and the statistics, fetched only when the in-order merge reaches them (with a bootstrap, hundreds of
    MiB each: early ones wait in the object store, which spills to disk, not in the driver's memory)."""
    result = run_shard(shard, job)
    return result.checked, result.stats


def _get(ray, ref) -> Any:  # type: ignore[no-untyped-def]
    """A task's result (one of its objects); a policysim error raised inside a task surfaces as itself."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, PolicysimError):  # bad input found inside a task: the same message as locally
            raise cause from None
        raise
