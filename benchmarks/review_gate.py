"""How often a review gate set exactly at the candidate's true delta FAILs or PASSes (issue #13), on future traffic.

Reads the draws of `coverage_fresh.py` (fresh populations, the engine's intervals,
the superpopulation truth) and applies the review rule of `simulator.decide.guardrails`
to an overall guardrail whose limit is the metric's true delta:

- `min_delta = truth` (the candidate must not lose more than it truly does):
  PASS when the whole delta interval is ≥ the limit, FAIL when it is entirely below;
- `max_increase = truth`: PASS when the whole interval is ≤ the limit, FAIL when
  entirely above;
- a flagged row (any flag, when the draws carry `flag`) is INCONCLUSIVE either way.

At the true delta a correct two-sided 95 % interval makes each of PASS and FAIL
happen about 2.5 % of the time: more FAILs means a good candidate is blocked
too often, more PASSes that a bad one gets through.

    .venv/bin/python benchmarks/review_gate.py /tmp/cov/a30k.parquet [more.parquet ...]
"""

from __future__ import annotations

import sys

import polars as pl

METRICS = ["net_value", "revenue", "authorized_count", "auth_rate", "fraud_count", "fraud_loss", "fraud_rate_bps",
           "block_rate"]


def gate_rates(draws: pl.DataFrame) -> pl.DataFrame:
    """Per (rows, candidate, metric): the PASS and FAIL rates of both guardrail directions at the true delta."""
    clean = pl.col("flag").fill_null("") == "" if "flag" in draws.columns else pl.lit(True)
    low, high, truth = pl.col("delta_ci_low"), pl.col("delta_ci_high"), pl.col("delta_truth")
    defined = draws.filter(pl.col("metric").is_in(METRICS) & low.is_not_null() & (high - low > 0))
    return defined.group_by("rows", "policy", "metric").agg(
        populations=pl.len(),
        min_delta_fail=((high < truth) & clean).mean(),
        min_delta_pass=((low >= truth) & clean).mean(),
        max_increase_fail=((low > truth) & clean).mean(),
        max_increase_pass=((high <= truth) & clean).mean(),
        flagged=(~clean).mean() if "flag" in draws.columns else pl.lit(0.0),
    ).sort("rows", "policy", "metric")


def main(paths: list[str]) -> None:
    draws = pl.concat([pl.read_parquet(p) for p in paths], how="diagonal_relaxed")
    rates = gate_rates(draws)
    columns = rates.columns
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("---" for _ in columns) + " |")
    for row in rates.iter_rows():
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
