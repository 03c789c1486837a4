"""Pareto frontiers of a sweep table, and their PNG and HTML pictures (synthetic tables, no Ray)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from simulator.config_tables import Objective
from simulator.decide.objective import Recommendation
from simulator.decide.recommend import Choice
from simulator.errors import UnknownName
from simulator.decide.frontier import FRONTIER_SCHEMA, frontiers, pareto_frontier
from simulator.report.frontier_plots import frontier_figure, frontier_html, html_segments, write_frontier_png
from tests.simulator.decide.sweep_tables import make_sweep

# Seven grid points in ALL, (fraud_rate_bps, net_value):
#   p0 (10, 100)  efficient
#   p1 ( 8,  90)  efficient
#   p2 (12,  95)  dominated by p0 (less fraud, more value)
#   p3 ( 5,  60)  efficient (least fraud)
#   p4 ( 8,  80)  dominated by p1 (same fraud, more value)
#   p5 (15, 130)  efficient (most value)
#   p6 (10, 100)  ties p0 exactly: neither dominates the other, both stay
FRAUD = [10.0, 8.0, 12.0, 5.0, 8.0, 15.0, 10.0]
NET = [100.0, 90.0, 95.0, 60.0, 80.0, 130.0, 100.0]
AUTH = [0.90, 0.91, 0.92, 0.80, 0.85, 0.95, 0.90]


def small_sweep(**overrides: object) -> pl.DataFrame:
    """ALL as above, and card_country=FR where more fraud always means less value (only p0 is efficient)."""
    estimates = {
        "ALL": {"fraud_rate_bps": FRAUD, "net_value": NET, "auth_rate": AUTH},
        "card_country=FR": {"fraud_rate_bps": [1.0, 2, 3, 4, 5, 6, 7], "net_value": [7.0, 6, 5, 4, 3, 2, 1],
                            "auth_rate": [0.9] * 7},
    }
    return make_sweep(estimates, **overrides)  # type: ignore[arg-type]


def frontier_points(frame: pl.DataFrame, segment: str = "ALL") -> list[int]:
    return frame.filter(pl.col("segment") == segment).get_column("point").to_list()


def test_five_point_frontier_sorted_by_fraud_with_ties_kept() -> None:
    frame = pareto_frontier(small_sweep())
    assert frontier_points(frame) == [3, 1, 0, 6, 5]
    assert frame.filter(pl.col("segment") == "ALL").get_column("x_estimate").to_list() == [5.0, 8.0, 10.0, 10.0, 15.0]
    assert frontier_points(frame, "card_country=FR") == [0]
    assert frame.schema == pl.Schema(FRONTIER_SCHEMA)
    assert set(frame.get_column("frontier")) == {"net_value~fraud_rate_bps"}
    row = frame.row(0, named=True)  # p3 carries its thresholds, intervals (±10%) and the baseline (point 0)
    assert row["challenge_above"] == pytest.approx(0.3) and row["block_above"] == pytest.approx(0.65)
    assert (row["y_ci_low"], row["y_ci_high"], row["y_baseline"]) == pytest.approx((54.0, 66.0, 100.0))
    assert row["segmentation"] == "ALL" and row["rows"] == 10_000


def test_flagged_and_missing_points_are_left_out() -> None:
    # p5 (the best value) has no support for net_value; p3 has a low ESS for fraud_rate_bps
    sweep = small_sweep(flags={("ALL", "net_value", 5): "no_support", ("ALL", "fraud_rate_bps", 3): "low_ess"})
    sweep = sweep.with_columns(
        estimate=pl.when((pl.col("point") == 5) & (pl.col("metric") == "net_value")).then(None).otherwise("estimate"))
    assert frontier_points(pareto_frontier(sweep)) == [1, 0, 6]
    kept = pareto_frontier(sweep, keep_low_ess=True)
    assert frontier_points(kept) == [3, 1, 0, 6]
    assert kept.filter(pl.col("point") == 3).item(0, "flag") == "low_ess"


def test_directions_can_be_flipped() -> None:
    # maximise fraud and minimise value: efficient = no other point with more fraud and less value.
    # p5 (15,130) nothing has more fraud; p2 (12,95) only p5, with more value; p0/p6 (10,100) beaten by p2;
    # p1 (8,90) beaten by p4 (8,80); p4 and p3 (5,60) have the least value. Best x (highest) first.
    frame = pareto_frontier(small_sweep(), minimize_x=False, maximize_y=False)
    assert frontier_points(frame) == [5, 2, 4, 3]


def test_frontiers_holds_both_frontiers_for_every_segment() -> None:
    frame = frontiers(small_sweep())
    assert frame.group_by("frontier", "segment").len().height == 4
    auth = frame.filter((pl.col("frontier") == "auth_rate~fraud_rate_bps") & (pl.col("segment") == "ALL"))
    # auth rate rises with fraud except p4 (8, 0.85) < p1 and p0/p6 (10, 0.90) < p1 (8, 0.91)
    assert auth.get_column("point").to_list() == [3, 1, 2, 5]


def test_unknown_metric_is_named() -> None:
    with pytest.raises(UnknownName, match=re.escape("unknown metric 'net_valu'")):
        pareto_frontier(small_sweep(), y="net_valu")


def test_frontier_png_is_written(tmp_path: Path) -> None:
    sweep = small_sweep()
    figure = frontier_figure(sweep, frontiers(sweep), recommended=1)
    path = write_frontier_png(figure, tmp_path / "frontier.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["frontier.png"]  # no temporary file left behind
    assert len(figure.axes) == 2


def test_frontier_figure_survives_a_segment_without_supported_points(tmp_path: Path) -> None:
    sweep = small_sweep().with_columns(
        estimate=pl.when(pl.col("segment") == "card_country=FR").then(None).otherwise("estimate"),
        flag=pl.when(pl.col("segment") == "card_country=FR").then(pl.lit("no_support")).otherwise("flag"),
    )
    figure = frontier_figure(sweep, frontiers(sweep), segment="card_country=FR")
    write_frontier_png(figure, tmp_path / "fr.png")
    assert (tmp_path / "fr.png").stat().st_size > 0


def test_frontier_html_is_self_contained_and_interactive() -> None:
    sweep = small_sweep()
    page = frontier_html(sweep, frontiers(sweep), recommended=1)
    assert "<script src=" not in page.lower()  # plotly.js is inlined, nothing is fetched
    assert re.search(r"<script[^>]*\bsrc\s*=", page, re.IGNORECASE) is None
    assert "<link" not in page.lower()  # no external stylesheet either
    assert len(page) > 1_000_000 and "Plotly.newPlot" in page  # the library itself is in the page
    assert '"showSendToCloud": false' in page  # no button that uploads the data to Plotly's cloud
    assert "card_country=FR" in page  # the segment menu
    # hover: the thresholds, then each metric's estimate [interval], from the trace's customdata
    assert ("point %{customdata[0]}: challenge_above = %{customdata[1]:.3~g}, block_above = %{customdata[2]:.3~g}"
            r"\u003cbr\u003enet_value = %{y:,.4~s}  [%{customdata[5]:,.4~s}, %{customdata[6]:,.4~s}]") in page
    assert "recommended" in page and "baseline" in page


def test_html_hover_leaves_out_a_threshold_the_grid_does_not_have() -> None:
    sweep = small_sweep().with_columns(challenge_above=pl.lit(None, pl.Float64))
    page = frontier_html(sweep, frontiers(sweep))
    assert "point %{customdata[0]}: block_above = %{customdata[2]:.3~g}" in page


def test_a_misspelt_segment_is_named() -> None:
    sweep = small_sweep()
    with pytest.raises(UnknownName, match=re.escape("unknown segment 'card_country=fr'")):
        frontier_figure(sweep, frontiers(sweep), segment="card_country=fr")
    with pytest.raises(UnknownName, match=re.escape("(did you mean 'card_country=FR'?)")):
        frontier_html(sweep, frontiers(sweep), segment="card_country=fr")


def test_html_offers_all_then_the_largest_segments() -> None:
    rows = {f"mcc={i:04d}": 100 + i for i in range(30)}
    estimates = {s: {"fraud_rate_bps": [1.0, 2.0], "net_value": [1.0, 2.0]} for s in ["ALL", *rows]}
    segments = html_segments(make_sweep(estimates, rows=rows | {"ALL": 10_000}), "mcc=0001")
    assert segments[:2] == ["ALL", "mcc=0001"]
    assert segments[2:5] == ["mcc=0029", "mcc=0028", "mcc=0027"]
    assert len(segments) == 22  # ALL, the requested one, and the 20 largest


def test_errors_are_clipped_when_an_interval_misses_its_estimate() -> None:
    from simulator.report.frontier_plots import _errors

    # a percentile interval [11, 12] around 10 would give a negative lower length
    lengths = _errors(np.array([10.0]), np.array([11.0]), np.array([12.0]))
    assert lengths.tolist() == [[0.0], [2.0]]


def _choice(point: int | None = 1) -> Choice:
    objective = Objective(maximize="net_value", constraints=({"metric": "fraud_rate_bps", "max": 9.0},
                                                             {"metric": "auth_rate", "min": 0.85}))
    recommendation = Recommendation(
        metric="net_value", sense="maximize", point=point, challenge_above=0.1, block_above=0.5, estimate=90.0,
        ci_low=80.0, ci_high=100.0, baseline=None, delta=None, delta_ci_low=None, delta_ci_high=None, feasible=2,
        points=7, reason=["maximises net_value = 90 among 2 of 7 points that keep fraud_rate_bps ≤ 9",
                          "reported on rows that did not choose it (time split): net_value = 88 [70, 106]"])
    return Choice(objective, recommendation, frozenset({1, 3}), None)


def test_the_page_shows_constraints_reasons_and_a_table_of_frontier_points() -> None:
    sweep = small_sweep()
    page = frontier_html(sweep, frontiers(sweep), choice=_choice())
    chart = page.replace("\\u2264", "≤").replace("\\u2265", "≥")  # plotly's JSON escapes non-ASCII
    assert chart.count("constraint: fraud_rate_bps ≤ 9") == 2  # the fraud limit on both panels' x axis
    assert chart.count("constraint: auth_rate ≥ 0.85") == 1  # the approval floor on its own panel only
    assert "<h2>Recommendation</h2>" in page and "reported on rows that did not choose it" in page
    assert "Objective: maximize net_value subject to fraud_rate_bps ≤ 9 and auth_rate ≥ 0.85." in page
    tables = re.findall(r"<table>.*?</table>", page, re.DOTALL)
    assert len(tables) == 2  # one per frontier
    net = tables[0]
    assert net.count("<tr") == 1 + 5  # header and the five efficient points of ALL (p0, p1, p3, p5, p6)
    assert re.search(r"<tr class='recommended'><td>1</td>", net)  # the recommended point is marked


def test_the_picture_draws_the_constraints_and_the_reason(tmp_path: Path) -> None:
    sweep = small_sweep()
    figure = frontier_figure(sweep, frontiers(sweep), choice=_choice())
    texts = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "constraint: fraud_rate_bps ≤ 9" in texts and "constraint: auth_rate ≥ 0.85" in texts
    assert any(t.startswith("recommended (point 1") for t in texts)
    assert "recommended point 1, reported on rows that did not choose it" in figure.get_suptitle()
    write_frontier_png(figure, tmp_path / "f.png")


def test_flagged_points_are_drawn_apart_from_the_points_a_frontier_could_use() -> None:
    """A flag keeps a point off the frontier: it must not look like a better point the frontier missed."""
    sweep = small_sweep().with_columns(
        flag=pl.when((pl.col("point") == 5) & (pl.col("metric") == "fraud_rate_bps")).then(pl.lit("few_events"))
        .otherwise("flag"))
    figure = frontier_figure(sweep, frontiers(sweep))
    texts = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "grid points flagged, not on the frontier (1)" in texts and "grid points (6)" in texts
    page = frontier_html(sweep, frontiers(sweep))
    assert "grid points flagged (not on the frontier)" in page
