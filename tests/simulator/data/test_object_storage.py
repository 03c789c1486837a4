"""Object storage end to end (SPEC §2): a hive-partitioned dataset in an S3 bucket, on the local engine and on Ray.

The bucket lives in moto's S3-compatible server, started once for this module
on a free port of 127.0.0.1 and stopped by its process handle. Credentials and
the endpoint come from the environment, as polars and pyarrow read them
(`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...); the Ray test's workers get them
from the driver (`simulator.data.storage.storage_environment`).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from simulator.config import parse_config
from simulator.data.validate import check_dataset
from simulator.engine.execution import Execution
from simulator.errors import InvalidData
from simulator.workflows.run import run

SHARDS = Execution(engine="local", shard_rows=5_000)  # several shards per file: ranges of row groups are read
BUCKET = "payments"
PREFIX = "logs/transactions"
CONFIG = {
    "segments": {"by": [["card_funding"], ["card_country"]]},
    "estimation": {"bootstrap": 10, "seed": 5},
    "policies": [{"name": "stricter", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.03,
                  "block_above": 0.3}],
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    """Until the server accepts connections; fails if it exits or takes longer than `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto server not listening on 127.0.0.1:{port} after {seconds:g} s")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server and the environment pointing polars, pyarrow and boto3 at it."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port, process)
        endpoint = f"http://127.0.0.1:{port}"
        with pytest.MonkeyPatch.context() as patch:
            for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                               "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
                               "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true",
                               "AWS_EC2_METADATA_DISABLED": "true"}.items():
                patch.setenv(key, value)
            yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def datasets(s3_endpoint: str, generated: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The same hive-partitioned dataset on disk and in the bucket: (local folder, s3 URI)."""
    import boto3

    root = tmp_path_factory.mktemp("hive") / "transactions"
    log = pl.read_parquet(generated / "transactions")
    for (funding,), part in log.group_by("card_funding", maintain_order=True):
        target = root / f"card_funding={funding}" / "part-0.parquet"
        target.parent.mkdir(parents=True)
        part.drop("card_funding").write_parquet(target, row_group_size=5_000)
    (root / "_SUCCESS").touch()
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    for file in sorted(root.rglob("*")):
        if file.is_file():
            client.upload_file(str(file), BUCKET, f"{PREFIX}/{file.relative_to(root)}")
    return root, f"s3://{BUCKET}/{PREFIX}/"


def test_a_bucket_validates_like_the_same_files_on_disk(datasets: tuple[Path, str]) -> None:
    local, uri = datasets
    schema = parse_config({}).data.schema()
    remote = check_dataset(uri, schema)
    assert remote == check_dataset(local, schema)
    assert (remote.files, remote.segments["card_funding"]) == (3, 3)  # _SUCCESS skipped; the hive key is a column


def test_a_bucket_runs_locally_with_the_results_of_the_files_on_disk(datasets: tuple[Path, str]) -> None:
    local, uri = datasets
    config = parse_config(CONFIG)
    remote = run(config, uri, execution=SHARDS)
    assert remote.stats.rows == 40_000
    assert_frame_equal(remote.results, run(config, local, execution=SHARDS).results, check_exact=True)


def test_a_bucket_runs_on_ray_with_the_same_results(ray_cluster: None, datasets: tuple[Path, str]) -> None:
    local, uri = datasets
    config = parse_config(CONFIG | {"data": {"path": uri}})
    on_ray = run(config, execution=Execution(engine="ray", shard_rows=5_000))
    assert on_ray.engine.startswith("ray")
    assert_frame_equal(on_ray.results, run(config, local, execution=SHARDS).results, check_exact=True)


def test_a_missing_key_is_a_data_error(datasets: tuple[Path, str]) -> None:
    with pytest.raises(InvalidData, match=f"data path s3://{BUCKET}/nowhere does not exist"):
        check_dataset(f"s3://{BUCKET}/nowhere", parse_config({}).data.schema())


def test_remote_data_forwards_the_drivers_storage_variables_to_joined_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator.data.storage import storage_environment

    monkeypatch.setenv("AWS_PROFILE", "analytics")
    monkeypatch.setenv("POLICYSIM_UNRELATED", "x")
    forwarded = storage_environment(["s3://bucket/a.parquet"])
    assert forwarded["AWS_PROFILE"] == "analytics" and "POLICYSIM_UNRELATED" not in forwarded
    assert storage_environment(["/data/a.parquet"]) == {}  # local data: workers need nothing from the driver
