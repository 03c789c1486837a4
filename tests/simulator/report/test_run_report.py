"""The run report (report.html, report.md): its sections, files and the choices behind its plots."""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import polars as pl
import pytest

from simulator import Execution, parse_config, run_frame
from simulator.report.review import build_report
from simulator.workflows.review import review
from simulator.report.plots import forest_rows
from simulator.report.run_report import _sign_flip, build_run_report, candidates, write_run_report
from simulator.report.review_page import render_html, render_markdown
from simulator.synthetic.fresh import as_of, fresh_population

SVG = "{http://www.w3.org/2000/svg}"
POLICIES = [{"name": "strict", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.05, "block_above": 0.3},
            {"name": "lax", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.1, "block_above": 0.6}]


@pytest.fixture(scope="module")
def result():  # noqa: ANN201 - a RunResult
    log, _ = fresh_population(20_000, 5)
    config = parse_config({"data": {"as_of": as_of()}, "policies": POLICIES,
                           "segments": {"by": [["card_country"], ["card_funding"]], "time": "month"}})
    return run_frame(config, log)


@pytest.fixture(scope="module")
def report(result):  # noqa: ANN001, ANN201 - a Report
    """The report of `result`, built (its 5 figures rendered) once for the tests that only read it."""
    return build_run_report(result)


def test_every_section_is_there_in_reading_order(result, report) -> None:  # noqa: ANN001
    assert [s.id for s in report.sections] == ["overall", "changes", "forest", "time", "diagnostics"]
    assert candidates(result) == ["strict", "lax", "logged"]  # the logging policy's exploration last
    assert len(report.verdict_details) == 3 and report.verdict_details[0].startswith("strict: net_value ")


def test_the_page_is_self_contained_and_the_markdown_names_its_figures(result, tmp_path: Path) -> None:  # noqa: ANN001
    written = write_run_report(result, tmp_path)
    names = {p.name for p in written}
    assert {"report.html", "report.md", "forest_net_value.svg", "forest_auth_rate.svg", "time_strict.png"} <= names
    assert not any(n.startswith("forest_") and n.endswith(".png") for n in names)  # one SVG per metric, not per policy
    page = (tmp_path / "report.html").read_text()
    assert "<script" not in page and re.search(r"src=\"(?!data:)", page) is None  # nothing fetched
    assert page.count("data:image/png;base64,") == sum(n.endswith(".png") for n in names)
    assert page.count("data:image/svg+xml;base64,") == sum(n.endswith(".svg") for n in names)
    markdown = (tmp_path / "report.md").read_text()
    for name in names - {"report.html", "report.md"}:
        assert f"]({name})" in markdown
    for flag in ("no_support", "unidentified", "low_ess", "few_events"):  # a legend line for every flag
        assert f"{flag}: " in markdown


def test_decision_changes_and_examples_are_in_the_report(report) -> None:  # noqa: ANN001
    changes = next(s for s in report.sections if s.id == "changes")
    table = changes.tables[0]
    strict = [r for r in table.rows if r[0] == "strict"]
    assert {r[1] for r in strict} == {"challenge → block"}  # strict blocks [0.3, 0.4) that production challenges
    assert any(t.caption == "strict: largest payments moved challenge → block" for t in changes.tables[1:])


def test_forest_plots_leave_out_segments_below_min_rows(result) -> None:  # noqa: ANN001
    rows = forest_rows(result.results, "net_value", policy="strict", min_rows=5_000)
    assert rows["segment"][0] == "ALL"
    assert (rows.filter(pl.col("segment") != "ALL")["rows"] >= 5_000).all()
    assert forest_rows(result.results, "net_value", policy="strict").height > rows.height


def test_forest_figures_have_a_panel_per_candidate_with_all_and_the_largest_moves(result, report) -> None:  # noqa: ANN001
    forest = next(s for s in report.sections if s.id == "forest")
    assert [f.name for f in forest.figures] == ["forest_net_value.svg", "forest_fraud_rate_bps.svg",
                                                "forest_auth_rate.svg"]
    svg = ElementTree.fromstring(forest.figures[0].png)  # well-formed SVG
    texts = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    titles = [t for t in texts if t.endswith("largest moves")]
    assert [t.split(":")[0] for t in titles] == ["strict", "lax"]  # the candidates, not the logging policy
    floor = max(1_000, int(0.01 * 20_000))  # the report's default min_rows
    labels = [t.get("text-anchor") == "end" and "".join(t.itertext()) for t in svg.iter(f"{SVG}text")]
    expected = [forest_rows(result.results, "net_value", policy=p, top=20, min_rows=floor)["segment"].to_list()
                for p in ("strict", "lax")]
    assert [label for label in labels if label] == expected[0] + expected[1]  # ALL first, then by |delta|
    assert expected[0][0] == "ALL" and len(expected[0]) > 1


def test_a_sign_flip_between_windows_is_called_out() -> None:
    labels = ["2026-01", "2026-02", "2026-03"]
    certain = _sign_flip(labels, np.array([1.0, -3.0, -1.0]), np.array([2.0, -1.0, 1.0]), np.array([1.5, -2.0, 0.0]))
    assert certain.startswith("flips sign: its interval is above 0 in 2026-01 and below 0 in 2026-02")
    loose = _sign_flip(labels, np.array([-1.0, -3.0, -1.0]), np.array([2.0, 1.0, 1.0]), np.array([0.5, -1.0, 0.2]))
    assert loose.startswith("changes sign between windows (2 up, 1 down)")
    assert _sign_flip(labels, np.array([1.0, 1.0, 1.0]), np.array([2.0, 2.0, 2.0]), np.array([1.5, 1.5, 1.5])) == ""


def test_without_time_windows_there_is_no_time_section() -> None:
    log, _ = fresh_population(5_000, 6)
    run = run_frame(parse_config({"data": {"as_of": as_of()}, "policies": POLICIES[:1]}), log)
    report = build_run_report(run)
    assert "time" not in [s.id for s in report.sections]
    assert render_html(report) and render_markdown(report)


def test_a_review_with_time_windows_shows_the_candidates_deltas_per_window(tmp_path: Path) -> None:
    log, _ = fresh_population(20_000, 7)
    log.write_parquet(tmp_path / "log.parquet")
    config = parse_config({"data": {"as_of": as_of()}, "policies": POLICIES[:1], "segments": {"time": "month"},
                           "review": {"candidate": "strict",
                                      "guardrails": [{"metric": "net_value", "min_delta": -1e9, "scope": "overall"}]}})
    report = build_report(review(config, tmp_path / "log.parquet", execution=Execution(engine="local")))
    time = next(s for s in report.sections if s.id == "time")
    assert [f.name for f in time.figures] == ["time_strict.png"]
