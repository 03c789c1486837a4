"""The review report: formatting, a self-contained page (checked structurally, no browser), and the
`review` command end to end on generated data (exit codes 0 / 1 / 2 and the files)."""

from __future__ import annotations

import json
import os
import stat
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.config import parse_config
from simulator.report.plots import calibration_plot, forest_plot
from simulator.report.numbers import format_value
from simulator.report.review_page import Report, Section, Table, render_html, render_markdown
from simulator.decide.guardrails import FAIL, GUARDRAIL_SCHEMA, PASS
from simulator.workflows.review import review
from tests.conftest import LOCAL

RUNNER = CliRunner()
CANDIDATE = {"name": "stricter", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.4,
             "block_above": 0.7}


def toml_config(guardrails: str) -> str:
    """A fast review config (analytic intervals, one segmentation) for the generated data."""
    return f"""
[segments]
by = [["card_country"]]
[estimation]
bootstrap = 0
[[policies]]
name = "stricter"
kind = "threshold"
score = "fraud_score"
challenge_above = 0.4
block_above = 0.7
[review]
candidate = "stricter"
{guardrails}
"""


# On the generated log the candidate raises the authorization rate by about 7 points overall (a pass), and
# the fraud rate's segment checks cannot all be decided (inconclusive): the review as a whole is undecided.
UNDECIDED = """
[[review.guardrails]]
metric = "auth_rate"
min_delta = 0.0
[[review.guardrails]]
metric = "fraud_rate_bps"
max_increase = 1.0
scope = "every_segment"
min_rows = 1000
"""
FAILING = """
[[review.guardrails]]
metric = "block_rate"
min_delta = 0.0
"""  # the candidate blocks from 0.7, production from 0.4: it blocks clearly less


class PageParser(HTMLParser):
    """What a structural check needs: elements by id, tables, images and every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, dict[str, str | None]] = {}
        self.tags: list[str] = []
        self.images: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.tags.append(tag)
        if values.get("id"):
            self.ids[str(values["id"])] = values
        if tag == "img":
            self.images.append(str(values.get("src")))
        self.urls += [str(v) for k, v in attrs if k in ("src", "href", "action") and v]


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    return parser


@pytest.mark.parametrize(
    ("metric", "value", "delta", "text"),
    [
        ("net_value", 1234567.891, False, "1,234,567.89"),
        ("net_value", -25.5, True, "-25.50"),
        ("revenue", 3.0, True, "+3.00"),
        ("auth_rate", 0.8247, False, "82.47 %"),
        ("auth_rate", 0.0684, True, "+6.84 pp"),
        ("fraud_rate_bps", 92.7068, True, "+92.71 bps"),
        ("attempts", 40000.0, False, "40,000"),
        ("fraud_count", 47.0, False, "47.0"),
        ("net_value", None, False, "—"),
    ],
)
def test_format_value(metric: str, value: float | None, delta: bool, text: str) -> None:
    assert format_value(metric, value, delta=delta) == text


def test_text_is_escaped_in_html_and_markdown() -> None:
    report = Report(title="<script>alert(1)</script>", verdict="pass", verdict_text="PASS", verdict_details=("a<b",),
                    sections=(Section("s", "T", tables=(Table(("x|y",), (("<i>1</i>",),)),)),))
    page = render_html(report)
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;i&gt;1&lt;/i&gt;" in page
    assert "x\\|y" in render_markdown(report)


@pytest.fixture(scope="module")
def reviewed(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """One review of the generated log through the CLI (local engine), kept for several checks."""
    out = tmp_path_factory.mktemp("review")
    config = out / "review.toml"
    config.write_text(toml_config(UNDECIDED))
    result = RUNNER.invoke(app, ["review", str(config), "--data", str(generated / "transactions"), "--out",
                                 str(out / "report"), "--engine", "local"], env={"COLUMNS": "200"})
    return out / "report", result


def test_review_command_writes_every_file_and_exits_3_when_undecided(reviewed: tuple[Path, object]) -> None:
    out, result = reviewed
    assert result.exit_code == 3, result.output  # type: ignore[attr-defined]
    assert "review of 'stricter' against 'production': INCONCLUSIVE (exit 3" in result.stdout  # type: ignore[attr-defined]
    assert "auth_rate min_delta 0" in result.output  # type: ignore[attr-defined]
    for name in ("review.html", "review.md", "review.json", "guardrails.parquet", "results.parquet", "summary.json",
                 "forest_net_value.png", "forest_fraud_rate_bps.png", "forest_auth_rate.png", "calibration.png"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temporary files
    umask = os.umask(0)
    os.umask(umask)
    for path in (out, *out.iterdir()):  # readable like any file the user writes (not tempfile's 0600)
        assert stat.S_IMODE(path.stat().st_mode) == (0o777 if path.is_dir() else 0o666) & ~umask, path.name
    checks = pl.read_parquet(out / "guardrails.parquet")
    assert checks.schema == pl.Schema(GUARDRAIL_SCHEMA)
    assert checks.filter(pl.col("name") == "auth_rate min_delta 0")["outcome"].to_list() == [PASS]
    assert checks.filter(pl.col("scope") == "every_segment").height > 1
    payload = json.loads((out / "review.json").read_text())
    assert payload["exit_code"] == 3 and payload["multiple_testing"]["method"] == "Holm"
    assert len(payload["checks"]) == checks.height and payload["summary"]["data"]["fingerprint"]


def test_review_page_is_self_contained_with_verdict_tables_and_plots(reviewed: tuple[Path, object]) -> None:
    out, _ = reviewed
    page = (out / "review.html").read_text()
    parsed = parse(page)
    assert "verdict" in parsed.ids and "verdict-" in str(parsed.ids["verdict"]["class"])
    assert page.index('id="verdict"') < page.index("<table")  # the verdict comes first
    assert parsed.tags.count("table") >= 5
    assert {"guardrails", "overall", "forest", "movers", "support", "calibration", "provenance"} <= set(parsed.ids)
    assert len(parsed.images) == 4 and all(src.startswith("data:image/png;base64,") for src in parsed.images)
    assert not [u for u in parsed.urls if not u.startswith("data:")]  # nothing fetched from anywhere
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "Holm" in page and "fingerprint" in page


def test_review_markdown_references_the_pngs_beside_it(reviewed: tuple[Path, object]) -> None:
    out, _ = reviewed
    markdown = (out / "review.md").read_text()
    assert markdown.startswith("# Pre-launch review: 'stricter' against 'production'")
    for name in ("forest_net_value.png", "calibration.png"):
        assert f"]({name})" in markdown and (out / name).exists()
    assert "| guardrail | scope |" in markdown


def test_review_command_exits_1_when_a_guardrail_fails(generated: Path, tmp_path: Path) -> None:
    config = tmp_path / "fail.toml"
    config.write_text(toml_config(FAILING))
    result = RUNNER.invoke(app, ["review", str(config), "--data", str(generated / "transactions"), "--out",
                                 str(tmp_path / "out"), "--engine", "local", "--quiet"])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "Traceback" not in result.output
    assert json.loads((tmp_path / "out" / "review.json").read_text())["verdict"] == FAIL
    assert 'class="verdict verdict-fail"' in (tmp_path / "out" / "review.html").read_text()


def test_review_command_bad_review_table_exits_2_before_reading_data(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml_config('[[review.guardrails]]\nmetric = "net_valeu"\nmin_delta = 0\n'))
    result = RUNNER.invoke(app, ["review", str(config), "--data", str(tmp_path / "missing"), "--out",
                                 str(tmp_path / "out"), "--engine", "local"])
    assert result.exit_code == 2
    assert "review.guardrails[0].metric" in result.output and "did you mean 'net_value'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_review_on_ray_matches_local(ray_cluster: None, generated: Path) -> None:
    config = parse_config({"segments": {"by": [["card_country"]]}, "estimation": {"bootstrap": 0},
                           "policies": [CANDIDATE], "review": {"candidate": "stricter", "guardrails": [
                               {"metric": "auth_rate", "min_delta": 0.0, "scope": "every_segment"}]}})
    on_ray = review(config, generated / "transactions")  # the default engine
    local = review(config, generated / "transactions", execution=LOCAL)
    assert on_ray.run.engine.startswith("ray")
    assert on_ray.guardrails["outcome"].to_list() == local.guardrails["outcome"].to_list()
    assert on_ray.verdict == local.verdict


def test_plots_are_figures_a_notebook_can_use(reviewed: tuple[Path, object]) -> None:
    out, _ = reviewed
    results = pl.read_parquet(out / "results.parquet").filter(pl.col("policy") == "stricter")
    figure = forest_plot(results, "net_value", top=3)
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()][0] == "ALL"
    assert len(figure.axes[0].get_yticklabels()) == 4  # ALL and the 3 largest moves
    curves = pl.DataFrame({"score": ["fraud_score"] * 2, "outcome": ["fraud_dispute"] * 2, "bin": [0, 1],
                           "score_low": [0.0, 0.5], "score_high": [0.5, 1.0], "rows": [10, 5],
                           "mean_score": [0.2, 0.7], "observed_rate": [0.1, 0.6], "observed_se": [0.05, 0.1]})
    assert len(calibration_plot(curves).axes) == 1


def test_allow_inconclusive_maps_3_to_0_and_a_clear_pass_exits_0(reviewed: tuple[Path, object], generated: Path,
                                                                 tmp_path: Path) -> None:
    out, _ = reviewed
    payload = json.loads((out / "review.json").read_text())
    assert payload["verdict"] == "inconclusive" and payload["exit_code"] == 3  # fraud_rate_bps cannot tell
    config = tmp_path / "review.toml"
    config.write_text(toml_config(UNDECIDED))
    result = RUNNER.invoke(app, ["review", str(config), "--data", str(generated / "transactions"), "--out",
                                 str(tmp_path / "out"), "--engine", "local", "--quiet", "--allow-inconclusive"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "review.json").read_text())["allow_inconclusive"] is True
    assert "INCONCLUSIVE (exit 0" in result.stdout  # the verdict line is printed even with --quiet
    config.write_text(toml_config(UNDECIDED.split("[[review.guardrails]]")[1].join(["[[review.guardrails]]", ""])))
    clear = RUNNER.invoke(app, ["review", str(config), "--data", str(generated / "transactions"), "--out",
                                str(tmp_path / "pass"), "--engine", "local", "--quiet"])
    assert clear.exit_code == 0, clear.output
    assert "PASS (exit 0" in clear.stdout


