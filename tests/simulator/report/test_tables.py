"""The CLI's tables: the overall table fits 80 columns uncut, segment tables, the flag legend, the progress bar."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from segments import SegmentSpec, plan_segments
from simulator.cli import app
from simulator.config import parse_config
from simulator.errors import UnknownName
from simulator.report.numbers import glance, glance_interval
from simulator.report.tables import (FLAG_MEANINGS, KEY_METRICS, flag_legend, overall_table, segment_table,
                                     segment_values, segmentation_name, shown_rows)
from simulator.terminal import track_passes
from simulator.workflows.run import run_frame
from simulator.workflows.sweep import sweep
from tests.conftest import LOCAL
from tests.factories import make_transactions

SEGMENTS = {"by": [["card_country"], ["amount"], ["created_at_month", "card_funding"]],
            "bands": {"amount": {"edges": [0, 10, 50, 200, 1000]}}, "time": "month"}
POLICY = {"kind": "threshold", "score": "fraud_score", "challenge_above": 0.3, "block_above": 0.6}
ALL_FLAGS = "unidentified;low_ess;no_support;few_events"


@pytest.fixture(scope="module")
def evaluated() -> tuple[pl.DataFrame, object]:
    """Results of a run with bands, a window crossed with a column, and a policy with a long name."""
    frame = make_transactions(n=3_000, seed=5)
    config = parse_config({"segments": SEGMENTS, "policies": [POLICY | {"name": "a_rather_long_policy_name_x" * 3}]})
    result = run_frame(config, frame)
    return result.results, result.plan


def render(*renderables: object, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def extreme(results: pl.DataFrame) -> pl.DataFrame:
    """The widest cells a table can get: eight-digit money, signed intervals, every flag at once."""
    money = pl.col("metric").is_in(["authorized_volume", "revenue", "cost", "fraud_loss", "net_value"])
    scaled = [pl.when(money).then(pl.col(c) * -1e4 - 26_866_312.0).otherwise(pl.col(c) - 0.0123).alias(c)
              for c in ("estimate", "delta", "delta_ci_low", "delta_ci_high")]
    return results.with_columns(*scaled, pl.lit(ALL_FLAGS).alias("flag"))


def test_glance_reads_at_a_glance() -> None:
    assert glance("net_value", 26_866_312.0) == "26.9M"
    assert glance("net_value", -304_301.0, delta=True) == "-304k"
    assert glance("auth_rate", 0.8876) == "88.8%"
    assert glance("auth_rate", -0.00145, delta=True) == "-0.145pp"  # 0.00145 of a rate = 0.145 percentage points
    assert glance("fraud_rate_bps", 48.34) == "48.3" and glance("fraud_rate_bps", 0.776, delta=True) == "+0.776"
    assert glance_interval("auth_rate", -0.00304, -0.00015) == "[-0.304, -0.015]"
    assert glance("net_value", None) == "—" and glance_interval("net_value", None, 1.0) == "—"


@pytest.mark.parametrize("transform", [lambda r: r, extreme], ids=["run", "extreme"])
def test_the_overall_table_fits_80_columns_without_cutting_anything(evaluated, transform) -> None:
    results, plan = evaluated
    text = render(overall_table(transform(results), plan.baseline))
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert re.search(r"metric\s+estimate\s+delta\s+delta interval\s+flag", text)
    for metric in KEY_METRICS:
        assert re.search(rf"^{metric}\s", text, re.MULTILINE), metric
    if transform is extreme:
        assert re.search(r"-2\d\.\dM", text) and all(flag in text for flag in ALL_FLAGS.split(";"))


def test_the_old_table_cut_numbers_at_80_columns_and_this_one_does_not(evaluated) -> None:
    results, plan = evaluated
    text = render(overall_table(extreme(results), plan.baseline))
    net = results.filter((pl.col("segment") == "ALL") & (pl.col("metric") == "net_value")
                         & (pl.col("policy") != plan.baseline)).row(0, named=True)
    assert glance("net_value", net["estimate"] * -1e4 - 26_866_312.0) in text  # the whole number, as 3 digits


def test_a_segment_table_lists_values_in_the_plan_s_order_with_rows_and_ess(evaluated) -> None:
    results, plan = evaluated
    text = render(segment_table(results, plan.baseline, "amount", plan.segments, ("net_value",)))
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    assert re.search(r"segment\s+rows\s+ess\s+estimate\s+delta\s+delta interval\s+flag", text)
    bands = [line.split()[0] for line in text.splitlines() if line.startswith(("(", "["))][:4]  # the first policy
    assert bands == ["[0,10)", "[10,50)", "[50,200)", "[200,1000)"]  # edge order, not text order (no payment >= 1000)
    crossed = render(segment_table(results, plan.baseline, "created_at_month|card_funding", plan.segments))
    assert "…" not in crossed and re.search(r"^2025-07\|credit\s", crossed, re.MULTILINE)


def test_a_segment_table_shows_the_effective_rows_its_flag_is_about() -> None:
    # ess 500 for the estimate, but 12 explored rows where the policies differ: low_ess, and 12 shown
    row = {"policy": "p", "segmentation": "card_country", "segment": "card_country=FR", "metric": "net_value",
           "estimate": 1.0, "delta": 0.5, "delta_ci_low": -1.0, "delta_ci_high": 2.0, "rows": 900, "ess": 500.0,
           "delta_ess": 12.0, "flag": "low_ess"}
    plan = plan_segments(SegmentSpec(by=(("card_country",),)), pl.LazyFrame({"card_country": ["FR"]}))
    text = render(segment_table(pl.DataFrame([row]), "production", "card_country", plan, ("net_value",)))
    assert re.search(r"^FR\s+900\s+12\s", text, re.MULTILINE)


def test_an_unknown_segmentation_lists_the_known_ones(evaluated) -> None:
    results, plan = evaluated
    with pytest.raises(UnknownName, match=re.escape("unknown segmentation 'card_contry'; known: amount, card_country, created_at_month")):
        segment_table(results, plan.baseline, "card_contry", plan.segments)


def test_segment_names_and_values() -> None:
    assert segmentation_name("card_country, card_brand") == "card_country|card_brand"
    assert segment_values("card_country=FR|card_brand=visa") == "FR|visa"
    assert segment_values("amount=[50,200)") == "[50,200)"


def test_the_legend_has_one_line_per_flag_shown(evaluated) -> None:
    results, plan = evaluated
    shown = shown_rows(results, plan.baseline, ["amount"])
    legend = flag_legend(shown)
    present = {f for text in shown["flag"].to_list() for f in (text or "").split(";") if f}
    assert [line.split(":")[0] for line in legend] == [f for f in FLAG_MEANINGS if f in present]
    assert len(flag_legend(pl.DataFrame({"flag": [ALL_FLAGS]}))) == 4
    assert flag_legend(pl.DataFrame({"flag": [""]})) == []
    assert all(len(f"{flag}: {meaning}") <= 80 for flag, meaning in FLAG_MEANINGS.items())


def test_run_prints_a_segmentation_and_the_legend_at_80_columns(tmp_path: Path) -> None:
    data = tmp_path / "log.parquet"
    make_transactions(n=3_000, seed=5).write_parquet(data)
    config = tmp_path / "config.toml"
    config.write_text('[segments]\nby = [["card_country"]]\ntime = "month"\n\n[[policies]]\nname = "stricter"\n'
                      'kind = "threshold"\nscore = "fraud_score"\nchallenge_above = 0.3\nblock_above = 0.6\n')
    args = ["run", str(config), "--data", str(data), "--engine", "local"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a"), "--segments", "card_country",
                                      "--segments", "created_at_month"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "stricter against production: net_value by card_country" in result.output
    assert "stricter against production: auth_rate by created_at_month" in result.output
    assert "…" not in result.output
    refused = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b"), "--segments", "card_brand"])
    assert refused.exit_code == 2 and "unknown segmentation 'card_brand'" in refused.output
    assert not (tmp_path / "b").exists()  # refused before any work


def test_the_progress_bar_never_exceeds_its_total_over_a_sweep_s_passes(generated: Path) -> None:
    # the grid, then the per-funding choice evaluated: two passes (the old bar showed 80,000/40,000 rows)
    table = {"segments": {"by": [["card_funding"]]}, "estimation": {"bootstrap": 0},
             "sweep": {"score": "fraud_score", "block_above": [0.3, 0.6], "challenge_above": [0.05],
                       "objective": "net_value", "by": "card_funding"}}
    progress = Progress(disable=True)
    task = progress.add_task("evaluating", total=0)
    tracked = track_passes(progress, task, LOCAL)
    seen: list[tuple[float, float | None, str]] = []

    def on_shard(shard) -> None:
        tracked.on_shard(shard)
        state = progress.tasks[0]
        seen.append((state.completed, state.total, state.description))

    sweep(parse_config(table), generated / "transactions", execution=tracked.__class__(
        engine="local", on_plan=tracked.on_plan, on_shard=on_shard))
    assert all(done <= total for done, total, _ in seen)
    descriptions = list(dict.fromkeys(description for _, _, description in seen))
    assert descriptions == ["evaluating", "evaluating (pass 2)"]
    assert seen[-1][0] == seen[-1][1] == 40_000
