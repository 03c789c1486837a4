"""`policysim review` with `[review] candidates = [...]` end to end: the ranked verdict lines, the exit code,
and a report whose first table holds every candidate's verdict next to its policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from simulator.cli import app
from tests.simulator.report.test_report import parse

RUNNER = CliRunner()
POLICIES = """
[segments]
by = [["card_country"]]
[estimation]
bootstrap = 0
[[policies]]
name = "much_stricter"
kind = "threshold"
score = "fraud_score"
challenge_above = 0.01
block_above = 0.2
[[policies]]
name = "nudge"
kind = "threshold"
score = "fraud_score"
challenge_above = 0.06
block_above = 0.4
[[policies]]
name = "loosest"
kind = "threshold"
score = "fraud_score"
challenge_above = 0.5
block_above = 0.9
[[review.guardrails]]
metric = "auth_rate"
min_delta = 0.0
"""  # on the generated log: much_stricter FAIL, nudge INCONCLUSIVE, loosest PASS (tests/simulator/workflows/test_candidates.py)


def review_cli(tmp: Path, data: Path, review: str, *options: str) -> Any:
    config = tmp / "candidates.toml"
    config.write_text(f"[review]\n{review}\n{POLICIES}")
    return RUNNER.invoke(app, ["review", str(config), "--data", str(data / "transactions"), "--out", str(tmp / "out"),
                               "--engine", "local", *options], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def reviewed(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    tmp = tmp_path_factory.mktemp("candidates")
    review = 'candidates = ["much_stricter", "nudge", "loosest"]'
    return tmp / "out", review_cli(tmp, generated, review)


def test_verdict_lines_are_ranked_one_per_candidate_and_a_pass_exits_0(reviewed: tuple[Path, Any]) -> None:
    _, result = reviewed
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("review of '")]
    assert [line.split("'")[1] for line in lines] == ["loosest", "nudge", "much_stricter"]
    assert "against 'production': PASS (rank 1 of 3;" in lines[0]
    assert "INCONCLUSIVE (rank 2 of 3;" in lines[1] and "FAIL (rank 3 of 3;" in lines[2]
    assert "recommended: 'loosest' — 'loosest' is the only candidate that passes every guardrail (exit 0)" in result.stdout
    assert "candidates pass" not in result.stdout  # no winner's-curse warning with one passing candidate
    assert "threshold fraud_score: challenge ≥ 0.5, block ≥ 0.9" in result.stdout  # the ranked table


def test_report_opens_with_every_candidate_verdict_and_policy(reviewed: tuple[Path, Any]) -> None:
    out, _ = reviewed
    markdown = (out / "review.md").read_text()
    assert markdown.startswith("# Pre-launch review: 3 candidates against 'production'")
    table = markdown[markdown.index("**Every candidate's verdict, ranked**"):]
    rows = table.splitlines()[4:7]
    assert [row.split(" | ")[1] for row in rows] == ["loosest", "nudge", "much_stricter"]
    assert "threshold fraud_score: challenge ≥ 0.01, block ≥ 0.2 | FAIL" in rows[2]
    assert "threshold fraud_score: challenge ≥ 0.5, block ≥ 0.9 | PASS" in rows[0]
    first_part = markdown.index("## 1. 'loosest': PASS")
    assert markdown.index("**Every candidate's verdict, ranked**") < first_part < markdown.index("## 3. 'much_stricter'")
    assert "### Guardrails" in markdown and markdown.count("### Overall deltas") == 3


def test_report_page_ids_images_and_files(reviewed: tuple[Path, Any]) -> None:
    out, _ = reviewed
    page = (out / "review.html").read_text()
    parsed = parse(page)
    assert page.index('id="verdict"') < page.index('id="candidates"') < page.index('id="candidate-1"')
    assert {"candidates", "candidate-1", "candidate-3", "calibration", "method", "provenance"} <= set(parsed.ids)
    ids = [tag for tag in page.split('<section id="')[1:]]
    assert len({i.split('"')[0] for i in ids}) == len(ids)  # every section id once
    assert len(parsed.images) == 3 * 3 + 1  # three forest plots per candidate, one calibration
    assert not [u for u in parsed.urls if not u.startswith("data:")]
    checks = pl.read_parquet(out / "guardrails.parquet")
    assert checks.columns[0] == "candidate" and set(checks["candidate"]) == {"much_stricter", "nudge", "loosest"}
    payload = json.loads((out / "review.json").read_text())
    assert payload["exit_code"] == 0 and payload["recommended"] == "loosest"
    assert [c["candidate"] for c in payload["candidates"]] == ["loosest", "nudge", "much_stricter"]
    assert payload["candidates"][0]["policy"] == "threshold fraud_score: challenge ≥ 0.5, block ≥ 0.9"
    assert set(payload["reviews"]) == {"much_stricter", "nudge", "loosest"} and payload["selection_warning"] is None
    assert (out / "c1_loosest_forest_net_value.png").stat().st_size > 0
    assert (out / "c3_much_stricter_forest_auth_rate.png").stat().st_size > 0


def test_no_pass_and_one_undecided_exits_3(generated: Path, tmp_path: Path) -> None:
    result = review_cli(tmp_path, generated, 'candidates = ["much_stricter", "nudge"]', "--quiet")
    assert result.exit_code == 3, result.output
    assert "recommended: none" in result.stdout and "(exit 3)" in result.stdout
    assert "candidates, ranked" not in result.stdout  # --quiet: the verdict lines only
    assert json.loads((tmp_path / "out" / "review.json").read_text())["recommended"] is None
