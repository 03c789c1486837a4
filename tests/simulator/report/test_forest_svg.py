"""Forest plots as SVG (`simulator.report.forest_svg`): what each panel draws, from hand-built rows."""

from __future__ import annotations

from xml.etree import ElementTree

import numpy as np
import polars as pl

from simulator.report.forest_svg import _ticks, forest_figure
from simulator.report.plots import DOWN, NEUTRAL, UP, focus_limits, forest_rows

SVG = "{http://www.w3.org/2000/svg}"


def results() -> pl.DataFrame:
    """One policy, one metric: ALL, a segment above 0, one below, one across 0 and flagged, and a tiny one."""
    return pl.DataFrame({
        "policy": ["p"] * 5, "metric": ["net_value"] * 5, "segmentation": [None, "c", "c", "c", "c"],
        "segment": ["ALL", "c=up", "c=down", "c=across", "c=tiny"],
        "rows": [10_000, 4_000, 3_000, 2_000, 10],
        "delta": [1.0, 5.0, -4.0, 0.5, 900.0], "delta_ci_low": [0.5, 2.0, -6.0, -1.0, -100.0],
        "delta_ci_high": [1.5, 8.0, -2.0, 2.0, 2000.0], "flag": [None, None, None, "low_ess", None]})


def test_a_panel_draws_all_then_segments_by_largest_move_coloured_by_their_side_of_zero() -> None:
    svg = ElementTree.fromstring(forest_figure(results(), "net_value", ["p"], top=20, min_rows=100))
    labels = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text") if t.get("text-anchor") == "end"]
    assert labels == ["ALL", "c=up", "c=down", "c=across"]  # |5| > |-4| > |0.5|; c=tiny is under min_rows
    dots = list(svg.iter(f"{SVG}circle"))
    assert [d.get("stroke") for d in dots] == [UP, UP, DOWN, NEUTRAL]
    assert [d.get("fill") for d in dots] == [UP, UP, DOWN, "white"]  # flagged: hollow
    lines = [line for line in svg.iter(f"{SVG}line") if line.get("stroke-width") == "2"]
    assert len(lines) == 4 and all(float(line.get("x1")) < float(line.get("x2")) for line in lines)


def test_nothing_to_draw_gives_no_figure() -> None:
    assert forest_figure(results(), "auth_rate", ["p"]) is None


def test_ticks_are_round_numbers_inside_the_range() -> None:
    assert np.allclose(_ticks(-7.3, 12.0), [-5.0, 0.0, 5.0, 10.0], rtol=0, atol=1e-12)
    assert np.allclose(_ticks(-0.3, 0.2), [-0.3, -0.2, -0.1, 0.0, 0.1, 0.2], rtol=0, atol=1e-12)
    assert _ticks(1.0, 1.0).size == 0


def test_an_interval_beyond_the_axis_ends_in_an_arrowhead() -> None:
    """The axis covers the middle of the segments' interval ends; a longer interval is cut there and says so."""
    frame = pl.concat([results().head(4), pl.DataFrame({
        "policy": ["p"] * 8, "metric": ["net_value"] * 8, "segmentation": ["c"] * 8,
        "segment": [f"c=s{i}" for i in range(8)], "rows": [1_000] * 8,
        "delta": [0.1 * i for i in range(8)], "delta_ci_low": [0.1 * i - 1 for i in range(7)] + [-500.0],
        "delta_ci_high": [0.1 * i + 1 for i in range(8)], "flag": [None] * 8})])
    svg = ElementTree.fromstring(forest_figure(frame, "net_value", ["p"], top=20, min_rows=100))
    shown = forest_rows(frame, "net_value", policy="p", top=20, min_rows=100)
    low_x, high_x = focus_limits(shown, None)
    beyond = int((shown["delta_ci_low"] < low_x).sum() + (shown["delta_ci_high"] > high_x).sum())
    assert beyond >= 1 and (shown["delta_ci_low"] < low_x).any()  # c=s7's -500 at least
    assert len(list(svg.iter(f"{SVG}path"))) == beyond  # one arrowhead for every end beyond the axis, none else
