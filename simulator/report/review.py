"""What the review report says, section by section, and writing it (review.html, review.md, ...).

Sections, in reading order: the verdict; the guardrail table and the checks
that need attention; overall deltas; forest plots of per-segment deltas; the
segments that move most in net_value; support and ESS warnings; calibration of
the logged scores; method; and provenance (config, data fingerprint, as-of).
docs/review.md explains each. All files are written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from simulator.report.calibration import calibration_error
from simulator.report.files import write_bytes, write_json, write_parquet, write_text
from simulator.report.folders import staged_folder
from simulator.report.plots import calibration_plot, figure_png, forest_plot
from simulator.report.tables import KEY_METRICS
from simulator.report.numbers import format_interval, format_relative, format_value
from simulator.report.review_page import Image, Report, Section, Table, render_html, render_markdown
from simulator.report.run_report import time_section
from simulator.decide.guardrails import FAIL, INCONCLUSIVE, INSUFFICIENT, MULTIPLE_TESTING, OUTCOMES, PASS
from simulator.workflows.review import ReviewResult
from segments.labels import ALL
from simulator.model.value import METRIC_NAMES

FOREST_METRICS: tuple[str, ...] = ("net_value", "fraud_rate_bps", "auth_rate")
MOVERS_METRIC = "net_value"
ATTENTION_ROWS = 40
LABEL = {PASS: "pass", FAIL: "FAIL", INCONCLUSIVE: "inconclusive", INSUFFICIENT: "insufficient data"}
VERDICT_TEXT = {PASS: "PASS", FAIL: "FAIL", INCONCLUSIVE: "INCONCLUSIVE"}


@dataclass(frozen=True)
class ReviewFiles:
    """Where a review was written."""

    html: Path
    markdown: Path
    json: Path
    guardrails: Path
    images: tuple[Path, ...]


def build_report(result: ReviewResult, *, allow_inconclusive: bool = False) -> Report:
    """Every section of the report, from a review result."""
    title = f"Pre-launch review: '{result.candidate}' against '{result.baseline}'"
    sections = (*candidate_sections(result), calibration_section(result), _method_section(result, allow_inconclusive),
                provenance_section(result))
    return Report(title=title, verdict=result.verdict, verdict_text=_verdict_text(result, allow_inconclusive),
                  verdict_details=verdict_details(result), sections=sections)


def candidate_sections(result: ReviewResult, *, prefix: str = "", level: int = 2) -> tuple[Section, ...]:
    """What is particular to one candidate: guardrails, overall deltas, forest plots, deltas per time window
    (with `[segments] time`), movers, support.

    `prefix` keeps section ids and image names apart when several candidates share
    a page (`simulator.report.candidates`); `level` is their heading level.
    """
    time = time_section(result.results, [result.candidate], prefix)  # with [segments] time: does it hold every window?
    sections = (_guardrail_section(result), _overall_section(result), _forest_section(result, prefix),
                *((time,) if time is not None else ()), _movers_section(result), _support_section(result))
    return tuple(replace(s, id=f"{prefix}{s.id}", level=level) for s in sections)


def _verdict_text(result: ReviewResult, allow_inconclusive: bool) -> str:
    code = result.exit_code(allow_inconclusive=allow_inconclusive)
    return f"{VERDICT_TEXT[result.verdict]} — exit code {code}{' (--allow-inconclusive)' if allow_inconclusive else ''}"


def verdict_details(result: ReviewResult) -> tuple[str, ...]:
    """The lines under a candidate's verdict: counts per outcome, failing checks, the multiple-testing rule."""
    counts = result.counts()
    total = sum(counts.values())
    lines = [f"{len(result.config.guardrails)} guardrails, {total} guardrail × segment checks: "
             + ", ".join(f"{counts[o]} {LABEL[o]}" for o in OUTCOMES)]
    failed = result.guardrails.filter(pl.col("outcome") == FAIL)
    lines += [f"fails: {r['name']} in {r['segment']} (delta {format_value(r['metric'], r['delta'], delta=True)}, "
              f"interval {format_interval(r['metric'], r['delta_ci_low'], r['delta_ci_high'], delta=True)})"
              for r in failed.head(5).iter_rows(named=True)]
    if failed.height > 5:
        lines.append(f"… and {failed.height - 5} more failing checks (see the guardrail table)")
    if counts[INCONCLUSIVE]:
        lines.append(f"{counts[INCONCLUSIVE]} checks are inconclusive: the data cannot tell whether the limit holds")
    if counts[INSUFFICIENT]:
        lines.append(f"{counts[INSUFFICIENT]} checks have insufficient data (flagged, too few rows or too low ESS)")
    lines.append(f"multiple testing: {MULTIPLE_TESTING} at α {result.alpha:g} over the {_family_size(result)} tested "
                 "segment checks; each guardrail's overall (ALL) check is judged by its interval")
    return tuple(lines)


def _guardrail_section(result: ReviewResult) -> Section:
    checks = result.guardrails
    summary_rows, classes = [], []
    for index, guardrail in enumerate(result.config.guardrails):
        mine = checks.filter(pl.col("guardrail") == index)
        counts = {o: mine.filter(pl.col("outcome") == o).height for o in OUTCOMES}
        worst = next((o for o in OUTCOMES if counts[o] and o != INSUFFICIENT), INSUFFICIENT if counts[INSUFFICIENT] else PASS)
        minimum = f"rows ≥ {guardrail.min_rows}" + (f", ess ≥ {guardrail.min_ess:g}" if guardrail.min_ess else "")
        summary_rows.append((guardrail.name, guardrail.scope, minimum, str(mine.height),
                             *(str(counts[o]) for o in OUTCOMES), LABEL[worst]))
        classes.append(worst)
    summary = Table(("guardrail", "scope", "checked when", "checks", *(LABEL[o] for o in OUTCOMES), "result"),
                    tuple(summary_rows), tuple(classes), caption="Guardrails",
                    numeric=(False, False, False, True, True, True, True, True, False))
    order = {o: i for i, o in enumerate(OUTCOMES)}
    attention = checks.filter(pl.col("outcome").is_in([FAIL, INCONCLUSIVE])
                              | ((pl.col("segment") == ALL) & (pl.col("outcome") != PASS)))
    attention = attention.with_columns(pl.col("outcome").replace_strict(order, return_dtype=pl.Int32).alias("_o")) \
        .sort(["_o", "p_adjusted", "p_value"], nulls_last=True)
    rows = tuple(
        (r["name"], r["segment"], format_value(r["metric"], r["delta"], delta=True),
         format_interval(r["metric"], r["delta_ci_low"], r["delta_ci_high"], delta=True),
         format_value(r["metric"], r["limit"], delta=True), _p(r["p_value"]), _p(r["p_adjusted"]),
         LABEL[r["outcome"]], r["reason"])
        for r in attention.head(ATTENTION_ROWS).iter_rows(named=True))
    detail = Table(("guardrail", "segment", "delta", "delta interval", "limit", "p (one-sided)", "Holm-adjusted p",
                    "outcome", "why"), rows, tuple(attention["outcome"].head(ATTENTION_ROWS).to_list()),
                   caption="Checks that need attention (fail, inconclusive, or overall without data)",
                   numeric=(False, False, True, True, True, True, True, False, False))
    notes = (f"{attention.height - ATTENTION_ROWS} more rows in guardrails.parquet." if attention.height > ATTENTION_ROWS
             else "Every guardrail × segment check, with its reason, is in guardrails.parquet and review.json.",)
    paragraphs = ("A check passes when the delta's interval lies within the limit and fails when the interval lies "
                  f"entirely beyond it (in a segment other than ALL, the breach must also survive {MULTIPLE_TESTING}'s "
                  f"correction at α {result.alpha:g}); otherwise it is inconclusive. Flagged estimates and segments "
                  "below min_rows / min_ess are insufficient data; a guardrail whose overall (ALL) check has "
                  "insufficient data cannot pass.",)
    tables = (summary, detail) if rows else (summary,)
    return Section("guardrails", "Guardrails", paragraphs=paragraphs, tables=tables, notes=notes)


def _p(value: float | None) -> str:
    return "—" if value is None else (f"{value:.2g}" if value < 0.001 else f"{value:.3f}")


def _metric_order(metrics: list[str]) -> list[str]:
    key = [m for m in KEY_METRICS if m in metrics]
    ordered = key + [m for m in METRIC_NAMES if m in metrics and m not in key]
    return ordered + [m for m in metrics if m not in ordered]  # a config's own metrics last


def _overall_section(result: ReviewResult) -> Section:
    overall = {r["metric"]: r for r in result.results.filter(pl.col("segment") == ALL).iter_rows(named=True)}
    rows, classes = [], []
    for metric in _metric_order(list(overall)):
        r = overall[metric]
        low, high = r["delta_ci_low"], r["delta_ci_high"]
        moved = low is not None and high is not None and (low > 0 or high < 0)
        rows.append((metric, format_value(metric, r["baseline"]), format_value(metric, r["estimate"]),
                     format_value(metric, r["delta"], delta=True), format_interval(metric, low, high, delta=True),
                     format_relative(r["delta"], r["baseline"]), r["flag"] or ""))
        classes.append("moved" if moved else "")
    table = Table(("metric", f"baseline ({result.baseline})", f"candidate ({result.candidate})", "delta",
                   "delta interval", "relative", "flag"), tuple(rows), tuple(classes),
                  numeric=(False, True, True, True, True, True, False))
    paragraph = (f"Totals over the replayed period (segment ALL). Money in the data's reporting currency; rates in %, "
                 f"their deltas in percentage points (pp); intervals at {result.confidence:.0%}. Shaded rows: the "
                 "delta's interval excludes 0.")
    return Section("overall", "Overall deltas", paragraphs=(paragraph,), tables=(table,))


def _forest_section(result: ReviewResult, prefix: str = "") -> Section:
    metrics = list(FOREST_METRICS) + [g.metric for g in result.config.guardrails if g.metric not in FOREST_METRICS]
    images = []
    for metric in dict.fromkeys(metrics):
        limits = [g.limit_value for g in result.config.guardrails if g.metric == metric and not g.relative]
        figure = forest_plot(result.results, metric, policy=result.candidate, top=25,
                             limit=limits[0] if len(limits) == 1 else None, min_rows=judged_rows(result), focus=True)
        images.append(Image(f"{prefix}forest_{metric}.png", f"forest plot of {metric} deltas by segment", figure_png(figure)))
    paragraph = ("Paired delta (candidate − baseline) and its interval in segment ALL and the 25 segments with the "
                 f"largest absolute delta among those with at least {judged_rows(result):,} payments (smaller ones "
                 "would set the scale with their wide intervals). Green: the interval is above 0; red: below; grey: "
                 "contains 0; hollow: flagged. The axis stays on ALL, 0, the limit and the middle of the segments' "
                 "intervals; an interval that runs off it is cut at the edge. Segments without support are not "
                 "drawn (see Support).")
    return Section("forest", "Per-segment deltas", paragraphs=(paragraph,), figures=tuple(images))


def judged_rows(result: ReviewResult) -> int:
    """The smallest segment the report's plots and movers show: the guardrails' largest `min_rows`, at least 1,000.

    A segment of a few dozen payments always "moves most", with an interval as wide as the page.
    """
    return max([1_000, *(g.min_rows for g in result.config.guardrails)])


def _movers_section(result: ReviewResult) -> Section:
    metric = MOVERS_METRIC
    rows = result.results.filter((pl.col("metric") == metric) & (pl.col("segment") != ALL)
                                 & pl.col("delta").is_not_null() & (pl.col("rows") >= judged_rows(result)))
    tables = []
    for caption, part in (("Largest gains", rows.filter(pl.col("delta") > 0).sort("delta", descending=True)),
                          ("Largest losses", rows.filter(pl.col("delta") < 0).sort("delta"))):
        body = tuple((r["segment"], format_value(metric, r["baseline"]), format_value(metric, r["delta"], delta=True),
                      format_interval(metric, r["delta_ci_low"], r["delta_ci_high"], delta=True),
                      format_relative(r["delta"], r["baseline"]), f"{r['rows']:,}", r["flag"] or "")
                     for r in part.head(10).iter_rows(named=True))
        tables.append(Table(("segment", f"baseline {metric}", "delta", "delta interval", "relative", "rows", "flag"),
                            body, caption=f"{caption} in {metric} (top 10)",
                            numeric=(False, True, True, True, True, True, False)))
    return Section("movers", f"Segments that move most ({metric})",
                   paragraphs=("Segments overlap across segmentations (a country and its country × brand cells). "
                               f"Segments with fewer than {judged_rows(result):,} payments are left out.",),
                   tables=tuple(tables))


def _support_section(result: ReviewResult) -> Section:
    # no_support and low_ess belong to the policy in a segment (the same for every metric): read them off one
    # metric; unidentified (0/0) is per metric and mostly harmless (block_precision where nothing is blocked)
    segments = result.results.filter(pl.col("metric") == "attempts").with_columns(
        pl.col("flag").fill_null("").str.split(";").list.set_difference(["unidentified", ""]).list.join(", ")
        .alias("support_flags"))
    worst = segments.filter(pl.col("support_flags") != "").sort(["unsupported_mass", "ess"], descending=[True, False])
    rows = tuple((r["segment"], f"{r['rows']:,}", f"{r['ess']:,.1f}", f"{r['max_weight'] or 0:,.1f}",
                  f"{100 * (r['unsupported_mass'] or 0):.2f} %", r["support_flags"])
                 for r in worst.head(20).iter_rows(named=True))
    unidentified = result.results.filter(pl.col("flag").fill_null("").str.contains("unidentified")).group_by(
        "metric").len().sort("len", descending=True)
    paragraphs = (
        f"{worst.height} of {segments.height} segments are flagged no_support (the candidate takes actions the "
        "logging policy never explored there, so the data cannot tell and no number is reported) or low_ess (the "
        f"estimate rests on fewer than [estimation] min_ess effective rows).",
        "Unidentified estimates (0/0, e.g. block precision where the candidate blocks nothing): "
        + (", ".join(f"{m} in {n} segments" for m, n in unidentified.iter_rows()) or "none") + ".",
    )
    table = Table(("segment", "rows", "ess", "max weight", "unsupported mass", "flags"), rows,
                  caption="Segments without support or with low ESS (no support first, then lowest ESS; top 20)",
                  numeric=(False, True, True, True, True, False))
    return Section("support", "Support and ESS warnings", paragraphs=paragraphs, tables=(table,) if rows else ())


def calibration_section(result: ReviewResult) -> Section:
    """Reliability of the logged scores (the same for every candidate: it reads the log, not a policy)."""
    curves = result.calibration
    if curves.is_empty():
        return Section("calibration", "Score calibration",
                       paragraphs=("No fraud_score or auth_score column in the data: nothing to calibrate.",))
    errors = calibration_error(curves)
    summary = Table(("score", "outcome", "rows", "calibration error"),
                    tuple((r["score"], r["outcome"], f"{r['rows']:,}", f"{r['calibration_error']:.4f}")
                          for r in errors.iter_rows(named=True)), caption="Expected calibration error",
                    numeric=(False, False, True, True))
    bins = Table(("score", "bin", "score range", "rows", "mean score", "observed rate"),
                 tuple((r["score"], str(r["bin"]), f"({r['score_low']:.3g}, {r['score_high']:.3g}]", f"{r['rows']:,}",
                        f"{r['mean_score']:.4f}", f"{r['observed_rate']:.4f}") for r in curves.iter_rows(named=True)),
                 caption="Reliability per score bin (deciles; the top decile split at the 95th, 99th, 99.9th percentiles)",
                 numeric=(False, True, False, True, True, True))
    paragraph = ("The policy and the DR estimator act on the logged scores. fraud_score against fraud disputes "
                 "among authorized, mature rows the logging policy allowed or challenged; auth_score against "
                 "authorization among rows it allowed. Rows counted as logged (not re-weighted); a fraud score can "
                 "rank well while overstating the dispute rate, since not every fraud is disputed.")
    figure = Image("calibration.png", "reliability curves of the logged scores", figure_png(calibration_plot(curves)))
    return Section("calibration", "Score calibration", paragraphs=(paragraph,), tables=(summary, bins),
                   figures=(figure,))


def _method_section(result: ReviewResult, allow_inconclusive: bool) -> Section:
    summary = result.summary
    lines = (
        f"Estimator {summary['estimator']}; intervals: {', '.join(sorted(set(result.results['interval'].to_list())))} "
        f"at {result.confidence:.0%}; paired deltas against the baseline '{result.baseline}'.",
        f"Multiple testing: {MULTIPLE_TESTING}'s step-down correction over the {_family_size(result)} tested segment "
        f"checks (all guardrails, segments other than ALL) at α {result.alpha:g} (= 1 − confidence), on one-sided "
        "normal p-values from delta and delta_se: the chance of any false segment failure stays below α whatever "
        "the dependence between checks. A segment check fails only when its interval lies entirely beyond the "
        f"limit and its Holm-adjusted p ≤ {result.alpha:g}; segment ALL, each guardrail's one pre-specified check, "
        "fails when its interval lies entirely beyond the limit.",
        "The burden of proof is on the candidate. Exit codes: 0 every guardrail passes; 1 a guardrail fails; "
        "3 the data cannot decide (a check is inconclusive, or a guardrail has no data overall)"
        + (", mapped to 0 by --allow-inconclusive" if allow_inconclusive else "; --allow-inconclusive maps 3 to 0")
        + "; 2 bad input or config.",
    )
    return Section("method", "Method", paragraphs=lines)


def _family_size(result: ReviewResult) -> int:
    return result.guardrails.filter((pl.col("outcome") != INSUFFICIENT) & (pl.col("segment") != ALL)).height


def provenance_section(result: ReviewResult) -> Section:
    """Config, data fingerprint, rows, as-of date, engine, timings and version."""
    s = result.summary
    data = s["data"]
    rows = (("config", s["config_source"]), ("data", data["path"]), ("data fingerprint (sha256)", data["fingerprint"]),
            ("rows", f"{s['rows']:,}"), ("as of", s["as_of"]), ("fraud labels", _labels_text(s)), ("engine", s["engine"]),
            ("run time", f"{s['timings'].get('total_s', 0):.1f} s (+ review {s['timings'].get('review_s', 0):.1f} s)"),
            ("policysim", s["policysim_version"]))
    code = json.dumps({"review": result.config.model_dump(mode="json", exclude_none=True), **s["config"]},
                      indent=2, default=str)
    return Section("provenance", "What this was run on", tables=(Table(("what", "value"), rows),), code=code)


def _labels_text(summary: dict[str, Any]) -> str:
    """How the run treated immature fraud labels, in one line."""
    labels = summary.get("labels", {})
    mode = labels.get("immature_labels", "exclude")
    if mode == "develop":
        return (f"developed from {labels['disputes_observed']:,} observed dispute delays (weight 1 / share arrived); "
                f"rows younger than {labels['min_age_days']} days left out")
    if mode == "include":
        return "every row's labels as logged (immature ones included)"
    return f"rows older than {summary['label_maturity_days']} days only (mature before {summary['fraud_labels_mature_before']})"


def review_json(result: ReviewResult, *, allow_inconclusive: bool = False) -> dict[str, Any]:
    """The machine-readable review: verdict, exit code, method and every guardrail × segment outcome."""
    return {
        "candidate": result.candidate, "baseline": result.baseline, "verdict": result.verdict,
        "exit_code": result.exit_code(allow_inconclusive=allow_inconclusive), "allow_inconclusive": allow_inconclusive,
        "counts": result.counts(),
        "multiple_testing": {"method": MULTIPLE_TESTING, "alpha": result.alpha, "family_size": _family_size(result),
                             "family": "every tested guardrail × segment check except segment ALL"},
        "guardrails": [g.model_dump(mode="json", exclude_none=True) | {"name": g.name} for g in result.config.guardrails],
        "checks": result.guardrails.to_dicts(),
        "summary": result.summary,
    }


def write_review(result: ReviewResult, out_dir: Path, *, allow_inconclusive: bool = False,
                 overwrite: bool = False) -> ReviewFiles:
    """review.html, review.md with its PNGs, review.json, guardrails.parquet, results.parquet, summary.json.

    The folder `out_dir` must be new or empty unless `overwrite`; it is written whole
    (built beside it and swapped in, `simulator.report.folders`).

    Example::

        write_review(review(config, Path("data/transactions"), execution=Execution(engine="local")),
                     Path("out/review"), overwrite=True).html
    """
    report = build_report(result, allow_inconclusive=allow_inconclusive)
    with staged_folder(out_dir, overwrite=overwrite) as folder:
        images = tuple(write_bytes(image.png, folder / image.name).name
                       for section in report.sections for image in section.figures)
        write_parquet(result.results, folder / "results.parquet")
        write_json(result.summary, folder / "summary.json")
        write_parquet(result.guardrails, folder / "guardrails.parquet")
        write_json(review_json(result, allow_inconclusive=allow_inconclusive), folder / "review.json")
        write_text(render_markdown(report), folder / "review.md")
        write_text(render_html(report), folder / "review.html")
    return ReviewFiles(html=out_dir / "review.html", markdown=out_dir / "review.md", json=out_dir / "review.json",
                       guardrails=out_dir / "guardrails.parquet", images=tuple(out_dir / name for name in images))
