"""Pre-launch review: a candidate against the baseline, with guardrails (SPEC §8, §11 `[review]`).

`review()` evaluates the `[review] candidate` policy against the baseline on
every configured segment and metric (with `run()`), checks each
`[[review.guardrails]]` entry on the paired deltas
(`simulator.decide.guardrails`: the outcomes, Benjamini–Hochberg and the
verdict), and calibrates the logged scores. The `[review]` table was validated
with the config. docs/review.md states the rule and why;
`simulator.report.review` writes the report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from simulator.config import RunConfig, derive
from simulator.config_tables import ReviewConfig
from simulator.data.load import scan_dataset
from simulator.decide.guardrails import FAIL, INCONCLUSIVE, OUTCOMES, evaluate_guardrails, verdict
from simulator.engine.execution import Execution
from simulator.errors import InvalidConfig
from simulator.report.calibration import calibrations
from simulator.workflows.run import RunResult, resolve_data, run, run_summary


def review_config(config: RunConfig, source: str = "config") -> ReviewConfig:
    """The config's `[review]` table (validated with the config); a config without one raises `InvalidConfig`."""
    if config.review is None:
        raise InvalidConfig(f"{source}: no [review] table; add one with candidate = \"<policy name>\"")
    return config.review


def candidate_config(config: RunConfig, candidate: str, source: str = "config") -> RunConfig:
    """The config with its policies filtered to the candidate and a named baseline (re-validated)."""
    keep = {candidate, config.baseline.policy}
    return derive(config, {"policies": [p.model_dump() for p in config.policies if p.name in keep]}, source)


EXIT_FAIL = 1  # a guardrail fails
EXIT_INCONCLUSIVE = 3  # the data cannot decide: the burden of proof is on the candidate


@dataclass(frozen=True)
class ReviewResult:
    """What a review produced: the verdict, every guardrail × segment outcome, and what backs them."""

    candidate: str
    baseline: str
    verdict: str  # fail | inconclusive | pass
    guardrails: pl.DataFrame  # GUARDRAIL_SCHEMA
    results: pl.DataFrame  # the run's results for the candidate (RESULT_SCHEMA)
    calibration: pl.DataFrame  # simulator.report.calibration.CALIBRATION_SCHEMA
    summary: dict[str, Any]  # run_summary: config, data fingerprint, as-of, timings
    config: ReviewConfig
    confidence: float
    run: RunResult

    @property
    def alpha(self) -> float:
        """The chance of any false segment failure Holm's correction allows: 1 − confidence."""
        return 1.0 - self.confidence

    def counts(self) -> dict[str, int]:
        """How many guardrail × segment checks ended in each outcome."""
        counted = dict(self.guardrails.group_by("outcome").len().iter_rows())
        return {outcome: int(counted.get(outcome, 0)) for outcome in OUTCOMES}

    def exit_code(self, *, allow_inconclusive: bool = False) -> int:
        """0 when every guardrail passes, 1 when one fails, 3 when the data cannot decide (0 if allowed)."""
        if self.verdict == FAIL:
            return EXIT_FAIL
        if self.verdict == INCONCLUSIVE and not allow_inconclusive:
            return EXIT_INCONCLUSIVE
        return 0


def review(config: RunConfig, data: str | Path | None = None, *, execution: Execution = Execution(),
           config_source: str = "config") -> ReviewResult:
    """Review `[review] candidate` against the baseline: run it, check the guardrails, calibrate the scores.

    The `[review]` table was validated when the config was loaded, so a bad
    one never reaches the data. `execution` as in `run()`; `config_source`
    (the config file) is recorded in the summary.

    Example::

        result = review(load_config(Path("configs/example.toml")), Path("data/transactions"),
                        execution=Execution(engine="local"))
        result.verdict, result.guardrails.filter(pl.col("outcome") != "pass")
    """
    checked = review_config(config, config_source)
    path = resolve_data(config, data)
    evaluated = candidate_config(config, checked.candidate, config_source)
    result = run(evaluated, path, execution=execution)
    start = time.perf_counter()
    confidence = config.estimation.confidence
    candidate_results = result.results.filter(pl.col("policy") == checked.candidate)
    outcomes = evaluate_guardrails(candidate_results, checked.guardrails, confidence=confidence)
    scan = scan_dataset(result.source or path, config.data.schema())  # the files the run opened, not listed again
    curves = calibrations(scan, cutoff=result.plan.cutoff)
    result = replace(result, timings={**result.timings, "review_s": time.perf_counter() - start})
    summary = run_summary(result, evaluated, path, config_source)
    return ReviewResult(candidate=checked.candidate, baseline=result.plan.baseline, verdict=verdict(outcomes),
                        guardrails=outcomes, results=candidate_results, calibration=curves, summary=summary,
                        config=checked, confidence=confidence, run=result)
