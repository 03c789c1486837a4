"""Tests of the synthetic data generator (`simulator.synthetic.generate`).

Statistical checks run on one 200k-row dataset generated once per module;
tolerances are stated next to each check (binomial ones at 5 standard
deviations, so a correct generator fails them with negligible probability).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.errors import InvalidConfig
from simulator.synthetic.generate import GenerateReport, GenerateSpec, file_slices, generate
from simulator.schema import DEFAULT_ACTIONS, logging_prob_column
from simulator.synthetic.model import ModelParams
from simulator.synthetic.world import MCCS, Sampler, cumulative

ROWS = 200_000
SPEC = GenerateSpec(rows=ROWS, files=4, seed=11, chunk_rows=30_000)  # several chunks per file, blocks cut mid-way
DAY_US = 86_400_000_000
HIGH_FRAUD_COUNTRIES = ["NG", "ID", "PH", "BR", "MX", "RO", "TR"]

TRANSACTION_SCHEMA = {
    "transaction_id": pl.String,
    "created_at": pl.Datetime("us", "UTC"),
    "amount": pl.Float64,
    "action": pl.String,
    "propensity": pl.Float64,
    "authorized": pl.Boolean,
    "fraud_dispute": pl.Boolean,
    "dispute_lost": pl.Boolean,
    "disputed_at": pl.Datetime("us", "UTC"),
    "fraud_score": pl.Float64,
    "auth_score": pl.Float64,
    "logging_prob_allow": pl.Float64,
    "logging_prob_challenge": pl.Float64,
    "logging_prob_block": pl.Float64,
    "card_country": pl.String,
    "card_brand": pl.String,
    "card_funding": pl.String,
    "mcc": pl.String,
    "channel": pl.String,
    "merchant_id": pl.String,
}


def binomial_sd(p: float, n: int) -> float:
    """Standard deviation of a proportion p estimated from n rows."""
    return math.sqrt(p * (1 - p) / n)


def read_parts(directory: Path) -> pl.DataFrame:
    """All part files of a directory, in file order."""
    return pl.concat([pl.read_parquet(path) for path in sorted(directory.glob("part-*.parquet"))])


class Generated:
    """One generated dataset: spec, report, frames and generation.json."""

    def __init__(self, spec: GenerateSpec, out: Path) -> None:
        self.spec, self.out = spec, out
        self.report: GenerateReport = generate(spec, out)
        self.tx = read_parts(out / "transactions")
        self.gt = read_parts(out / "ground_truth")
        self.meta = json.loads((out / "generation.json").read_text())
        self.both = self.tx.join(self.gt, on="transaction_id", how="inner", maintain_order="left")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return Generated(SPEC, tmp_path_factory.mktemp("generated") / "out")


# --- layout, schema, time order ----------------------------------------------------------


def test_layout_schema_and_metadata(data: Generated) -> None:
    names = [p.name for p in sorted((data.out / "transactions").iterdir())]
    assert names == [f"part-0000{k}.parquet" for k in range(4)]
    assert names == [p.name for p in sorted((data.out / "ground_truth").iterdir())]
    assert dict(data.tx.schema) == TRANSACTION_SCHEMA
    assert set(data.gt.columns) == set(data.meta["ground_truth_columns"])
    assert data.report == GenerateReport(
        rows=ROWS,
        files=4,
        transactions_dir=data.out / "transactions",
        ground_truth_dir=data.out / "ground_truth",
        as_of=datetime(2026, 10, 1, tzinfo=UTC),
        seconds=data.report.seconds,
    )
    assert data.meta["as_of"] == "2026-10-01T00:00:00+00:00"
    assert data.meta["logging_policy"]["exploration"] == SPEC.exploration
    assert [f["rows"] for f in data.meta["files"]] == [50_000] * 4
    assert sorted(p.name for p in data.out.parent.iterdir()) == ["out"]  # no temporary directory left


def test_files_are_consecutive_time_slices_in_created_at_order(data: Generated) -> None:
    slices = file_slices(ROWS, 4)
    parts = sorted((data.out / "transactions").glob("part-*.parquet"))
    bounds = []
    for (lo, hi), path in zip(slices, parts, strict=True):
        frame = pl.read_parquet(path, columns=["transaction_id", "created_at"])
        assert frame["transaction_id"].to_list() == [f"tx_{i:010d}" for i in range(lo, hi)]
        assert frame["created_at"].is_sorted()
        bounds.append((frame["created_at"].min(), frame["created_at"].max()))
    assert all(previous[1] <= following[0] for previous, following in itertools.pairwise(bounds))
    assert bounds[0][0] >= SPEC.start and bounds[-1][1] <= SPEC.as_of
    # The period is covered evenly: each file spans about a quarter of it (+- 1 day).
    for first, last in bounds:
        assert abs((last - first) / timedelta(days=1) - SPEC.days / 4) < 1.0


def test_payments_follow_a_daily_cycle(data: Generated) -> None:
    hours = data.tx["created_at"].dt.hour()
    afternoon, night = hours.is_between(14, 17).mean(), hours.is_between(2, 5).mean()
    assert 2.5 < afternoon / night < 4.5  # rate 1 + 0.55 cos(2 pi (h - 16) / 24): ~3.2 over these hours


def test_file_slices_split_rows_as_evenly_as_possible() -> None:
    assert file_slices(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert file_slices(5, 5) == [(k, k + 1) for k in range(5)]


# --- SPEC §2 contract ----------------------------------------------------------------------


def test_null_patterns_follow_spec_exactly(data: Generated) -> None:
    tx = data.tx
    blocked = tx["action"] == "block"
    assert (tx["authorized"].is_null() == blocked).all()
    assert (tx["fraud_dispute"].is_null() == ~tx["authorized"].fill_null(False)).all()
    assert (tx["dispute_lost"].is_null() == ~tx["fraud_dispute"].fill_null(False)).all()
    assert (tx["disputed_at"].is_null() == ~tx["fraud_dispute"].fill_null(False)).all()
    disputed = tx.filter(pl.col("fraud_dispute").fill_null(False))
    assert (disputed["disputed_at"] > disputed["created_at"]).all()
    assert (disputed["disputed_at"] <= SPEC.as_of).all()


def test_values_are_in_range(data: Generated) -> None:
    tx = data.tx
    assert tx["transaction_id"].n_unique() == ROWS
    assert set(tx["action"].unique()) == set(DEFAULT_ACTIONS)
    assert (tx["amount"] > 0).all()
    assert ((tx["amount"] * 100).round(0) - tx["amount"] * 100).abs().max() < 1e-6  # cents
    for score in ("fraud_score", "auth_score", "propensity"):
        assert tx[score].is_between(0.0, 1.0).all() and tx[score].is_not_nan().all()
    assert (tx["propensity"] > 0).all()


def test_propensity_is_the_logging_probability_of_the_logged_action(data: Generated) -> None:
    tx = data.tx
    total = sum(tx[logging_prob_column(a)] for a in DEFAULT_ACTIONS)
    assert (total - 1.0).abs().max() < 1e-12
    logged_prob = pl.coalesce(
        [pl.when(pl.col("action") == a).then(pl.col(logging_prob_column(a))) for a in DEFAULT_ACTIONS]
    )
    assert (tx.select(logged_prob == pl.col("propensity")).to_series()).all()  # exactly


def base_action() -> pl.Expr:
    """The logging policy's action before exploration, from the default thresholds."""
    return (
        pl.when(pl.col("fraud_score") >= SPEC.block_above)
        .then(pl.lit("block"))
        .when(pl.col("fraud_score") >= SPEC.challenge_above)
        .then(pl.lit("challenge"))
        .otherwise(pl.lit("allow"))
    )


def test_logged_actions_follow_the_logging_probabilities(data: Generated) -> None:
    other = SPEC.exploration / 3  # 1/60
    tx = data.tx.with_columns(base=base_action())
    for base in DEFAULT_ACTIONS:
        rows = tx.filter(pl.col("base") == base)
        assert (rows[logging_prob_column(base)] == 1 - 2 * other).all()
        for action in DEFAULT_ACTIONS:
            expected = 1 - 2 * other if action == base else other
            share = (rows["action"] == action).mean()
            assert abs(share - expected) < 5 * binomial_sd(expected, rows.height) + 1e-9, (base, action)


def test_base_policy_challenges_a_few_percent_and_blocks_well_under_one(data: Generated) -> None:
    base = data.tx.select(base_action().alias("base"))["base"]
    share = dict(base.value_counts(normalize=True).iter_rows())
    assert 0.015 < share["challenge"] < 0.05
    assert 0.001 < share["block"] < 0.006
    realised = data.meta["realised"]
    assert realised["base_challenge_rate"] == pytest.approx(share["challenge"], abs=1e-12)


# --- ground truth ----------------------------------------------------------------------------


def test_ground_truth_has_the_log_rows_in_the_same_order(data: Generated) -> None:
    assert data.gt["transaction_id"].equals(data.tx["transaction_id"])
    assert data.both.height == ROWS


def test_ground_truth_null_patterns(data: Generated) -> None:
    gt = data.gt
    for a in ("allow", "challenge"):
        assert gt[f"authorized_{a}"].null_count() == 0
        assert (gt[f"fraud_dispute_{a}"].is_null() == ~gt[f"authorized_{a}"]).all()
        assert (gt[f"dispute_lost_{a}"].is_null() == ~gt[f"fraud_dispute_{a}"].fill_null(False)).all()
        assert gt[f"auth_prob_{a}"].is_between(0.0, 1.0).all()
    assert gt["fraud_prob"].is_between(0.0, 1.0).all()
    assert (gt["dispute_delay_days"] > 0).all()


def test_log_is_exactly_the_ground_truth_of_the_logged_action_censored_at_as_of(data: Generated) -> None:
    delay = pl.duration(microseconds=(pl.col("dispute_delay_days") * DAY_US).floor().cast(pl.Int64))
    frame = data.both.with_columns(arrives=pl.col("created_at") + delay)
    for a in ("allow", "challenge"):
        rows = frame.filter(pl.col("action") == a)
        known = rows["fraud_dispute_" + a].fill_null(False) & (rows["arrives"] <= SPEC.as_of)
        assert rows["authorized"].equals(rows[f"authorized_{a}"], check_names=False)
        assert (rows["fraud_dispute"].fill_null(False) == known).all()
        assert (rows["fraud_dispute"].is_null() == ~rows[f"authorized_{a}"]).all()
        seen = rows.filter(pl.col("fraud_dispute").fill_null(False))
        assert seen["dispute_lost"].equals(seen[f"dispute_lost_{a}"], check_names=False)
        assert seen["disputed_at"].equals(seen["arrives"], check_names=False)
    blocked = frame.filter(pl.col("action") == "block")
    for column in ("authorized", "fraud_dispute", "dispute_lost", "disputed_at"):
        assert blocked[column].null_count() == blocked.height


def test_three_d_secure_abandonment_and_coupling(data: Generated) -> None:
    # Under the shared issuer uniform, an approval under allow implies approval under challenge
    # (the 3DS approval probability is higher), so among those rows authorized_challenge is the
    # 3DS completion alone: 0.88 for shoppers, 0.12 for fraudsters.
    params = ModelParams()
    approved = data.gt.filter(pl.col("authorized_allow"))
    for fraud, completion in ((False, params.completion_legit), (True, params.completion_fraud)):
        rows = approved.filter(pl.col("is_fraud") == fraud)
        share = rows["authorized_challenge"].mean()
        assert abs(share - completion) < 5 * binomial_sd(completion, rows.height), fraud
    # Net, a challenge costs ~9 % of legitimate authorizations: 12 % abandonment, partly offset
    # by the higher approval of authenticated payments.
    legit = data.gt.filter(~pl.col("is_fraud"))
    assert 0.07 < 1 - legit["authorized_challenge"].mean() / legit["authorized_allow"].mean() < 0.11


# --- realism -----------------------------------------------------------------------------------


def test_realised_rates_are_those_of_card_payments(data: Generated) -> None:
    r = data.meta["realised"]
    tx = data.tx
    assert 0.005 < data.gt["is_fraud"].mean() < 0.01
    assert r["fraud_attempt_rate"] == pytest.approx(data.gt["is_fraud"].mean(), abs=1e-12)
    assert 0.86 < r["auth_rate_not_blocked"] < 0.93
    assert r["auth_rate"] == pytest.approx(tx["authorized"].fill_null(False).mean(), abs=1e-12)
    assert 0.03 < r["challenge_rate"] < 0.06  # 2-3 % by thresholds + 1.7 % exploration
    assert 0.017 < r["block_rate"] < 0.025  # 0.2-0.4 % by thresholds + 1.7 % exploration
    authorized = tx.filter(pl.col("authorized").fill_null(False))
    disputes = authorized.filter(pl.col("fraud_dispute"))
    assert r["fraud_count"] == disputes.height
    bps_volume = 1e4 * disputes["amount"].sum() / authorized["amount"].sum()
    assert r["fraud_rate_bps"] == pytest.approx(bps_volume, rel=1e-9)
    assert 20 < bps_volume < 120  # tens of basis points of authorized volume
    assert 0.5 < r["dispute_lost_rate"] < 0.85
    assert 0.05 < r["unobserved_dispute_share"] < 0.25


def test_fraud_is_higher_in_risky_segments(data: Generated) -> None:
    frame = data.both
    overall = frame["is_fraud"].mean()

    def rate(condition: pl.Expr) -> float:
        return frame.filter(condition)["is_fraud"].mean()

    assert rate(pl.col("card_country").is_in(HIGH_FRAUD_COUNTRIES)) > 1.8 * overall
    assert rate(pl.col("card_country").is_in(["DE", "NL", "SE", "DK", "NO"])) < 0.9 * overall
    assert rate(pl.col("card_funding") == "prepaid") > 1.8 * rate(pl.col("card_funding") == "credit")
    assert rate(pl.col("mcc").is_in(["5944", "7995", "4722", "5732"])) > 4 * rate(pl.col("mcc") == "5411")
    assert rate(pl.col("channel") == "moto") > rate(pl.col("channel") == "ecommerce")
    # Larger amounts are riskier, within an MCC too.
    grocery = frame.filter(pl.col("mcc") == "5411")
    median = grocery["amount"].median()
    assert (
        grocery.filter(pl.col("amount") > median)["fraud_prob"].mean()
        > grocery.filter(pl.col("amount") <= median)["fraud_prob"].mean()
    )


def test_amounts_are_log_normal_by_mcc(data: Generated) -> None:
    stats = (
        data.tx.group_by("mcc")
        .agg(
            n=pl.len(),
            median=pl.col("amount").median(),
            sd=pl.col("amount").log().std(),
            skew=pl.col("amount").log().skew(),
        )
        .filter(pl.col("n") >= 2_000)
    )
    catalogue = {code: (median, sigma) for code, _, _, median, sigma, _, _ in MCCS}
    assert stats.height >= 15
    for mcc, _, median, sd, skew in stats.iter_rows():
        want_median, want_sigma = catalogue[mcc]
        # median of a log-normal sample: relative sd ~ 1.25 sigma / sqrt(n) <= 3 %
        assert abs(median / want_median - 1) < 0.06, mcc
        assert abs(sd / want_sigma - 1) < 0.06, mcc  # relative sd of a sd: 1 / sqrt(2n) <= 1.6 %
        assert abs(skew) < 0.15, mcc  # sd of the skewness: sqrt(6 / n) <= 0.055


def test_segment_shares_look_like_a_card_book(data: Generated) -> None:
    tx = data.tx
    funding = dict(tx["card_funding"].value_counts(normalize=True).iter_rows())
    for name, share in (("credit", 0.55), ("debit", 0.38), ("prepaid", 0.07)):
        assert abs(funding[name] - share) < 0.01, name
    assert 0.86 < (tx["channel"] == "ecommerce").mean() < 0.93
    brands = tx["card_brand"].value_counts(sort=True)["card_brand"].to_list()
    assert brands[:3] == ["visa", "mastercard", "amex"] and set(brands) >= {"discover", "jcb", "unionpay"}
    countries = tx["card_country"].value_counts(sort=True)
    assert countries.height == 30 and countries["card_country"][0] == "US"
    assert countries["count"][0] > 20 * countries["count"][-1]  # Zipf-like


def test_merchants_have_one_mcc_and_heavy_tailed_volume(data: Generated) -> None:
    merchants = data.tx.group_by("merchant_id").agg(n=pl.len(), mccs=pl.col("mcc").n_unique())
    assert (merchants["mccs"] == 1).all()
    assert 1_000 < merchants.height <= 3_000
    assert merchants["merchant_id"].str.contains(r"^m_\d{5}$").all()
    assert merchants["n"].max() > 30 * merchants["n"].median()


def decile(column: str) -> pl.Expr:
    """0..9: the decile of a column's rank (ties broken by row order)."""
    return (pl.col(column).rank("ordinal") - 1) * 10 // pl.len()


def test_fraud_score_is_calibrated_by_decile(data: Generated) -> None:
    frame = data.both.with_columns(decile=decile("fraud_score"))
    by_decile = frame.group_by("decile").agg(
        frauds=pl.col("is_fraud").sum(),
        expected=pl.col("fraud_score").sum(),
        var=(pl.col("fraud_score") * (1 - pl.col("fraud_score"))).sum(),
    )
    for frauds, expected, var in by_decile.select("frauds", "expected", "var").iter_rows():
        assert abs(frauds - expected) < 5 * math.sqrt(var) + 2
    top = by_decile.filter(pl.col("decile") == 9)
    assert top["frauds"].item() > 0.8 * frame["is_fraud"].sum()  # informative


def test_auth_score_is_roughly_calibrated_for_legitimate_payments(data: Generated) -> None:
    legit = data.both.filter(~pl.col("is_fraud"))
    legit = legit.with_columns(decile=decile("auth_score"))
    by_decile = legit.group_by("decile").agg(pl.col("auth_score").mean(), pl.col("authorized_allow").mean())
    for score, approved in by_decile.select("auth_score", "authorized_allow").iter_rows():
        assert abs(score - approved) < 0.02  # probit approximation error + ~0.01 sampling noise


def test_recent_labels_are_immature(data: Generated) -> None:
    as_of = SPEC.as_of
    eventual = pl.when(pl.col("action") == "allow").then("fraud_dispute_allow").otherwise("fraud_dispute_challenge")
    authorized = data.both.filter(pl.col("authorized").fill_null(False)).with_columns(eventual=eventual)

    def rates(newer_than_days: int, older_than_days: int) -> tuple[float, float]:
        """Observed and eventual fraud disputes per authorized payment created in the window."""
        start, end = as_of - timedelta(days=older_than_days), as_of - timedelta(days=newer_than_days)
        rows = authorized.filter(pl.col("created_at").is_between(start, end))
        return rows["fraud_dispute"].mean(), rows["eventual"].mean()

    (recent, recent_eventual), (mature, mature_eventual) = rates(0, 30), rates(150, 365)
    assert recent < 0.35 * mature  # ~1/4 of the disputes of the last 30 days are known at as_of
    assert mature > 0.95 * mature_eventual  # after 150 days, ~99 % are known
    assert recent_eventual > 0.5 * mature_eventual  # the immaturity is censoring, not less fraud


# --- reproducibility, atomic output, arguments ----------------------------------------------


def test_same_spec_writes_identical_bytes(tmp_path: Path) -> None:
    spec = GenerateSpec(rows=20_000, files=2, seed=5, chunk_rows=7_000)
    generate(spec, tmp_path / "a")
    generate(spec, tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 5
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_data_do_not_depend_on_chunking_or_files_but_on_the_seed(tmp_path: Path) -> None:
    frames = {}
    for name, files, chunk_rows, seed in (("a", 1, 100_000, 3), ("b", 3, 4_321, 3), ("c", 1, 100_000, 4)):
        generate(GenerateSpec(rows=70_000, files=files, seed=seed, chunk_rows=chunk_rows), tmp_path / name)
        frames[name] = read_parts(tmp_path / name / "transactions"), read_parts(tmp_path / name / "ground_truth")
    assert frames["a"][0].equals(frames["b"][0]) and frames["a"][1].equals(frames["b"][1])
    assert not frames["a"][0].equals(frames["c"][0])
    assert (frames["a"][0]["amount"] != frames["c"][0]["amount"]).mean() > 0.9


def test_on_rows_reports_every_chunk(tmp_path: Path) -> None:
    calls: list[int] = []
    generate(GenerateSpec(rows=25_000, files=2, chunk_rows=5_000), tmp_path / "out", on_rows=calls.append)
    assert calls == [5_000, 5_000, 2_500] * 2  # two files of 12,500 rows


def test_an_earlier_output_is_refused_then_replaced_whole_with_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate(GenerateSpec(rows=1_000, files=3), out)
    with pytest.raises(InvalidConfig, match=re.escape(f"output folder {out}: not empty")):
        generate(GenerateSpec(rows=1_000, files=2), out)
    assert len(list((out / "transactions").iterdir())) == 3  # a refused run touches nothing
    generate(GenerateSpec(rows=1_000, files=2), out, overwrite=True)
    assert sorted(p.name for p in (out / "transactions").iterdir()) == ["part-00000.parquet", "part-00001.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left beside it


def test_failure_leaves_no_partial_output(tmp_path: Path) -> None:
    def fail(rows: int) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        generate(GenerateSpec(rows=5_000, chunk_rows=1_000), tmp_path / "out", on_rows=fail)
    assert list(tmp_path.iterdir()) == []


def test_a_single_row_is_a_valid_dataset(tmp_path: Path) -> None:
    generate(GenerateSpec(rows=1), tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "generation.json").read_text())  # strict JSON: no NaN
    assert read_parts(tmp_path / "out" / "transactions")["transaction_id"].to_list() == ["tx_0000000000"]
    assert meta["realised"]["fraud_attempt_rate"] in (0.0, 1.0)


def test_out_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.write_text("")
    with pytest.raises(InvalidConfig, match=re.escape(f"output folder {target}: exists and is a file")):
        generate(GenerateSpec(rows=10), target)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rows", 0),
        ("rows", True),
        ("rows", 10**10 + 1),
        ("files", 0),
        ("seed", -1),
        ("days", 0),
        ("chunk_rows", 0),
        ("chunk_rows", 2.5),
        ("exploration", 1.5),
        ("exploration", float("nan")),
        ("challenge_above", -0.1),
        ("block_above", 2),
        ("start", datetime(2025, 1, 1)),
    ],
)
def test_spec_validation_names_field_and_value(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{field}: must be") + ".*" + re.escape(f"got {value!r}")):
        GenerateSpec(**{"rows": 100, field: value})  # type: ignore[arg-type]


def test_spec_validation_of_cross_field_rules() -> None:
    with pytest.raises(ValueError, match=re.escape("files: must be an integer in [1, 10], got 11")):
        GenerateSpec(rows=10, files=11)
    with pytest.raises(ValueError, match=re.escape("challenge_above: must be <= block_above (0.3), got 0.5")):
        GenerateSpec(rows=10, challenge_above=0.5, block_above=0.3)


# --- the categorical sampler -----------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    weights=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40).filter(lambda w: sum(w) > 0),
    seed=st.integers(0, 2**32 - 1),
)
def test_sampler_matches_searchsorted(weights: list[float], seed: int) -> None:
    edges = cumulative(np.array(weights))
    keys = np.concatenate([np.random.default_rng(seed).random(2_000), edges[edges < 1], np.nextafter(edges, 0)])
    keys = keys[(keys >= 0) & (keys < 1)]
    assert np.array_equal(Sampler.over(edges, 1.0).index(keys), np.searchsorted(edges, keys, side="left"))
