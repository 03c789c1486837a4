"""A test-only policy whose first real batch kills its worker process (fault injection)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from policies import Coded


def _claim(marker: str) -> bool:
    """Atomically take the marker: exactly one of the workers racing for it wins."""
    try:
        os.unlink(marker)
    except FileNotFoundError:
        return False
    return True


class CrashOnce:
    """Block at fraud_score >= 0.3, else allow; the first non-empty batch that finds
    `marker` deletes it and exits the process, as a worker dying mid-task would."""

    columns = frozenset({"fraud_score"})
    deterministic = True

    def __init__(self, *, actions: tuple[str, ...], marker: str) -> None:
        self.actions = actions
        self.marker = marker
        self.table = np.eye(len(actions))

    def coded(self, batch: pl.DataFrame) -> Coded:
        if batch.height and _claim(self.marker):
            os._exit(1)
        block = batch["fraud_score"].to_numpy() >= 0.3
        codes = np.where(block, self.actions.index("block"), self.actions.index("allow")).astype(np.int32)
        return Coded(codes=codes, table=self.table)

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        return self.coded(batch).probabilities()


class RecordNode:
    """Allow everything, and leave a file named after the Ray node each non-empty batch ran on."""

    columns = frozenset({"fraud_score"})
    deterministic = True

    def __init__(self, *, actions: tuple[str, ...], directory: str) -> None:
        self.actions = actions
        self.directory = directory
        self.table = np.eye(len(actions))

    def coded(self, batch: pl.DataFrame) -> Coded:
        if batch.height:
            import ray

            (Path(self.directory) / ray.get_runtime_context().get_node_id()).touch()
        return Coded(codes=np.full(batch.height, self.actions.index("allow"), dtype=np.int32), table=self.table)

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        return self.coded(batch).probabilities()


class Slow:
    """Allow everything, after sleeping `seconds` on every non-empty batch (to interrupt a run mid-task);
    with `started`, a folder, it first leaves a file there (so a test knows a shard is running)."""

    columns = frozenset({"fraud_score"})
    deterministic = True

    def __init__(self, *, actions: tuple[str, ...], seconds: float, started: str | None = None) -> None:
        self.actions = actions
        self.seconds = seconds
        self.started = started
        self.table = np.eye(len(actions))

    def coded(self, batch: pl.DataFrame) -> Coded:
        if batch.height:
            import threading
            import time

            if self.started is not None:
                (Path(self.started) / f"{os.getpid()}-{threading.get_ident()}").touch()
            time.sleep(self.seconds)
        return Coded(codes=np.full(batch.height, self.actions.index("allow"), dtype=np.int32), table=self.table)

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        return self.coded(batch).probabilities()
