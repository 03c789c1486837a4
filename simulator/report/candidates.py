"""The report of several candidates reviewed side by side (review.html, review.md, review.json, ...).

Reading order: the verdict banner (the recommendation, or why there is none,
and the warning that a best-of-several choice is optimistic); one table of
every candidate's verdict, ranked, with its policy in one line and the reason
for its rank; a guardrail × candidate table; then each candidate's own
sections as a single review shows them (guardrails, overall deltas, forest
plots, movers, support); then what they share: score calibration, method and
provenance. docs/review.md, "Several candidates side by side", explains it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl

from segments.labels import ALL
from simulator.decide.guardrails import FAIL, INCONCLUSIVE, INSUFFICIENT, MULTIPLE_TESTING, OUTCOMES, PASS
from simulator.decide.ranking import recommendation_note
from simulator.report.files import write_bytes, write_json, write_parquet, write_text
from simulator.report.folders import staged_folder
from simulator.report.numbers import format_interval, format_value
from simulator.report.policy_text import describe_policy
from simulator.report.review import (LABEL, VERDICT_TEXT, ReviewFiles, calibration_section, candidate_sections,
                                     provenance_section, review_json, verdict_details)
from simulator.report.review_page import Report, Section, Table, render_html, render_markdown
from simulator.workflows.review import CandidatesReview, ReviewResult


def policy_lines(reviewed: CandidatesReview) -> dict[str, str]:
    """Each candidate's policy in one line (`threshold fraud_score: challenge ≥ 0.05, block ≥ 0.3`)."""
    return {r.candidate: describe_policy(reviewed.policies[r.candidate]) for r in reviewed.reviews}


def selection_warning(reviewed: CandidatesReview) -> str | None:
    """The winner's-curse warning when the recommendation is the best of several passing candidates."""
    passing = reviewed.passing()
    if len(passing) < 2:
        return None
    return (f"{len(passing)} candidates pass; '{passing[0]}' was chosen as the best of them on the same data, so its "
            "reported margins and interval are optimistic (the winner's curse), and with k candidates the chance "
            "that some candidate passes by luck is up to k times a single review's. Confirm it alone on newer data "
            f"before launch, or require [estimation] confidence = 1 − 0.05/{len(reviewed.reviews)} for a "
            "Bonferroni-strength choice (docs/review.md).")


def _verdict_text(reviewed: CandidatesReview, allow_inconclusive: bool) -> str:
    code = reviewed.exit_code(allow_inconclusive=allow_inconclusive)
    chosen = reviewed.recommended(allow_inconclusive=allow_inconclusive)
    top = reviewed.reviews[0]
    what = (f"'{chosen.candidate}' recommended" if chosen is not None
            else "every candidate fails" if code == 1 else "no candidate passes; the data cannot decide")
    flag = " (--allow-inconclusive)" if allow_inconclusive else ""
    return f"{VERDICT_TEXT[top.verdict]} — {what} — exit code {code}{flag}"


def _banner(reviewed: CandidatesReview) -> tuple[str, ...]:
    by_verdict = {v: sum(r.verdict == v for r in reviewed.reviews) for v in (PASS, INCONCLUSIVE, FAIL)}
    lines = [f"{len(reviewed.reviews)} candidates against '{reviewed.baseline}', {len(reviewed.config.guardrails)} "
             "guardrails each: " + ", ".join(f"{n} {LABEL[v]}" for v, n in by_verdict.items()),
             recommendation_note(reviewed.ranking)]
    warning = selection_warning(reviewed)
    if warning:
        lines.append(f"Warning: {warning}")
    lines.append(f"multiple testing: {MULTIPLE_TESTING} per candidate at α {reviewed.reviews[0].alpha:g}, as in a "
                 "review of that candidate alone; ranking: verdict, then the "
                 f"{'lower' if reviewed.config.rank_sense == 'maximize' else 'upper'} end of the "
                 f"{reviewed.config.rank_metric} delta interval")
    return tuple(lines)


def _counts_text(result: ReviewResult) -> str:
    counts = result.counts()
    return " / ".join(str(counts[o]) for o in OUTCOMES)


def _candidates_section(reviewed: CandidatesReview) -> Section:
    policies = policy_lines(reviewed)
    metric = reviewed.config.rank_metric
    rows = tuple(
        (str(rank["rank"]), rank["candidate"], policies[rank["candidate"]], VERDICT_TEXT[rank["verdict"]],
         _counts_text(result), format_value(metric, rank["delta"], delta=True),
         format_interval(metric, rank["delta_ci_low"], rank["delta_ci_high"], delta=True), rank["reason"])
        for rank, result in zip(reviewed.ranking.iter_rows(named=True), reviewed.reviews))
    table = Table(("rank", "candidate", "policy", "verdict", "checks fail / inconclusive / insufficient / pass",
                   f"{metric} delta", "interval", "why this rank"), rows,
                  tuple(r.verdict for r in reviewed.reviews), caption="Every candidate's verdict, ranked",
                  numeric=(True, False, False, False, True, True, True, False))
    sense = reviewed.config.rank_sense
    paragraphs = (
        "Ranked by verdict (PASS before INCONCLUSIVE before FAIL), then, within a verdict, by the "
        f"{'lower' if sense == 'maximize' else 'upper'} end of the overall {metric} delta's interval "
        f"({sense} {metric}; [review] rank_by): the value the data guarantees at least, not the point estimate, "
        "which favours a noisy candidate. A flagged estimate has no bound and ranks after those that have one.",
    )
    warning = selection_warning(reviewed)
    return Section("candidates", "Candidates side by side", paragraphs=paragraphs,
                   tables=(table, _guardrail_matrix(reviewed)), notes=(warning,) if warning else ())


def _guardrail_matrix(reviewed: CandidatesReview) -> Table:
    """Guardrail × candidate: the guardrail's result and its overall delta with the interval."""
    rows = []
    for index, guardrail in enumerate(reviewed.config.guardrails):
        cells = []
        for result in reviewed.reviews:
            mine = result.guardrails.filter(pl.col("guardrail") == index)
            seen = set(mine["outcome"].to_list())
            overall_blind = mine.filter((pl.col("segment") == ALL) & (pl.col("outcome") == INSUFFICIENT)).height > 0
            worst = next((o for o in (FAIL, INCONCLUSIVE) if o in seen), INSUFFICIENT if overall_blind else PASS)
            cells.append(f"{LABEL[worst]}: {_overall_delta(result, guardrail.metric)}")
        rows.append((guardrail.name, guardrail.scope, *cells))
    return Table(("guardrail", "scope", *(r.candidate for r in reviewed.reviews)), tuple(rows),
                 caption="Each guardrail per candidate: its result and the overall delta [interval]")


def _overall_delta(result: ReviewResult, metric: str) -> str:
    row = result.results.filter((pl.col("segment") == ALL) & (pl.col("metric") == metric))
    if row.is_empty():
        return "—"
    r = row.row(0, named=True)
    return (f"{format_value(metric, r['delta'], delta=True)} "
            f"{format_interval(metric, r['delta_ci_low'], r['delta_ci_high'], delta=True)}")


def _prefix(rank: int, name: str) -> str:
    """Ids and image names of one candidate's part: unique by rank, readable by name."""
    return f"c{rank}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}_"


def _candidate_part(rank: int, result: ReviewResult, policy: str) -> tuple[Section, ...]:
    head = Section(f"candidate-{rank}", f"{rank}. '{result.candidate}': {VERDICT_TEXT[result.verdict]}",
                   paragraphs=(f"Policy: {policy}.", *verdict_details(result)))
    return (head, *candidate_sections(result, prefix=_prefix(rank, result.candidate), level=3))


def _method_section(reviewed: CandidatesReview, allow_inconclusive: bool) -> Section:
    top = reviewed.reviews[0]
    lines = (
        f"Estimator {top.summary['estimator']}; intervals at {top.confidence:.0%}; paired deltas against the "
        f"baseline '{reviewed.baseline}'. One run evaluated every candidate and the baseline (one pass over the data).",
        f"Each candidate is judged as in a review of it alone: {MULTIPLE_TESTING}'s step-down correction over its own "
        f"tested segment checks at α {top.alpha:g}; segment ALL is judged by its interval. Choosing the best of "
        "several candidates on the same data is a further selection: the winner's margins are optimistic, and "
        "no correction for it is applied here (see the warning above, and docs/review.md).",
        "Exit codes: 0 when a candidate is recommended (the best-ranked one passing every guardrail); 1 when every "
        "candidate fails; 3 when none passes and some cannot be decided"
        + (", mapped to 0 by --allow-inconclusive (the best-ranked inconclusive one is then recommended)"
           if allow_inconclusive else "; --allow-inconclusive maps 3 to 0") + "; 2 bad input or config.",
    )
    return Section("method", "Method", paragraphs=lines)


def build_candidates_report(reviewed: CandidatesReview, *, allow_inconclusive: bool = False) -> Report:
    """Every section of the side-by-side report, from a ranked review of several candidates."""
    policies = policy_lines(reviewed)
    parts = tuple(section for rank, result in enumerate(reviewed.reviews, start=1)
                  for section in _candidate_part(rank, result, policies[result.candidate]))
    top = reviewed.reviews[0]
    sections = (_candidates_section(reviewed), *parts, calibration_section(top),
                _method_section(reviewed, allow_inconclusive), provenance_section(top))
    title = f"Pre-launch review: {len(reviewed.reviews)} candidates against '{reviewed.baseline}'"
    return Report(title=title, verdict=top.verdict, verdict_text=_verdict_text(reviewed, allow_inconclusive),
                  verdict_details=_banner(reviewed), sections=sections)


def candidates_json(reviewed: CandidatesReview, *, allow_inconclusive: bool = False) -> dict[str, Any]:
    """The machine-readable side-by-side review: ranking, recommendation, exit code and every candidate's checks."""
    chosen = reviewed.recommended(allow_inconclusive=allow_inconclusive)
    policies = policy_lines(reviewed)
    return {
        "baseline": reviewed.baseline, "exit_code": reviewed.exit_code(allow_inconclusive=allow_inconclusive),
        "allow_inconclusive": allow_inconclusive, "recommended": None if chosen is None else chosen.candidate,
        "recommendation": recommendation_note(reviewed.ranking), "selection_warning": selection_warning(reviewed),
        "ranking_rule": {"order": [PASS, INCONCLUSIVE, FAIL], "then": f"{reviewed.config.rank_sense} "
                         f"{reviewed.config.rank_metric} by the pessimistic end of its overall delta interval",
                         "ties": "order of [review] candidates"},
        "candidates": [row | {"policy": policies[row["candidate"]]} for row in reviewed.ranking.to_dicts()],
        "reviews": {r.candidate: {k: v for k, v in review_json(r, allow_inconclusive=allow_inconclusive).items()
                                  if k != "summary"} for r in reviewed.reviews},
        "summary": reviewed.reviews[0].summary,
    }


def write_candidates_review(reviewed: CandidatesReview, out_dir: Path, *, allow_inconclusive: bool = False,
                            overwrite: bool = False) -> ReviewFiles:
    """review.html, review.md with its PNGs, review.json, guardrails.parquet (with a `candidate` column),
    results.parquet (every candidate) and summary.json, written whole like a single review.

    Example::

        write_candidates_review(review_candidates(config, Path("data/transactions"),
                                                  execution=Execution(engine="local")),
                                Path("out/candidates"), overwrite=True).html
    """
    report = build_candidates_report(reviewed, allow_inconclusive=allow_inconclusive)
    checks = pl.concat([r.guardrails.select(pl.lit(r.candidate).alias("candidate"), pl.all()) for r in reviewed.reviews])
    with staged_folder(out_dir, overwrite=overwrite) as folder:
        images = tuple(write_bytes(image.png, folder / image.name).name
                       for section in report.sections for image in section.figures)
        names = [r.candidate for r in reviewed.reviews]
        write_parquet(reviewed.run.results.filter(pl.col("policy").is_in(names)), folder / "results.parquet")
        write_json(reviewed.reviews[0].summary, folder / "summary.json")
        write_parquet(checks, folder / "guardrails.parquet")
        write_json(candidates_json(reviewed, allow_inconclusive=allow_inconclusive), folder / "review.json")
        write_text(render_markdown(report), folder / "review.md")
        write_text(render_html(report), folder / "review.html")
    return ReviewFiles(html=out_dir / "review.html", markdown=out_dir / "review.md", json=out_dir / "review.json",
                       guardrails=out_dir / "guardrails.parquet", images=tuple(out_dir / name for name in images))
