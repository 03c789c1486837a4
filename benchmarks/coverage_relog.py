"""Interval coverage against the generator's ground truth over repeated logging draws.

Not a test (tests/simulator/test_ground_truth.py asserts the same on fewer draws):
prints, per estimator and metric, the coverage of the reported interval, of a
plain CLT interval (estimate ± z·se) for comparison, bias and RMSE.

    .venv/bin/python benchmarks/coverage_relog.py --rows 30000 --relogs 200
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import polars as pl

from simulator.config import parse_config
from simulator.synthetic.generate import GenerateSpec, generate
from simulator.plan.compiled import compile_plan
from simulator.workflows.run import run_frame
from simulator.synthetic.truth import relog, true_totals

CANDIDATE = {"name": "p", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.02, "block_above": 0.2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--relogs", type=int, default=200)
    parser.add_argument("--estimators", default="ipw,snipw,dr")
    parser.add_argument("--seed", type=int, default=99)
    parser.add_argument("--bootstrap", type=int, default=0, help="Poisson bootstrap replicates (0: analytic)")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp())
    generate(GenerateSpec(rows=args.rows, files=1, seed=args.seed, exploration=0.1), out)
    as_of = json.loads((out / "generation.json").read_text())["as_of"]
    log, truth = pl.read_parquet(out / "transactions"), pl.read_parquet(out / "ground_truth")
    start, frames = time.perf_counter(), []
    for estimator in args.estimators.split(","):
        # figures in docs/estimation.md were measured with excluded immature labels (the default then)
        config = parse_config({"data": {"as_of": as_of, "immature_labels": "exclude"}, "policies": [CANDIDATE],
                               "estimation": {"estimator": estimator, "min_ess": 0, "bootstrap": args.bootstrap,
                                              "population": "finite"}})  # fixed payments: the finite question
        plan = compile_plan(config, log.lazy())
        expected = true_totals(config, log, truth).filter(pl.col("segment") == "ALL")
        for seed in range(args.relogs):
            results = run_frame(config, relog(log, truth, seed, plan.as_of, plan.actions)).overall()
            frames.append(results.join(expected, on=["policy", "segment", "metric"]).with_columns(pl.lit(estimator).alias("estimator_")))
    draws = pl.concat(frames)
    slack = 1e-9 * (pl.col("truth").abs() + 1)
    table = draws.group_by("estimator_", "metric", maintain_order=True).agg(
        truth=pl.col("truth").first(),
        coverage=((pl.col("ci_low") - slack <= pl.col("truth")) & (pl.col("truth") <= pl.col("ci_high") + slack)).mean(),
        clt_coverage=((pl.col("truth") - pl.col("estimate")).abs() <= 1.96 * pl.col("se") + slack).mean(),
        rel_bias=((pl.col("estimate") - pl.col("truth")).mean() / pl.col("truth").first()),
        rel_rmse=(((pl.col("estimate") - pl.col("truth")) ** 2).mean().sqrt() / pl.col("truth").first().abs()),
        interval=pl.col("interval").first(),
    )
    print(f"{args.rows:,} rows, {args.relogs} logging draws per estimator, {time.perf_counter() - start:.0f} s")
    with pl.Config(tbl_rows=200, tbl_width_chars=200, float_precision=3, tbl_hide_dataframe_shape=True):
        print(table)


if __name__ == "__main__":
    main()
