"""Coverage of the engine's intervals on FRESH populations, each estimand against its own truth (issue #12).

Unlike benchmarks/coverage_relog.py (which re-draws only the logging decisions of one
fixed population), every replication here draws new payments from the
generator's world (`simulator/synthetic/fresh.py`), runs the engine (`run_frame`) and
compares each estimate and paired delta with its truth: for `population =
"superpopulation"` the value on future traffic (n x the per-row mean over a
cached population of `--big` rows), for "finite" the value on this population's
own payments. `--labels develop` runs `immature_labels = "develop"` against the
eventual disputes of the rows old enough to develop. `--config FILE` takes the
`[value_model]` and `[metrics]` of a config (e.g. configs/pricing.toml): the
truth is computed from the same expressions, so intervals of a value model
written as SQL are checked too.

Policies: baseline `production` = threshold challenge 0.05 / block 0.4 (the
generator's logging policy without exploration); candidates `cand_a` =
challenge 0.02 / block 0.2 (coverage_relog.py's candidate) and `cand_b` = challenge
0.05 / block 0.3 (only blocks more than production).

Per (rows, estimator, population, bootstrap, labels, policy, metric, estimate|delta):
coverage, lower-tail miss (truth below the interval), upper-tail miss (truth
above), median width / (2 * 1.96 * sd of the error over replications),
bias / sd.

    # draws (appends to a parquet per invocation; split long runs into chunks of seeds)
    nice -n 10 .venv/bin/python benchmarks/coverage_fresh.py run --rows 30000 --reps 200 --out /tmp/cov/a30k.parquet
    nice -n 10 .venv/bin/python benchmarks/coverage_fresh.py run --rows 150000 --reps 100 --first-seed 0 --out /tmp/cov/a150k_0.parquet
    nice -n 10 .venv/bin/python benchmarks/coverage_fresh.py run --rows 30000 --reps 100 --estimators snipw \
        --populations superpopulation --bootstrap 200 --out /tmp/cov/boot30k.parquet
    # tables
    .venv/bin/python benchmarks/coverage_fresh.py summary /tmp/cov/*.parquet
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simulator.synthetic.fresh import (  # noqa: E402
    BASELINE, CANDIDATES, EXCLUDE, POLICIES, Labels, as_of, fresh_population, population_means, superpopulation_means,
    truth_table,
)
import tomllib  # noqa: E402

from coverage_tables import class_table, markdown, metric_table  # noqa: E402

from simulator import parse_config, run_frame  # noqa: E402  (public API: stays)
from simulator.workflows.run import RunResult  # noqa: E402

REP_SEED_BASE = 1_000_000  # replication k draws its rows with seed REP_SEED_BASE + k
Z = 1.959963984540054


def policy_tables() -> list[dict[str, object]]:
    """The candidates; the baseline is the engine's built-in production (the same thresholds on generated data)."""
    return [{"name": k, "kind": "threshold", "score": "fraud_score", "challenge_above": c, "block_above": b}
            for k, (c, b) in POLICIES.items() if k != BASELINE]


def config(estimator: str, population: str, bootstrap: int, seed: int, labels: str = "exclude",  # noqa: ANN201
           value_tables: dict[str, object] | None = None):
    return parse_config({
        "data": {"as_of": as_of(), "immature_labels": labels},  # the truth follows the same label mode
        "policies": policy_tables(),
        "baseline": {"policy": BASELINE},
        "estimation": {"estimator": estimator, "population": population, "min_ess": 0,
                       "bootstrap": bootstrap, "seed": seed},
        **(value_tables or {}),
    })


def value_tables(path: str | None) -> dict[str, object]:
    """A config file's `[value_model]` and `[metrics]` tables (none: the built-in value model)."""
    if path is None:
        return {}
    tables = tomllib.loads(Path(path).read_text())
    return {k: tables[k] for k in ("value_model", "metrics") if k in tables}


def truths(args: argparse.Namespace, result: RunResult, log: pl.DataFrame, ground: pl.DataFrame,
           cache: dict[Labels, dict]) -> tuple[dict, dict]:
    """(superpopulation truth, this population's own truth) for the label mode the run used.

    "develop" estimates every eventual dispute on the rows older than its minimum age, which the run
    reads off the data: the truth follows that age (one cached truth population per age seen).
    """
    development = result.plan.development
    labels = EXCLUDE if development is None else Labels(development.min_age_days, eventual=True)
    values = result.plan.values
    if labels not in cache:
        cache[labels] = truth_table(superpopulation_means(args.big, labels=labels, values=values), args.rows, values)
    return cache[labels], truth_table(population_means(log, ground, labels=labels, values=values), args.rows, values)


def run(args: argparse.Namespace) -> None:
    cache: dict[Labels, dict] = {}
    tables = value_tables(args.config)
    frames, start = [], time.perf_counter()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    combos = [(e, p) for e in args.estimators.split(",") for p in args.populations.split(",")
              if not (e == "dr" and p == "superpopulation" and args.bootstrap)]  # no DR superpopulation bootstrap
    for k in range(args.first_seed, args.first_seed + args.reps):
        log, ground = fresh_population(args.rows, REP_SEED_BASE + k, exploration=args.exploration)
        for estimator, population in combos:
            ran = run_frame(config(estimator, population, args.bootstrap, k, args.labels, tables), log)
            truth, own = truths(args, ran, log, ground, cache)
            result = ran.overall().filter(pl.col("policy").is_in(CANDIDATES)).select(
                "policy", "metric", "estimate", "ci_low", "ci_high", "delta", "delta_ci_low", "delta_ci_high",
                "interval", "ess", "flag")
            frames.append(result.with_columns(
                rep=pl.lit(k), rows=pl.lit(args.rows), estimator=pl.lit(estimator), population=pl.lit(population),
                bootstrap=pl.lit(args.bootstrap), exploration=pl.lit(args.exploration), labels=pl.lit(args.labels),
                truth=pl.Series([truth[(p, m)] for p, m in result.select("policy", "metric").iter_rows()]),
                delta_truth=pl.Series([truth[(f"delta:{p}", m)] for p, m in result.select("policy", "metric").iter_rows()]),
                finite_truth=pl.Series([own[(p, m)] for p, m in result.select("policy", "metric").iter_rows()]),
                finite_delta_truth=pl.Series([own[(f"delta:{p}", m)]
                                              for p, m in result.select("policy", "metric").iter_rows()]),
            ))
        if (k - args.first_seed) % 10 == 9:  # checkpoint: a partial run is still usable
            pl.concat(frames).write_parquet(out)
            print(f"  {k - args.first_seed + 1} reps, {time.perf_counter() - start:.0f} s", flush=True)
    pl.concat(frames).write_parquet(out)
    print(f"{args.reps} reps of {args.rows:,} rows in {time.perf_counter() - start:.0f} s -> {out}")


def long_form(draws: pl.DataFrame) -> pl.DataFrame:
    """One row per (draw, kind) with kind = estimate | delta; each estimand against its own truth
    (finite: this population's counterfactual value; superpopulation: the mean over future traffic)."""
    if "labels" not in draws.columns:
        draws = draws.with_columns(labels=pl.lit("exclude"))
    if "finite_truth" not in draws.columns:  # older runs: the superpopulation truth for both
        draws = draws.with_columns(finite_truth="truth", finite_delta_truth="delta_truth")
    finite = pl.col("population") == "finite"
    keys = ["rep", "rows", "estimator", "population", "bootstrap", "labels", "policy", "metric", "interval"]
    est = draws.select(*keys, kind=pl.lit("estimate"), value="estimate", low="ci_low", high="ci_high",
                       truth=pl.when(finite).then("finite_truth").otherwise("truth"))
    dlt = draws.select(*keys, kind=pl.lit("delta"), value="delta", low="delta_ci_low", high="delta_ci_high",
                       truth=pl.when(finite).then("finite_delta_truth").otherwise("delta_truth"))
    return pl.concat([est, dlt])


def summarise(draws: pl.DataFrame) -> pl.DataFrame:
    """Coverage, tail misses, width ratio and bias per configuration, metric and kind."""
    slack = 1e-9 * (pl.col("truth").abs() + 1.0)
    return (
        long_form(draws)
        .group_by("rows", "estimator", "population", "bootstrap", "labels", "policy", "metric", "kind",
                  maintain_order=True)
        .agg(
            reps=pl.len(),
            truth=pl.col("truth").mean(),
            coverage=((pl.col("low") - slack <= pl.col("truth")) & (pl.col("truth") <= pl.col("high") + slack)).mean(),
            miss_low=(pl.col("truth") < pl.col("low") - slack).mean(),  # interval entirely above the truth
            miss_high=(pl.col("truth") > pl.col("high") + slack).mean(),  # interval entirely below the truth
            width_ratio=((pl.col("high") - pl.col("low")).median() / (2 * Z * (pl.col("value") - pl.col("truth")).std())),
            bias_sd=((pl.col("value") - pl.col("truth")).mean() / (pl.col("value") - pl.col("truth")).std()),
            undefined=(pl.col("low").is_null() | pl.col("high").is_null()).mean(),
            interval=pl.col("interval").first(),
        )
    )


def summary(args: argparse.Namespace) -> None:
    draws = pl.concat([pl.read_parquet(p) for p in args.files], how="diagonal_relaxed")
    table = summarise(draws)
    if args.csv:
        table.write_csv(args.csv)
    keys = ["rows", "estimator", "population", "bootstrap", "labels"]
    print("cell = coverage (share with truth below the interval / above it) median width / (2 * 1.96 * sd)\n")
    for key, part in table.group_by(*keys, maintain_order=True):
        interval = part["interval"].drop_nulls().unique().sort().to_list()
        print(f"\n### {key[0]:,} rows, {key[1]}, {key[2]}, bootstrap={key[3]}, labels={key[4]}, "
              f"{part['reps'].max()} fresh populations")
        print(f"(engine interval: {'; '.join(interval)})\n")
        print(metric_table(part))
    print("\n### worst case per metric class (both candidates)\n")
    worst = class_table(table, keys)
    print(markdown(worst))
    print("\n### compact: min coverage / largest tail miss / median width ratio, per class\n")
    cells = worst.with_columns(
        cell=pl.format("{} / {} / {}", pl.col("cov_min").round(2), pl.col("tail_max").round(2),
                       pl.when(pl.col("width_med").is_finite() & (pl.col("width_med") < 1e6))
                       .then(pl.col("width_med").round(2).cast(pl.String))
                       .otherwise(pl.lit("exact"))),  # the estimate does not vary: its own payments (finite)
        mode=pl.format("{} {} {} {}", pl.col("estimator"), pl.col("population"),
                       pl.when(pl.col("bootstrap") > 0).then(pl.lit("boot")).otherwise(pl.lit("analytic")),
                       pl.col("labels")))
    print(markdown(cells.pivot(on="mode", index=["rows", "kind", "cls"], values="cell").sort("rows", "kind", "cls")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="draw replications and save the engine's results")
    r.add_argument("--rows", type=int, default=30_000)
    r.add_argument("--reps", type=int, default=200)
    r.add_argument("--first-seed", type=int, default=0)
    r.add_argument("--estimators", default="ipw,snipw,dr")
    r.add_argument("--populations", default="finite,superpopulation")
    r.add_argument("--bootstrap", type=int, default=0)
    r.add_argument("--exploration", type=float, default=0.1)
    r.add_argument("--big", type=int, default=4_000_000, help="rows of the truth population")
    r.add_argument("--labels", choices=["exclude", "develop"], default="exclude", help="[data] immature_labels")
    r.add_argument("--config", help="a config whose [value_model] and [metrics] the runs and the truth use")
    r.add_argument("--out", required=True)
    s = sub.add_parser("summary", help="print coverage tables from saved draws")
    s.add_argument("files", nargs="+")
    s.add_argument("--csv")
    args = parser.parse_args()
    run(args) if args.command == "run" else summary(args)


if __name__ == "__main__":
    main()
