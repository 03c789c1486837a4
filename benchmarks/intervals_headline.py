"""Headline table of docs/research/intervals.md: the engine (SNIPW) against the proposal, worst case per class.

    .venv/bin/python benchmarks/intervals_headline.py --engine /tmp/cov/an30k.parquet /tmp/cov/an150k_0.parquet \
        /tmp/cov/boot30k.parquet /tmp/cov/boot150k.parquet --proposal /tmp/im/m30k.parquet /tmp/im/m150k_*.parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from coverage_fresh import summarise as engine_summary  # noqa: E402
from coverage_tables import class_table, markdown  # noqa: E402
from interval_methods import summarise as method_summary  # noqa: E402
from interval_methods import with_hybrid  # noqa: E402

ORDER = ["engine finite analytic", "engine superpopulation analytic", "engine superpopulation boot",
         "proposed analytic", "proposed bootstrap"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", nargs="+", required=True)
    parser.add_argument("--proposal", nargs="+", required=True)
    args = parser.parse_args()
    engine = pl.concat([pl.read_parquet(f) for f in args.engine], how="diagonal_relaxed")
    et = class_table(engine_summary(engine), ["rows", "estimator", "population", "bootstrap"]).filter(
        pl.col("estimator") == "snipw").with_columns(
        col=pl.format("engine {} {}", pl.col("population"),
                      pl.when(pl.col("bootstrap") > 0).then(pl.lit("boot")).otherwise(pl.lit("analytic"))))
    draws = with_hybrid(pl.concat([pl.read_parquet(f) for f in args.proposal], how="diagonal_relaxed"))
    pt = class_table(method_summary(draws), ["rows", "estimator", "method"]).filter(
        pl.col("estimator") == "strat", pl.col("method").is_in(["hybrid", "boot_hybrid"])).with_columns(
        col=pl.format("proposed {}", pl.when(pl.col("method") == "hybrid").then(pl.lit("analytic"))
                      .otherwise(pl.lit("bootstrap"))))
    keep = ["rows", "kind", "cls", "col", "cov_min", "tail_max", "width_med"]
    both = pl.concat([et.select(keep), pt.select(keep)], how="vertical_relaxed").with_columns(
        cell=pl.format("{} / {} / {}", pl.col("cov_min").round(2), pl.col("tail_max").round(2),
                       pl.col("width_med").round(2)))
    table = both.pivot(on="col", index=["rows", "kind", "cls"], values="cell").sort("rows", "kind", "cls")
    print(markdown(table.select("rows", "kind", "cls", *[c for c in ORDER if c in table.columns])))


if __name__ == "__main__":
    main()
