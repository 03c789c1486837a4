"""Ranking several reviewed candidates (docs/review.md, "Several candidates side by side").

The rule, in order:

1. the verdict: PASS before INCONCLUSIVE before FAIL. Guardrails are the
   launch conditions; a candidate the data shows to meet them outranks one it
   cannot judge, which outranks one that breaks them.
2. within a verdict, the pessimistic end of the `[review] rank_by` metric's
   overall (segment ALL) delta interval: its lower bound when maximizing
   (`net_value` by default), its upper bound when minimizing. Guardrails are
   constraints, not goals: once every one holds, a reviewer chooses on value,
   and the worst case the data allows is a fairer comparison than the point
   estimate, which rewards a candidate for being noisy. A flagged or missing
   overall estimate of that metric has no bound to compare and ranks after
   those that have one.
3. the order of `candidates` in the config (ties, and candidates without a bound).

Guardrail margins are not used to rank: they are in the units of different
metrics, so comparing them needs a scale nobody agreed on.
"""

from __future__ import annotations

import polars as pl

from segments.labels import ALL
from simulator.decide.guardrails import FAIL, INCONCLUSIVE, PASS
from simulator.report.numbers import format_value

VERDICT_RANK: dict[str, int] = {PASS: 0, INCONCLUSIVE: 1, FAIL: 2}

RANKING_SCHEMA: dict[str, type[pl.DataType]] = {
    "rank": pl.Int32,  # 1 = best
    "candidate": pl.String,
    "verdict": pl.String,  # pass | inconclusive | fail
    "rank_metric": pl.String,
    "rank_sense": pl.String,  # maximize | minimize
    "delta": pl.Float64,  # the rank metric's overall paired delta
    "delta_ci_low": pl.Float64,
    "delta_ci_high": pl.Float64,
    "bound": pl.Float64,  # the pessimistic end of that interval; null when flagged or missing
    "flag": pl.String,
    "reason": pl.String,  # why this rank, for a reader
}


def rank_candidates(verdicts: pl.DataFrame, results: pl.DataFrame, *, metric: str, sense: str) -> pl.DataFrame:
    """The candidates, best first (RANKING_SCHEMA), by the rule of the module docstring.

    `verdicts` has one row per candidate (`candidate`, `verdict`) in the config's
    order; `results` the run's RESULT_SCHEMA rows of every candidate.
    """
    overall = results.filter((pl.col("segment") == ALL) & (pl.col("metric") == metric)).select(
        pl.col("policy").alias("candidate"), "delta", "delta_ci_low", "delta_ci_high",
        pl.col("flag").fill_null(""))
    end = "delta_ci_low" if sense == "maximize" else "delta_ci_high"
    trusted = (pl.col("flag").fill_null("") == "") & pl.col(end).is_not_null() & pl.col(end).is_not_nan()
    ranked = (
        verdicts.with_row_index("_order")
        .join(overall, on="candidate", how="left")
        .with_columns(pl.when(trusted).then(pl.col(end)).otherwise(None).alias("bound"))
        .with_columns(pl.col("verdict").replace_strict(VERDICT_RANK, return_dtype=pl.Int32).alias("_verdict"),
                      (pl.col("bound") if sense == "maximize" else -pl.col("bound")).alias("_key"))
        .sort(["_verdict", "_key", "_order"], descending=[False, True, False], nulls_last=True)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).alias("rank"),
                      pl.lit(metric).alias("rank_metric"), pl.lit(sense).alias("rank_sense"))
    )
    reasons = [_reason(row, metric=metric, sense=sense) for row in ranked.iter_rows(named=True)]
    return ranked.with_columns(pl.Series("reason", reasons, dtype=pl.String)).select(
        list(RANKING_SCHEMA)).cast(RANKING_SCHEMA)  # type: ignore[arg-type]


def _reason(row: dict[str, object], *, metric: str, sense: str) -> str:
    """Why a candidate sits where it does: its verdict, then the bound that ordered it within the verdict."""
    verdict = {PASS: "passes every guardrail", INCONCLUSIVE: "no guardrail fails, but the data cannot decide one",
               FAIL: "a guardrail fails"}[str(row["verdict"])]
    bound = row["bound"]
    if bound is None:
        why = f"flagged {row['flag']}" if row.get("flag") else "no interval"
        return f"{verdict}; {metric} overall has no bound to rank on ({why}): after those that have one"
    side = "≥" if sense == "maximize" else "≤"
    end = "lower" if sense == "maximize" else "upper"
    return (f"{verdict}; {sense} {metric}: delta {side} {format_value(metric, float(bound), delta=True)} "  # type: ignore[arg-type]
            f"(the {end} end of its interval)")


def recommendation_note(ranking: pl.DataFrame) -> str:
    """One line on what the ranking recommends and why, for the verdict banner and stdout."""
    passing = ranking.filter(pl.col("verdict") == PASS)
    if passing.is_empty():
        return "no candidate passes every guardrail: none is recommended"
    top = passing.row(0, named=True)
    if passing.height == 1:
        return f"'{top['candidate']}' is the only candidate that passes every guardrail"
    return (f"'{top['candidate']}' ranks first of the {passing.height} candidates that pass every guardrail, by the "
            f"{'lower' if top['rank_sense'] == 'maximize' else 'upper'} end of its {top['rank_metric']} interval")
