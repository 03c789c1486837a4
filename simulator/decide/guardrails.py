"""Guardrail checks of a review: every guardrail × segment outcome, and the verdict (SPEC §8).

Each `[[review.guardrails]]` entry (`simulator.config_tables.Guardrail`) is
checked on the candidate's paired deltas against the baseline:

- the limit bounds the delta (candidate − baseline) of one metric from above
  (`max_increase`, `max_relative_increase`) or below (`min_delta`,
  `min_relative_delta`); relative limits are fractions of |baseline| in the
  same segment;
- `insufficient_data` when the estimate is flagged (no_support, low_ess, few_events,
  unidentified), has fewer than `min_rows` rows or an ESS below `min_ess`;
- `pass` when the delta's interval lies entirely in the allowed region;
- `fail` when the interval lies entirely on the wrong side of the limit; in a
  segment other than ALL, the one-sided test of "the delta is within the
  limit" must also reject after Holm's step-down correction over every tested
  segment check of the review at α = 1 − confidence (p-values from delta and
  delta_se, normal). Holm bounds the chance of *any* false segment failure by
  α under any dependence between the checks, guardrails of opposite
  directions on one metric included (where Benjamini–Hochberg's assumptions
  fail). Segment ALL is each guardrail's one pre-specified check: its interval
  is its test, and it is kept out of the family so that a clear overall breach
  is not diluted by a hundred noisy segments;
- `inconclusive` otherwise (the interval straddles the limit, or a segment's
  breach does not survive the multiple-testing correction).

The burden of proof is on the candidate: a guardrail passes only when every
checked interval lies inside the allowed region (an intersection-union test:
each check at its own level keeps the whole at that level, no correction
needed), and a guardrail whose ALL row is flagged or thin cannot pass.

docs/review.md states the rule and why.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from scipy import special

from segments.labels import ALL
from simulator.config_tables import Guardrail

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
INSUFFICIENT = "insufficient_data"
OUTCOMES: tuple[str, ...] = (FAIL, INCONCLUSIVE, INSUFFICIENT, PASS)  # worst first
MULTIPLE_TESTING = "Holm"

GUARDRAIL_SCHEMA: dict[str, type[pl.DataType]] = {
    "guardrail": pl.Int32,  # index in [[review.guardrails]]
    "name": pl.String,  # e.g. "fraud_rate_bps max_increase 1"
    "metric": pl.String,
    "scope": pl.String,
    "limit_kind": pl.String,
    "limit_value": pl.Float64,  # as configured
    "limit": pl.Float64,  # the bound on the delta in this segment
    "segmentation": pl.String,
    "segment": pl.String,
    "rows": pl.Int64,
    "ess": pl.Float64,
    "flag": pl.String,
    "baseline": pl.Float64,
    "estimate": pl.Float64,
    "delta": pl.Float64,
    "delta_se": pl.Float64,
    "delta_ci_low": pl.Float64,
    "delta_ci_high": pl.Float64,
    "p_value": pl.Float64,  # one-sided, H0: the delta is within the limit
    "p_adjusted": pl.Float64,  # Holm over the tested segment checks; ALL: p_value as it is
    "outcome": pl.String,
    "reason": pl.String,
}


def verdict(outcomes: pl.DataFrame) -> str:
    """fail if any check fails; inconclusive if any is inconclusive or a guardrail cannot be checked
    even overall (segment ALL has insufficient data); pass otherwise."""
    seen = set(outcomes["outcome"].to_list())
    if FAIL in seen:
        return FAIL
    overall_blind = outcomes.filter((pl.col("segment") == ALL) & (pl.col("outcome") == INSUFFICIENT)).height > 0
    if INCONCLUSIVE in seen or overall_blind:
        return INCONCLUSIVE
    return PASS


def evaluate_guardrails(results: pl.DataFrame, guardrails: tuple[Guardrail, ...], *, confidence: float) -> pl.DataFrame:
    """Every guardrail × segment outcome (GUARDRAIL_SCHEMA) from one candidate's results rows.

    `results` needs the RESULT_SCHEMA columns segmentation, segment, metric,
    estimate, baseline, delta, delta_se, delta_ci_low, delta_ci_high, rows, ess
    and flag. Holm's correction runs once over the tested segment checks of all
    guardrails together, so the chance that some segment fails a candidate that
    breaks no guardrail stays at most 1 − confidence however many are checked.
    """
    frames = [_checks(results, index, g) for index, g in enumerate(guardrails)]
    if not frames:
        return pl.DataFrame(schema=GUARDRAIL_SCHEMA)
    checks = pl.concat(frames, how="vertical")
    tested = ~checks["insufficient"].to_numpy()
    overall = (checks["segment"] == ALL).to_numpy()
    p_values = checks["p_value"].fill_null(np.nan).to_numpy()
    adjusted = np.where(tested & overall, p_values, np.nan)  # ALL: not in the family, its interval is its test
    family = tested & ~overall
    adjusted[family] = holm_adjust(p_values[family])
    checks = checks.with_columns(pl.Series("p_adjusted", adjusted, dtype=pl.Float64).fill_nan(None))
    return _outcomes(checks, alpha=1.0 - confidence).select(list(GUARDRAIL_SCHEMA)).cast(GUARDRAIL_SCHEMA)  # type: ignore[arg-type]


def holm_adjust(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values: a test rejects at family-wise level α when its adjusted p ≤ α.

    Sorted ascending, p_(i) becomes max over j ≤ i of min(1, (m − j + 1)·p_(j)).
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (p.size - np.arange(p.size)) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def one_sided_p(delta: np.ndarray, delta_se: np.ndarray, limit: np.ndarray, *, upper: bool) -> np.ndarray:
    """p-value of H0 "the delta is within the limit" against the breach, with a normal delta.

    A zero standard error (the candidate treats the segment exactly as the
    baseline) gives p = 0 for a delta beyond the limit and 1 otherwise.
    """
    excess = (delta - limit) if upper else (limit - delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = excess / delta_se
    z = np.where(delta_se > 0, z, np.where(excess > 0, np.inf, -np.inf))
    return np.asarray(special.ndtr(-np.asarray(z, dtype=np.float64)), dtype=np.float64)  # the normal's upper tail


def _checks(results: pl.DataFrame, index: int, guardrail: Guardrail) -> pl.DataFrame:
    """One guardrail's rows: the limit per segment, the p-value, and whether data is insufficient."""
    rows = results.filter(pl.col("metric") == guardrail.metric)
    if guardrail.scope == "overall":
        rows = rows.filter(pl.col("segment") == ALL)
    value = guardrail.limit_value
    limit = pl.lit(value) * pl.col("baseline").abs() if guardrail.relative else pl.lit(value, dtype=pl.Float64)
    rows = rows.with_columns(
        pl.lit(index, dtype=pl.Int32).alias("guardrail"), pl.lit(guardrail.name).alias("name"),
        pl.lit(guardrail.scope).alias("scope"), pl.lit(guardrail.limit_kind).alias("limit_kind"),
        pl.lit(value, dtype=pl.Float64).alias("limit_value"), limit.alias("limit"),
        pl.col("flag").fill_null(""),
    ).with_columns(_insufficient(guardrail))
    numbers = {c: rows[c].fill_null(np.nan).to_numpy() for c in ("delta", "delta_se", "limit")}
    p = one_sided_p(numbers["delta"], numbers["delta_se"], numbers["limit"], upper=guardrail.upper)
    upper = guardrail.upper
    wrong = pl.col("delta_ci_low") > pl.col("limit") if upper else pl.col("delta_ci_high") < pl.col("limit")
    within = pl.col("delta_ci_high") <= pl.col("limit") if upper else pl.col("delta_ci_low") >= pl.col("limit")
    return rows.with_columns(pl.Series("p_value", p).fill_nan(None), wrong.alias("wrong_side"),
                             within.alias("within"))


def _insufficient(guardrail: Guardrail) -> list[pl.Expr]:
    """Why a segment cannot be checked ("" when it can), and the boolean."""
    needed = ["delta", "delta_se", "delta_ci_low", "delta_ci_high", "limit"]
    reasons = [
        pl.when(pl.col("flag") != "").then(pl.format("flagged {}", pl.col("flag"))),
        pl.when(pl.col("rows") < guardrail.min_rows).then(pl.format("{} rows < min_rows {}", pl.col("rows"),
                                                                     pl.lit(guardrail.min_rows))),
        pl.when(pl.any_horizontal([pl.col(c).is_null() | pl.col(c).is_nan() for c in needed])).then(
            pl.lit("no delta or interval")),
    ]
    if guardrail.min_ess is not None:
        reasons.append(pl.when(pl.col("ess") < guardrail.min_ess).then(
            pl.format("ess {} < min_ess {}", pl.col("ess").round(1), pl.lit(guardrail.min_ess))))
    reason = pl.concat_str(reasons, separator="; ", ignore_nulls=True).fill_null("")
    return [reason.alias("reason"), (reason != "").alias("insufficient")]


def _outcomes(checks: pl.DataFrame, *, alpha: float) -> pl.DataFrame:
    """The outcome of each row (see the module docstring) and the reason a reader sees."""
    rejected = (pl.col("segment") == ALL) | (pl.col("p_adjusted") <= alpha)
    outcome = (
        pl.when(pl.col("insufficient")).then(pl.lit(INSUFFICIENT))
        .when(pl.col("within")).then(pl.lit(PASS))
        .when(pl.col("wrong_side") & rejected).then(pl.lit(FAIL))
        .otherwise(pl.lit(INCONCLUSIVE))
    )
    reason = (
        pl.when(pl.col("insufficient")).then(pl.col("reason"))
        .when(pl.col("within")).then(pl.lit("interval within the limit"))
        .when(pl.col("wrong_side") & (pl.col("segment") == ALL)).then(pl.lit("interval beyond the limit"))
        .when(pl.col("wrong_side") & rejected).then(pl.lit("interval beyond the limit; Holm rejects"))
        .when(pl.col("wrong_side")).then(pl.lit("interval beyond the limit, but not significant after Holm"))
        .otherwise(pl.lit("interval straddles the limit"))
    )
    return checks.with_columns(outcome.alias("outcome"), reason.alias("reason"))
