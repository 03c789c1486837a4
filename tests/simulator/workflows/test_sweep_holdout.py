"""A sweep's recommendation is chosen on one part of the log and reported from the other."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from simulator.config import parse_config
from simulator.config_tables import parse_objective
from simulator.decide.holdout import scale_to_whole
from simulator.plan.holdout import holdout
from simulator.workflows.run import run_frame
from simulator.workflows.sweep import sweep
from tests.conftest import LOCAL
from tests.factories import make_transactions

GRID = {"score": "fraud_score", "block_above": [0.3, 0.5, 0.8], "challenge_above": [0.05, 0.2]}
# 20k choosing rows: the fraud-rate interval of a point that moves few explored fraud events is wide (rare-event floor)
OBJECTIVE = parse_objective("net_value; fraud_rate_bps<=1000")


@pytest.fixture(scope="module")
def data(generated: Path) -> Path:
    return generated / "transactions"


def _table(**sweep_keys: Any) -> dict[str, Any]:
    # excluded labels: a run on the later half alone fits its own dispute-delay curve under "develop",
    # so only with "exclude" are its numbers exactly the sweep's reported ones
    return {"data": {"immature_labels": "exclude"}, "segments": {"by": [["card_funding"]]},
            "estimation": {"bootstrap": 0, "seed": 3},
            "sweep": GRID | sweep_keys}


def test_time_split_reports_the_latest_share_and_chooses_on_the_rest() -> None:
    frame = make_transactions(n=400, seed=2)
    split = holdout("time", 0.25, frame.lazy(), seed=0)
    report, select = frame.filter(split.report), frame.filter(split.select)
    assert report.height + select.height == frame.height
    assert report.height == pytest.approx(100, abs=2)
    assert select["created_at"].max() < report["created_at"].min()  # choose on the past, report on what came next
    described = split.describe(selected=select.height, reported=report.height)
    assert described["reported_on"]["rule"].startswith("created_at >= ")
    assert described["selected_on"]["rows"] + described["reported_on"]["rows"] == frame.height


def test_hash_split_is_a_stable_share_of_transaction_ids() -> None:
    frame = make_transactions(n=2_000, seed=4)
    first, again = holdout("hash", 0.3, frame.lazy(), seed=9), holdout("hash", 0.3, frame.lazy(), seed=9)
    ids = frame.filter(first.report)["transaction_id"]
    assert ids.equals(frame.filter(again.report)["transaction_id"])  # a function of the id and the seed
    assert ids.len() == pytest.approx(600, rel=0.15)
    other = frame.filter(holdout("hash", 0.3, frame.lazy(), seed=10).report)["transaction_id"]
    assert not ids.equals(other)


def test_sum_metrics_are_scaled_to_the_whole_log_and_ratios_are_not() -> None:
    report = pl.DataFrame({"segment": ["ALL", "ALL"], "metric": ["fraud_count", "fraud_rate_bps"],
                           "rows": [40, 40], "estimate": [3.0, 12.0], "se": [1.0, 2.0], "ci_low": [1.0, 8.0],
                           "ci_high": [5.0, 16.0], "baseline": [2.0, 10.0], "delta": [1.0, 2.0],
                           "delta_se": [0.5, 1.0], "delta_ci_low": [0.0, 0.0], "delta_ci_high": [2.0, 4.0]})
    whole = pl.DataFrame({"segment": ["ALL", "ALL"], "metric": ["fraud_count", "fraud_rate_bps"], "whole_rows": [100, 100]})
    scaled = scale_to_whole(report, whole, sums=["fraud_count"])
    count, rate = scaled.row(0, named=True), scaled.row(1, named=True)
    # 100 mature rows in the whole log, 40 in the report part: totals × 2.5
    assert (count["estimate"], count["ci_high"], count["delta"], count["rows"]) == (7.5, 12.5, 2.5, 40)
    assert (rate["estimate"], rate["delta_ci_high"]) == (12.0, 4.0)


def test_the_recommendation_is_reported_on_rows_that_did_not_choose_it(data: Path) -> None:
    config = parse_config(_table())
    result = sweep(config, data, objective=OBJECTIVE, execution=LOCAL)
    recommendation = result.choice.recommendation
    assert recommendation.point is not None and recommendation.holdout is not None
    split = recommendation.holdout
    frame = pl.read_parquet(data)
    assert split["selected_on"]["rows"] + split["reported_on"]["rows"] == frame.height
    assert split["reported_on"]["rows"] == pytest.approx(frame.height / 2, rel=0.01)
    # the reported numbers are `run` of the chosen thresholds on the later half, scaled to the whole log
    cutoff = datetime.fromisoformat(split["reported_on"]["rule"].removeprefix("created_at >= "))
    later = frame.filter(pl.col("created_at") >= cutoff.astimezone(UTC))
    policy = {"name": "alone", "kind": "threshold", "score": "fraud_score", "block_above": recommendation.block_above}
    if recommendation.challenge_above is not None:
        policy["challenge_above"] = recommendation.challenge_above
    alone = run_frame(parse_config(_table() | {"sweep": None, "policies": [policy]}), later).overall()
    row = alone.filter(pl.col("policy") == "alone", pl.col("metric") == "net_value").row(0, named=True)
    whole_rows = result.table.filter(pl.col("point") == recommendation.point, pl.col("segment") == "ALL",
                                     pl.col("metric") == "net_value")["rows"][0]
    factor = whole_rows / row["rows"]
    assert recommendation.delta == pytest.approx(row["delta"] * factor, rel=1e-9)
    assert recommendation.delta_ci_low == pytest.approx(row["delta_ci_low"] * factor, rel=1e-9)
    assert recommendation.estimate == pytest.approx(row["estimate"] * factor, rel=1e-9)
    assert isinstance(split["constraints_hold"], bool)
    if split["constraints_hold"]:  # the binding constraint is read on the reporting rows, the choosing rows' kept apart
        fraud = alone.filter(pl.col("policy") == "alone", pl.col("metric") == "fraud_rate_bps").row(0, named=True)
        assert recommendation.binding[0].value == pytest.approx(fraud["ci_high"], rel=1e-9)
        assert split["in_sample_binding"][0]["metric"] == "fraud_rate_bps"
    assert any("reported on rows that did not choose it" in line for line in recommendation.reason)
    # the in-sample numbers are kept for comparison, and they differ from the reported ones
    assert split["in_sample"]["delta"] != recommendation.delta


def test_holdout_none_reports_in_sample(data: Path) -> None:
    result = sweep(parse_config(_table(holdout="none")), data, objective=OBJECTIVE, execution=LOCAL)
    recommendation = result.choice.recommendation
    assert recommendation.holdout is None
    row = result.table.filter(pl.col("point") == recommendation.point, pl.col("segment") == "ALL",
                              pl.col("metric") == "net_value").row(0, named=True)
    assert recommendation.delta == row["delta"]


def test_a_hash_split_from_the_config(data: Path) -> None:
    result = sweep(parse_config(_table(holdout="hash", holdout_share=0.3)), data, objective=OBJECTIVE,
                   execution=LOCAL)
    split = result.choice.recommendation.holdout
    assert split["method"] == "hash" and split["report_share"] == 0.3
    assert split["reported_on"]["rows"] == pytest.approx(0.3 * pl.read_parquet(data).height, rel=0.1)


def test_per_value_choices_are_held_out_too(data: Path) -> None:
    table = _table(by="card_funding")
    honest = sweep(parse_config(table), data, objective=OBJECTIVE, execution=LOCAL)
    in_sample = sweep(parse_config(_table(by="card_funding", holdout="none")), data, objective=OBJECTIVE,
                      execution=LOCAL)
    assert honest.by_segment is not None and in_sample.by_segment is not None
    assert honest.by_segment.holdout is not None and honest.by_segment.holdout["method"] == "time"
    assert in_sample.by_segment.holdout is None
    # the combined policy's numbers come from the later half, scaled: the same policy run on those rows
    split = honest.by_segment.holdout
    cutoff = datetime.fromisoformat(split["reported_on"]["rule"].removeprefix("created_at >= "))
    later = pl.read_parquet(data).filter(pl.col("created_at") >= cutoff.astimezone(UTC))
    policy = {**honest.by_segment.policy, "name": "again"}
    again = run_frame(parse_config(table | {"sweep": None, "policies": [policy]}), later).overall()
    rows = pl.read_parquet(data).height
    attempts = honest.by_segment.results.filter(pl.col("segment") == "ALL", pl.col("metric") == "attempts")
    assert attempts["estimate"][0] == pytest.approx(rows, rel=1e-9)  # scaled to the whole log
    row = again.filter(pl.col("policy") == "again", pl.col("metric") == "authorized_count").row(0, named=True)
    got = honest.by_segment.results.filter(pl.col("segment") == "ALL", pl.col("metric") == "authorized_count")
    factor = rows / row["rows"]
    assert got["estimate"][0] == pytest.approx(row["estimate"] * factor, rel=1e-9)
    assert got["delta"][0] == pytest.approx(row["delta"] * factor, rel=1e-9) and row["delta"] != 0
