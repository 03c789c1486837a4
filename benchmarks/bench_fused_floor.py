"""How fast could a shard go? A floor for the fused one-pass design of issue #15, against today's shard, same run.

The issue asks for the whole `run` within 3x a polars read of the same columns. Today a
1 M-row shard of the bench config costs about 5x its read in CPU (read, in-shard
validation, statistics), and the driver adds finalize and the decision changes, which do
not shrink with rows. This script measures what the strongest shard design would cost:
one compiled pass over the decoded columns that does the work every design must do for
this config, and nothing else:

- the string columns coded once per shard (`card_country`, `card_brand`, `mcc`,
  `card_funding`, `action`: polars' categorical cast, then its physical codes);
- per row, in one `numba` loop: the validation's range checks (amount >= 0, propensity in
  (0, 1], scores in [0, 1], the logging probabilities summing to 1, flags not null), the
  amount band, the ten policies' action codes (seven threshold ladders, the prepaid
  segment threshold, the two rules; the epsilon mixture shares its base's code), the
  support pattern, the outcome pattern, the packed cell key and the unit key (cell,
  propensity, outcome), and each unit's n, sum of amount and of amount squared, grouped
  in an open-addressing hash table.

What it leaves out, and today's cost of it (see benchmarks/README.md): the cell sums from
the units' moments (`kernel.cell_sums`, ~0.06 s per 1 M rows), the decision-change
examples (~0.2 s), the id hashes for the duplicate check, building the result frame. So
its figure is a floor, not a design: the real pass would cost more.

Today's shard (read, checks, statistics, exactly as `run_shard` calls them) runs on the
same shard in the same process; CPU seconds, best of `--repeats`.

    .venv/bin/python benchmarks/bench_fused_floor.py /tmp/bench10m/transactions
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import config_table, policies  # noqa: E402

SEGMENT_STRINGS = ["card_country", "card_brand", "mcc", "card_funding"]
FLOATS = ["amount", "propensity", "fraud_score", "auth_score", "logging_prob_allow", "logging_prob_challenge",
          "logging_prob_block"]
FLAGS = ["authorized", "fraud_dispute", "dispute_lost"]
COLUMNS = ["transaction_id", "created_at", "action", *SEGMENT_STRINGS, *FLOATS, *FLAGS]


def best_cpu(work: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """The work's result and its smallest CPU time over `repeats` calls (process time: all threads)."""
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.process_time()
        out = work()
        best = min(best, time.process_time() - start)
    return out, best


def read(path: Path, rows: int) -> pl.DataFrame:
    """The first `rows` rows' columns: what a shard reads (as polars reads them for `run_shard`)."""
    return pl.scan_parquet(path).select(COLUMNS).slice(0, rows).collect()


def coded(frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """The string columns as small integer codes (categorical cast), the rest as numpy."""
    out = {c: frame[c].cast(pl.Categorical).to_physical().to_numpy().astype(np.int32) for c in
           [*SEGMENT_STRINGS, "action"]}
    out |= {c: frame[c].to_numpy() for c in FLOATS}
    out |= {c: frame[c].fill_null(False).to_numpy().astype(np.int8) for c in FLAGS}
    out["nulls"] = np.asarray([frame[c].null_count() for c in FLAGS], dtype=np.int64)  # Arrow keeps the counts
    return out


@njit(cache=False, nogil=True)
def _ladder(score: float, challenge: float, block: float) -> int:
    return 2 if score >= block else (1 if score >= challenge else 0)


@njit(cache=False, nogil=True)
def fused(country: np.ndarray, brand: np.ndarray, mcc: np.ndarray, funding: np.ndarray, action: np.ndarray,
          amount: np.ndarray, propensity: np.ndarray, fraud: np.ndarray, auth: np.ndarray, p_allow: np.ndarray,
          p_challenge: np.ndarray, p_block: np.ndarray, authorized: np.ndarray, disputed: np.ndarray,
          lost: np.ndarray, ladders: np.ndarray, prepaid: int, edges: np.ndarray, capacity: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Checks, codes, keys and per-unit moments in one pass; returns (keys, moments, bad rows by check, units)."""
    bad = np.zeros(6, dtype=np.int64)
    keys = np.full((capacity, 2), -1, dtype=np.int64)
    moments = np.zeros((capacity, 3), dtype=np.float64)
    mask = capacity - 1
    units = 0
    for i in range(amount.shape[0]):
        a = amount[i]
        p = propensity[i]
        s = fraud[i]
        bad[0] += not (a >= 0.0)
        bad[1] += not (p > 0.0 and p <= 1.0)
        bad[2] += not (s >= 0.0 and s <= 1.0)
        bad[3] += not (auth[i] >= 0.0 and auth[i] <= 1.0)
        bad[4] += abs(p_allow[i] + p_challenge[i] + p_block[i] - 1.0) > 1e-6
        bad[5] += (lost[i] > disputed[i])
        band = 0
        for k in range(edges.shape[0]):
            band += a >= edges[k]
        key = ((country[i] * 16 + brand[i]) * 1024 + mcc[i]) * 8 + band
        key = key * 4 + action[i]
        key = key * 8 + (p_allow[i] > 0.0) * 4 + (p_challenge[i] > 0.0) * 2 + (p_block[i] > 0.0)
        for k in range(ladders.shape[0]):  # seven thresholds and the epsilon mixture's base
            key = key * 3 + _ladder(s, ladders[k, 0], ladders[k, 1])
        key = key * 3 + (_ladder(s, 0.02, 0.2) if funding[i] == prepaid else _ladder(s, 0.05, 0.4))
        key = key * 3 + (2 if (a >= 1000.0 and s >= 0.2) else (1 if s >= 0.05 else 0))
        outcome = authorized[i] * 4 + disputed[i] * 2 + lost[i]
        second = (np.int64(np.float64(p).view(np.int64)) << 3) | outcome
        h = (key * 0x9E3779B97F4A7C15 + second * 0xC2B2AE3D27D4EB4F) & mask
        while True:
            if keys[h, 0] == -1:
                keys[h, 0] = key
                keys[h, 1] = second
                units += 1
                break
            if keys[h, 0] == key and keys[h, 1] == second:
                break
            h = (h + 1) & mask
        moments[h, 0] += 1.0
        moments[h, 1] += a
        moments[h, 2] += a * a
    return keys, moments, bad, units


def floor_pass(columns: dict[str, np.ndarray], prepaid_rows: pl.Series) -> tuple[int, np.ndarray]:
    """The fused pass over one shard's coded columns: (units, bad rows per range check, then null flags per flag
    column); `prepaid_rows`: funding == prepaid."""
    grid = [(p["challenge_above"], p["block_above"]) for p in policies() if p["kind"] == "threshold"]
    ladders = np.asarray(grid + [(0.05, 0.4)], dtype=np.float64)
    where = prepaid_rows.arg_true()  # the rows whose funding is prepaid: their code
    prepaid = int(columns["card_funding"][where[0]]) if len(where) else -1
    edges = np.asarray([10.0, 50.0, 200.0, 1000.0])
    capacity = 1 << 18  # 4x the ~53 k units of a 1 M-row shard: a real pass would grow its table as units appear
    _, _, bad, units = fused(columns["card_country"], columns["card_brand"], columns["mcc"], columns["card_funding"],
                             columns["action"], *(columns[c] for c in FLOATS), *(columns[c] for c in FLAGS),
                             ladders, prepaid, edges, capacity)
    return units, np.concatenate([bad, columns["nulls"]])


def today(path: Path, rows: int) -> tuple[float, float, float]:
    """CPU seconds of today's shard (read, checks, statistics) on the same row group, as `run_shard` runs them."""
    from simulator.config import parse_config
    from simulator.data.load import latest_timestamp, open_source, scan_dataset
    from simulator.data.shard_checks import fold_checks
    from simulator.engine.shards import Job, Shard, read_shard, shard_checks
    from simulator.plan.changes import with_changes
    from simulator.plan.compiled import compile_plan
    from simulator.plan.moments import needed_sums
    from simulator.stats.shard import shard_stats

    config = parse_config(config_table(0))
    schema = config.data.schema()
    source = open_source(str(path.parent.resolve()), schema)
    scan = scan_dataset(source, schema)
    names = scan.collect_schema().names()
    plan = with_changes(compile_plan(config, scan, as_of=latest_timestamp(source, schema)), names,
                        schema.resolved_scores(names), config.segments)
    folded = fold_checks(source, schema, as_of=plan.as_of, label_maturity_days=config.data.label_maturity_days)
    assert folded is not None
    job = Job(plan=plan, needs=needed_sums(plan), schema=schema, source=source, checks=folded.shard)
    shard = Shard(id=0, path=str(path.resolve()), offset=0, rows=rows)
    frame, read_s = best_cpu(lambda: read_shard(shard, job), 1)
    _, checks_s = best_cpu(lambda: shard_checks(frame, folded.shard), 1)
    _, stats_s = best_cpu(lambda: shard_stats(frame.select(sorted(plan.columns)), plan, job.needs), 1)
    return read_s, checks_s, stats_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="a generated log's folder of Parquet files")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = sorted(args.data.glob("*.parquet"))[0]
    import pyarrow.parquet as pq
    rows = pq.ParquetFile(path).metadata.row_group(0).num_rows
    frame = read(path, rows)
    columns = coded(frame)
    floor_pass(columns, frame["card_funding"] == "prepaid")  # compile
    results: dict[str, list[float]] = {k: [] for k in ("read", "coding", "fused", "today read", "today checks",
                                                       "today statistics")}
    for _ in range(args.repeats):  # alternated, so the two designs meet the same load
        frame, seconds = best_cpu(lambda: read(path, rows), 1)
        results["read"].append(seconds)
        columns, seconds = best_cpu(lambda: coded(frame), 1)
        results["coding"].append(seconds)
        (units, bad), seconds = best_cpu(lambda: floor_pass(columns, frame["card_funding"] == "prepaid"), 1)
        results["fused"].append(seconds)
        for label, seconds in zip(("today read", "today checks", "today statistics"), today(path, rows), strict=True):
            results[label].append(seconds)
    best = {k: min(v) for k, v in results.items()}
    per = 1e6 / rows
    print(f"shard: {path.name}, row group 0, {rows:,} rows; {units:,} units; bad rows per check {bad.tolist()}")
    print("CPU seconds per 1 M rows (best of the rounds):")
    for label, seconds in best.items():
        print(f"  {label:<18} {seconds * per:6.3f}")
    floor = best["read"] + best["coding"] + best["fused"]
    now = best["today read"] + best["today checks"] + best["today statistics"]
    print(f"floor (read + coding + fused pass) {floor * per:.3f} = {floor / best['read']:.2f}x its read; "
          f"today (read + checks + statistics) {now * per:.3f} = {now / best['today read']:.2f}x its read; "
          f"today / floor {now / floor:.2f}")


if __name__ == "__main__":
    main()
