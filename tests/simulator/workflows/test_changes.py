"""Decision changes (SPEC §9): `changes.parquet` and `examples.parquet` of a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import polars.testing
import pytest

from simulator.config import parse_config
from simulator.engine.execution import Execution
from simulator.workflows.run import run, run_frame
from tests.conftest import LOCAL
from tests.factories import in_row_groups, make_transactions

STRICT = {"name": "strict", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.3, "block_above": 0.7}
CONFIG = {
    "segments": {"by": [["card_country"], ["card_funding", "channel"]]},
    "policies": [
        {"name": "strict", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.02, "block_above": 0.3},
        {"name": "rules", "kind": "rules", "fallback": "allow",
         "rules": [{"when": "amount > 500 AND fraud_score > 0.1", "action": "block"}]},
    ],
}
TRANSITION = ["policy", "segmentation", "segment", "from_action", "to_action"]


def tiny_log() -> pl.DataFrame:
    """Seven payments logged with production's action; `strict` (challenge ≥ 0.3, block ≥ 0.7) moves four.

    row  score  production  strict     amount  country
    0    0.10   allow       allow      10      FR
    1    0.35   allow       challenge  20      FR   allow → challenge
    2    0.40   allow       challenge  30      DE   allow → challenge
    3    0.60   challenge   challenge  40      DE
    4    0.75   challenge   block      50      FR   challenge → block
    5    0.95   block       block      60      DE
    6    0.72   allow       block      70      FR   allow → block (production's allow: its logging_prob says so)
    """
    production = ["allow", "allow", "allow", "challenge", "challenge", "block", "allow"]
    probs = {a: [0.8 if p == a else 0.1 for p in production] for a in ("allow", "challenge", "block")}
    blocked = [p == "block" for p in production]
    return make_transactions(
        n=7,
        fraud_score=[0.10, 0.35, 0.40, 0.60, 0.75, 0.95, 0.72],
        amount=[10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0],
        card_country=["FR", "FR", "DE", "DE", "FR", "DE", "FR"],
        action=production,
        propensity=[0.8] * 7,
        **{f"logging_prob_{a}": p for a, p in probs.items()},
        authorized=pl.Series([None if b else True for b in blocked], dtype=pl.Boolean),
        fraud_dispute=pl.Series([None if b else False for b in blocked], dtype=pl.Boolean),
        dispute_lost=pl.Series([None] * 7, dtype=pl.Boolean),
        disputed_at=pl.Series([None] * 7, dtype=pl.Datetime("us", "UTC")),
    )


def test_tiny_log_counts_and_examples_by_hand() -> None:
    config = parse_config({"segments": {"by": [["card_country"]]}, "policies": [STRICT]})
    result = run_frame(config, tiny_log(), examples=1)
    counts = (result.changes.filter(pl.col("metric") == "attempts", pl.col("policy") == "strict")
              .select("segment", "from_action", "to_action", "rows", "volume").sort("segment", "from_action", "to_action"))
    assert counts.rows() == [
        ("ALL", "allow", "block", 1.0, 70.0),
        ("ALL", "allow", "challenge", 2.0, 50.0),  # rows 1 and 2: 20 + 30
        ("ALL", "challenge", "block", 1.0, 50.0),
        ("card_country=DE", "allow", "challenge", 1.0, 30.0),
        ("card_country=FR", "allow", "block", 1.0, 70.0),
        ("card_country=FR", "allow", "challenge", 1.0, 20.0),
        ("card_country=FR", "challenge", "block", 1.0, 50.0),
    ]
    # the logging policy took production's action on every row: it changes nothing
    assert result.changes.filter(pl.col("policy") == "logged").is_empty()
    # attempts never change: every transition's delta of attempts is exactly 0
    assert (result.changes.filter(pl.col("metric") == "attempts")["delta"] == 0).all()
    examples = result.examples.filter(pl.col("segment") == "ALL", pl.col("to_action") == "challenge")
    assert examples.select("rank", "transaction_id", "amount", "logged_action").rows() == [(1, "tx_000002", 30.0, "allow")]
    assert {"fraud_score", "auth_score", "card_country", "created_at"} <= set(result.examples.columns)


@pytest.fixture(scope="module")
def rowgroups(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated log rewritten with small row groups, so files split into several shards."""
    return in_row_groups(generated / "transactions", tmp_path_factory.mktemp("changes-rowgroups"), 5_000)


@pytest.fixture(scope="module")
def local(rowgroups: Path):
    return run(parse_config(CONFIG), rowgroups, execution=Execution(engine="local", shard_rows=10_000))


def test_transition_deltas_add_up_to_the_results_delta(local) -> None:
    """Per policy, segment and metric (ratios too): Σ over transitions = the results' delta; null where it is null."""
    sums = local.changes.group_by("policy", "segment", "metric").agg(
        pl.col("delta").sum().alias("sum"), pl.col("delta").null_count().alias("nulls"))
    candidates = local.results.filter(pl.col("policy").is_in(["strict", "rules"]))
    joined = candidates.join(sums, on=["policy", "segment", "metric"], how="left")
    assert joined["sum"].null_count() == 0  # both policies move payments in every segment
    assert ((joined["nulls"] > 0) == joined["delta"].is_null()).all()
    joined = joined.filter(pl.col("delta").is_not_null())
    assert joined.height > 0.75 * candidates.height
    assert set(joined["metric"]) >= {"net_value", "fraud_loss", "auth_rate", "fraud_rate_bps", "block_precision"}
    total, delta = joined["sum"].to_numpy(), joined["delta"].to_numpy()
    assert np.all(np.abs(total - delta) <= 1e-9 * (1.0 + np.abs(delta)))  # rounding only


def test_counts_are_the_logs_and_segments_add_up(local, rowgroups: Path) -> None:
    frame = pl.read_parquet(rowgroups)
    actions = ["allow", "challenge", "block"]
    production = pl.concat_list([pl.col(f"logging_prob_{a}") for a in actions]).list.arg_max()
    strict = pl.when(pl.col("fraud_score") >= 0.3).then(2).when(pl.col("fraud_score") >= 0.02).then(1).otherwise(0)
    expected = (frame.with_columns(b=production, c=strict).filter(pl.col("b") != pl.col("c"))
                .group_by("b", "c").agg(pl.len().cast(pl.Float64).alias("rows"), pl.col("amount").sum().alias("volume"))
                .with_columns(from_action=pl.col("b").replace_strict(dict(enumerate(actions))),
                              to_action=pl.col("c").replace_strict(dict(enumerate(actions))))
                .select("from_action", "to_action", "rows", "volume").sort("from_action", "to_action"))
    counts = local.changes.filter(pl.col("metric") == "attempts", pl.col("policy") == "strict")
    overall = counts.filter(pl.col("segment") == "ALL").select(expected.columns).sort("from_action", "to_action")
    assert overall["rows"].to_list() == expected["rows"].to_list()
    np.testing.assert_allclose(overall["volume"].to_numpy(), expected["volume"].to_numpy(), rtol=1e-12)
    for segmentation in ("card_country", "card_funding|channel"):
        parts = counts.filter(pl.col("segmentation") == segmentation).group_by("from_action", "to_action").agg(
            pl.col("rows").sum(), pl.col("volume").sum()).sort("from_action", "to_action")
        assert parts["rows"].to_list() == expected["rows"].to_list()


def test_run_frame_computes_changes_once_when_read_and_equal_to_runs(local, rowgroups: Path) -> None:
    """`run` finalizes the changes with the results (sharing their totals); `run_frame` when they are read."""
    frame = run_frame(parse_config(CONFIG), pl.read_parquet(rowgroups))
    assert "changes" not in vars(frame)  # not computed yet (a cached property)
    first = frame.changes
    assert frame.changes is first
    assert "changes_s" in local.timings
    pl.testing.assert_frame_equal(first, local.changes, check_exact=False, rel_tol=1e-12)  # shards: sums reassociate


def test_a_run_without_changes_has_the_same_results_and_says_so_when_asked(local, rowgroups: Path) -> None:
    """`run(..., changes=False)` (review, plan): no transition sums or examples in the shards, the same results, and
    reading `changes` is an error rather than an empty table that would read as "nothing changes decision"."""
    from simulator.errors import PolicysimError

    without = run(parse_config(CONFIG), rowgroups, execution=Execution(engine="local", shard_rows=10_000), changes=False)
    assert without.plan.changes is None and without.examples.is_empty() and "changes_s" not in without.timings
    pl.testing.assert_frame_equal(without.results, local.results)
    with pytest.raises(PolicysimError, match="changes=False"):
        _ = without.changes


def test_every_segment_gets_its_transitions(local) -> None:
    strict = local.changes.filter(pl.col("policy") == "strict")
    assert set(strict["segment"]) == set(local.results["segment"])
    assert set(strict["segmentation"]) == {"ALL", "card_country", "card_funding|channel"}
    assert set(local.examples["segment"]) == set(local.results["segment"])


def test_examples_are_the_largest_payments_of_each_transition(local, rowgroups: Path) -> None:
    frame = pl.read_parquet(rowgroups)
    rules = (pl.col("amount") > 500) & (pl.col("fraud_score") > 0.1)
    production_allows = pl.concat_list([pl.col(f"logging_prob_{a}") for a in ("allow", "challenge", "block")]
                                       ).list.arg_max() == 0
    for segment, where in (("ALL", pl.lit(True)), ("card_country=US", pl.col("card_country") == "US")):
        expected = (frame.filter(rules & production_allows & where)
                    .sort(["amount", "transaction_id"], descending=[True, False]).head(20)["transaction_id"].to_list())
        shown = local.examples.filter(pl.col("policy") == "rules", pl.col("segment") == segment,
                                      pl.col("from_action") == "allow", pl.col("to_action") == "block")
        assert shown["transaction_id"].to_list() == expected
        assert shown["rank"].to_list() == list(range(1, len(expected) + 1))
    per_group = local.examples.group_by(TRANSITION).len()
    assert per_group["len"].max() == 20


def test_ray_gives_the_local_files(ray_cluster, rowgroups: Path, local) -> None:
    on_ray = run(parse_config(CONFIG), rowgroups, execution=Execution(engine="ray", shard_rows=10_000))
    assert on_ray.changes.equals(local.changes)
    assert on_ray.examples.equals(local.examples)


def test_examples_and_counts_do_not_depend_on_sharding(rowgroups: Path, local) -> None:
    whole = run(parse_config(CONFIG), rowgroups, execution=Execution(engine="local", shard_rows=1_000_000))
    assert whole.examples.equals(local.examples)
    assert whole.changes.select(TRANSITION + ["metric", "rows"]).equals(local.changes.select(TRANSITION + ["metric", "rows"]))
    np.testing.assert_allclose(whole.changes["volume"].to_numpy(), local.changes["volume"].to_numpy(), rtol=1e-12)


def test_without_strata_counts_stay_and_deltas_say_why(rowgroups: Path) -> None:
    stochastic = {"name": "share", "kind": "python", "object": "tests.policies.example_user_policy:BlockShareByAuthScore"}
    config = parse_config({"baseline": {"policy": "logged"}, "policies": [CONFIG["policies"][0], stochastic]})
    result = run(config, rowgroups, execution=LOCAL)
    assert result.changes["delta"].null_count() == result.changes.height
    reasons = result.changes.group_by("policy").agg(pl.col("interval").first())
    assert all(r.startswith("not estimated: the baseline 'logged'") for r in reasons["interval"])
    # a per-row stochastic policy's rows are expected counts: Σ (1 − auth_score) over rows logged allow
    frame = pl.read_parquet(rowgroups).filter(pl.col("action") == "allow")
    share = result.changes.filter(pl.col("policy") == "share", pl.col("segment") == "ALL", pl.col("metric") == "attempts",
                                  pl.col("from_action") == "allow", pl.col("to_action") == "block")
    np.testing.assert_allclose(share["rows"].item(), float((1 - frame["auth_score"]).sum()), rtol=1e-9)
    np.testing.assert_allclose(share["volume"].item(), float(((1 - frame["auth_score"]) * frame["amount"]).sum()), rtol=1e-9)
