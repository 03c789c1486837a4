"""Issue #12: the dispute-delay curve Ĝ behind `immature_labels = "develop"`, computed by hand on a tiny log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from simulator.model.maturity import MIN_SHARE, delay_counts, development, fit_delay_curve

AS_OF = datetime(2026, 1, 11, tzinfo=UTC)
# (delay day k, age day m) of six observed disputes. The dispute on the row aged 2 days could not
# have shown a delay of 2 or 3 days: a naive empirical CDF of the delays would ignore that.
DISPUTES = [(0, 5), (1, 5), (2, 5), (1, 2), (3, 8), (1, 8)]


def tiny_log() -> pl.DataFrame:
    """The six disputes (created mid-day, disputed an hour into their delay day), two undisputed rows,
    and one dispute that arrived after the as-of date (not in the log as of that date)."""
    created = [AS_OF - timedelta(days=m, hours=12) for _, m in DISPUTES]
    disputed = [c + timedelta(days=k, hours=1) for c, (k, _) in zip(created, DISPUTES, strict=True)]
    late = AS_OF - timedelta(days=1, hours=12)
    return pl.DataFrame({
        "created_at": [*created, AS_OF - timedelta(days=3), AS_OF - timedelta(days=7), late],
        "fraud_dispute": [True] * 6 + [False, None, True],
        "disputed_at": [*disputed, None, None, late + timedelta(days=4)],
    }, schema_overrides={"created_at": pl.Datetime("us", "UTC"), "disputed_at": pl.Datetime("us", "UTC")})


def test_counts_by_delay_and_age_day_leave_out_disputes_after_as_of() -> None:
    counts = delay_counts(tiny_log().lazy(), AS_OF)
    expected = np.zeros((4, 9))
    for k, m in DISPUTES:
        expected[k, m] += 1
    np.testing.assert_array_equal(counts, expected)


def test_curve_by_hand() -> None:
    """Reverse-time hazards r(t) = E(t) / R(t) among rows aged ≥ t + 1 days:
    r(3) = 1/5 (delays ≤ 3 on rows aged ≥ 4: five; of delay 3: one), r(2) = 1/4, r(1) = 3/4, r(0) = 1,
    so Ĝ(3) = 1, Ĝ(2) = 1 − r(3) = 0.8, Ĝ(1) = (1 − r(2)) Ĝ(2) = 0.6, Ĝ(0) = (1 − r(1)) Ĝ(1) = 0.15.
    Greenwood: Var log Ĝ(t) = Σ_{s>t} E(s) / (R(s) (R(s) − E(s)))."""
    curve = fit_delay_curve(delay_counts(tiny_log().lazy(), AS_OF))
    np.testing.assert_allclose(curve.hazard, [1.0, 0.75, 0.25, 0.2])
    np.testing.assert_allclose(curve.share, [0.15, 0.6, 0.8, 1.0])
    np.testing.assert_allclose(curve.log_variance, [1 / 20 + 1 / 12 + 3 / 4, 1 / 20 + 1 / 12, 1 / 20, 0.0])
    naive = np.cumsum(np.bincount([k for k, _ in DISPUTES])) / len(DISPUTES)
    assert naive[1] > curve.share[1]  # ignoring the censoring overstates how many disputes have arrived


def test_weights_minimum_age_and_curve_variance_by_hand() -> None:
    """A row aged m whole days has seen the mean of Ĝ(m − 1) and Ĝ(m): age 1 → 0.375 < 1/2 (left out),
    age 2 → 0.7 (weight 1/0.7), age 3 → 0.9, from age 4 on → 1."""
    dev = development(delay_counts(tiny_log().lazy(), AS_OF), AS_OF)
    assert MIN_SHARE == 0.5 and dev.min_age_days == 2 and dev.cutoff == AS_OF - timedelta(days=2)
    np.testing.assert_allclose(dev.levels[1:6], [0.0, 0.0, 1 / 0.7, 1 / 0.9, 1.0])
    assert dev.levels[0] == 1.0 and dev.levels[-1] == 1.0
    # Var_Ĝ(T)/T² = Σ_s v_s (share of the developed total aged < s)²: only s = 3 has developed rows below it
    # (the one at age 2, weight 1/0.7, of a total 1/0.7 + 3 + 2): v_3 = 1/20.
    share = (1 / 0.7) / (1 / 0.7 + 5)
    assert dev.relative_variance == pytest.approx(share**2 / 20)
    assert dev.disputes == 6


def test_weight_expression_matches_the_table() -> None:
    dev = development(delay_counts(tiny_log().lazy(), AS_OF), AS_OF)
    frame = tiny_log().with_columns(pl.col("fraud_dispute").fill_null(False))
    weights = frame.select(dev.weight_expr()).to_series().to_numpy()
    codes = frame.select(dev.code_expr()).to_series().to_numpy()
    ages = np.array([m for _, m in DISPUTES] + [3, 7, 1])
    np.testing.assert_allclose(weights, dev.levels[1 + ages])
    # only fraud rows old enough to develop carry a code; the rest have weight 1 through code 0
    np.testing.assert_array_equal(codes, [6, 6, 6, 3, 9, 9, 0, 0, 0])


def test_no_disputes_gives_a_flat_curve() -> None:
    curve = fit_delay_curve(np.zeros((0, 0)))
    np.testing.assert_array_equal(curve.share, [1.0])
