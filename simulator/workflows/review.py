"""Pre-launch review: one candidate, or several side by side, against the baseline with guardrails (SPEC §8, §11).

`review()` evaluates the `[review] candidate` policy against the baseline on
every configured segment and metric (with `run()`), checks each
`[[review.guardrails]]` entry on the paired deltas
(`simulator.decide.guardrails`: the outcomes, Holm's correction and the
verdict), and calibrates the logged scores. `review_candidates()` does the same
for `[review] candidates = [...]` in one run that evaluates every candidate
(one pass over the data), checks each against the same guardrails (Holm per
candidate) and ranks them (`simulator.decide.ranking`). The `[review]` table
was validated with the config. docs/review.md states the rules and why;
`simulator.report.review` and `simulator.report.candidates` write the reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import polars as pl

from simulator.config import RunConfig, derive
from simulator.config_tables import ReviewConfig
from simulator.data.load import scan_dataset
from simulator.decide.guardrails import FAIL, INCONCLUSIVE, OUTCOMES, PASS, evaluate_guardrails, verdict
from simulator.decide.ranking import rank_candidates
from simulator.engine.execution import Execution
from simulator.errors import InvalidConfig
from simulator.report.calibration import calibrations
from simulator.workflows.run import RunResult, resolve_data, run, run_summary


def review_config(config: RunConfig, source: str = "config") -> ReviewConfig:
    """The config's `[review]` table (validated with the config); a config without one raises `InvalidConfig`."""
    if config.review is None:
        raise InvalidConfig(f"{source}: no [review] table; add one with candidate = \"<policy name>\"")
    return config.review


def candidate_config(config: RunConfig, candidates: str | Sequence[str], source: str = "config") -> RunConfig:
    """The config with its policies filtered to the candidates and a named baseline (re-validated)."""
    names = {candidates} if isinstance(candidates, str) else set(candidates)
    keep = names | {config.baseline.policy}
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
    (the config file) is recorded in the summary. A table with
    `candidates = [...]` is reviewed by `review_candidates()`.

    Example::

        result = review(load_config(Path("configs/example.toml")), Path("data/transactions"),
                        execution=Execution(engine="local"))
        result.verdict, result.guardrails.filter(pl.col("outcome") != "pass")
    """
    if review_config(config, config_source).several:
        raise InvalidConfig(f"{config_source}: review.candidates: several candidates are reviewed by "
                            "review_candidates(), which ranks them")
    return _review_each(config, data, execution=execution, config_source=config_source)[0]


def review_candidates(config: RunConfig, data: str | Path | None = None, *, execution: Execution = Execution(),
                      config_source: str = "config") -> CandidatesReview:
    """Review every `[review] candidates` policy against the same guardrails in one run, and rank them.

    One `run()` evaluates all candidates and the baseline (one pass over the
    data); each candidate's checks and Holm family are its own, as if it were
    reviewed alone; the ranking is `simulator.decide.ranking`'s. A table with
    `candidate = "name"` gives a ranking of one.

    Example::

        reviewed = review_candidates(load_config(Path("configs/candidates.toml")), Path("data/transactions"),
                                     execution=Execution(engine="local"))
        reviewed.ranking, reviewed.recommended(), reviewed.exit_code()
    """
    checked = review_config(config, config_source)
    each = {r.candidate: r for r in _review_each(config, data, execution=execution, config_source=config_source)}
    verdicts = pl.DataFrame({"candidate": list(each), "verdict": [r.verdict for r in each.values()]},
                            schema={"candidate": pl.String, "verdict": pl.String})
    run_result = next(iter(each.values())).run
    ranking = rank_candidates(verdicts, run_result.results, metric=checked.rank_metric, sense=checked.rank_sense)
    return CandidatesReview(reviews=tuple(each[name] for name in ranking["candidate"].to_list()), ranking=ranking,
                            config=checked, run=run_result,
                            policies={p.name: p.params() for p in config.policies if p.name in each})


def _review_each(config: RunConfig, data: str | Path | None, *, execution: Execution,
                 config_source: str) -> list[ReviewResult]:
    """Every reviewed candidate's result, in the config's order, from one run over the data."""
    checked = review_config(config, config_source)
    path = resolve_data(config, data)
    evaluated = candidate_config(config, checked.names, config_source)
    result = run(evaluated, path, execution=execution, changes=False)  # one pass evaluates every candidate and the baseline
    start = time.perf_counter()
    confidence = config.estimation.confidence
    checks = {name: evaluate_guardrails(result.results.filter(pl.col("policy") == name), checked.guardrails,
                                        confidence=confidence)  # Holm's family: this candidate's checks
              for name in checked.names}
    scan = scan_dataset(result.source or path, config.data.schema())  # the files the run opened, not listed again
    curves = calibrations(scan, cutoff=result.plan.cutoff)
    result = replace(result, timings={**result.timings, "review_s": time.perf_counter() - start})
    summary = run_summary(result, evaluated, path, config_source)
    return [ReviewResult(candidate=name, baseline=result.plan.baseline, verdict=verdict(outcomes),
                         guardrails=outcomes, results=result.results.filter(pl.col("policy") == name),
                         calibration=curves, summary=summary, config=checked, confidence=confidence, run=result)
            for name, outcomes in checks.items()]


@dataclass(frozen=True)
class CandidatesReview:
    """Several candidates reviewed side by side: each one's review, best first, and the ranking that orders them."""

    reviews: tuple[ReviewResult, ...]  # in rank order
    ranking: pl.DataFrame  # simulator.decide.ranking.RANKING_SCHEMA, same order
    config: ReviewConfig
    run: RunResult  # the one run that evaluated every candidate
    policies: dict[str, dict[str, Any]]  # each candidate's [[policies]] table (kind and parameters), for the report

    @property
    def baseline(self) -> str:
        return self.run.plan.baseline

    def passing(self) -> tuple[str, ...]:
        """The candidates that pass every guardrail, best first."""
        return tuple(r.candidate for r in self.reviews if r.verdict == PASS)

    def recommended(self, *, allow_inconclusive: bool = False) -> ReviewResult | None:
        """The best-ranked candidate the gate lets through (its own exit code is 0), or None."""
        return next((r for r in self.reviews if r.exit_code(allow_inconclusive=allow_inconclusive) == 0), None)

    def exit_code(self, *, allow_inconclusive: bool = False) -> int:
        """0 when a candidate is recommended; 1 when every candidate fails; 3 otherwise (none passes, some undecided).

        With one candidate this is that candidate's own exit code (SPEC §8).
        """
        if self.recommended(allow_inconclusive=allow_inconclusive) is not None:
            return 0
        return EXIT_FAIL if all(r.verdict == FAIL for r in self.reviews) else EXIT_INCONCLUSIVE
