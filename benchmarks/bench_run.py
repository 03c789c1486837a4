"""Throughput of `run`: 10 policies × the example segments × every metric.

Baseline measured in the same run: polars reading the same columns from the
same Parquet files. Prints seconds and the ratio to that baseline, for
analytic intervals and for `bootstrap = B`.

    .venv/bin/policysim generate --rows 10000000 --files 8 --out /tmp/bench10m
    .venv/bin/python benchmarks/bench_run.py /tmp/bench10m/transactions
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl

from simulator.config import parse_config
from simulator.data.load import dataset_files
from simulator.engine.execution import Engine, Execution
from simulator.workflows.run import run

SEGMENTS = {
    "by": [["card_country"], ["card_country", "card_brand"], ["amount"]],
    "bands": {"amount": {"edges": [0, 10, 50, 200, 1000]}},
}


def policies() -> list[dict]:
    """Ten candidates of every common kind."""
    grid = [(0.02, 0.3), (0.03, 0.35), (0.05, 0.3), (0.05, 0.5), (0.1, 0.6), (0.02, 0.4), (0.08, 0.45)]
    out: list[dict] = [
        {"name": f"t{i}", "kind": "threshold", "score": "fraud_score", "challenge_above": c, "block_above": b}
        for i, (c, b) in enumerate(grid)
    ]
    out.append({"name": "prepaid", "kind": "segment_threshold", "score": "fraud_score", "column": "card_funding",
                "default": {"challenge_above": 0.05, "block_above": 0.4},
                "thresholds": {"prepaid": {"challenge_above": 0.02, "block_above": 0.2}}})
    out.append({"name": "rules", "kind": "rules", "fallback": "allow",
                "rules": [{"when": "amount >= 1000 AND fraud_score >= 0.2", "action": "block"},
                          {"when": "fraud_score >= 0.05", "action": "challenge"}]})
    out.append({"name": "explore", "kind": "epsilon", "epsilon": 0.05,
                "base": {"kind": "threshold", "score": "fraud_score", "challenge_above": 0.05, "block_above": 0.4}})
    return out


def read_baseline(path: Path, columns: list[str]) -> float:
    start = time.perf_counter()
    pl.scan_parquet(dataset_files(path)).select(columns).collect()
    return time.perf_counter() - start


def timed_run(path: Path, bootstrap: int, estimator: str, engine: Engine = "local") -> tuple[float, dict[str, float], list[str]]:
    config = parse_config({"segments": SEGMENTS, "policies": policies(),
                           "estimation": {"bootstrap": bootstrap, "estimator": estimator}})
    start = time.perf_counter()
    result = run(config, path, execution=Execution(engine=engine))
    return time.perf_counter() - start, result.timings, sorted(result.plan.columns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--estimator", default="snipw")
    args = parser.parse_args()
    rows = pl.scan_parquet(dataset_files(args.data)).select(pl.len()).collect().item()
    analytic, timings, columns = timed_run(args.data, 0, args.estimator)
    read = min(read_baseline(args.data, columns) for _ in range(3))
    print(f"rows {rows:,}; {len(columns)} columns; polars read {read:.2f} s")
    engine = timings["stats_s"] + timings["finalize_s"]
    print(f"analytic: total {analytic:.2f} s (validate {timings['validate_s']:.2f}, plan {timings['plan_s']:.2f}, "
          f"stats {timings['stats_s']:.2f}, finalize {timings['finalize_s']:.2f}); "
          f"engine/read = {engine / read:.1f}x, total/read = {analytic / read:.1f}x, {rows / analytic:,.0f} rows/s")
    if args.bootstrap:
        boot, btimings, _ = timed_run(args.data, args.bootstrap, args.estimator)
        print(f"bootstrap={args.bootstrap}: total {boot:.2f} s (stats {btimings['stats_s']:.2f}, "
              f"finalize {btimings['finalize_s']:.2f}); bootstrap/analytic = {boot / analytic:.1f}x")


if __name__ == "__main__":
    main()
