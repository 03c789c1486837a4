"""Confidence intervals (simulator/estimate/intervals.py) against scipy and hand-derived values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from scipy import stats as sps

from simulator.estimate import intervals
from simulator.estimate.intervals import gamma, normal, percentile

TOL = 1e-10  # relative; every reference below is a closed form or scipy's own quantile function


# -- tails ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("confidence", "expected"), [(0.95, (0.025, 0.975)), (0.9, (0.05, 0.95)), (0.5, (0.25, 0.75))])
def test_tails_split_the_rest_evenly(confidence: float, expected: tuple[float, float]) -> None:
    # alpha = (1 − confidence) / 2 on each side
    assert intervals._tails(confidence) == pytest.approx(expected, abs=1e-15)


# -- normal --------------------------------------------------------------------------------------


def test_normal_is_estimate_plus_minus_z_se() -> None:
    low, high = normal(np.array([10.0]), np.array([2.0]), 0.95)
    # z_0.975 = 1.959963984540054: 10 ∓ 2·1.95996… = 6.08007…, 13.91992…
    assert low[0] == pytest.approx(10.0 - 2 * 1.959963984540054, rel=TOL)
    assert high[0] == pytest.approx(10.0 + 2 * 1.959963984540054, rel=TOL)


@pytest.mark.parametrize("confidence", [0.5, 0.8, 0.9, 0.95, 0.99])
def test_normal_matches_scipy(confidence: float) -> None:
    estimate = np.array([[-3.0, 0.0, 1e6], [2.5, 7.0, -1e-3]])
    se = np.array([[1.0, 0.5, 1e3], [0.0, 2.0, 1e-4]])
    low, high = normal(estimate, se, confidence)
    ref_low, ref_high = sps.norm.interval(confidence, loc=estimate, scale=np.where(se > 0, se, 1.0))
    ref_low, ref_high = np.where(se > 0, ref_low, estimate), np.where(se > 0, ref_high, estimate)
    assert low.shape == high.shape == estimate.shape  # vectorised: (segments, points) in, same out
    np.testing.assert_allclose(low, ref_low, rtol=TOL)
    np.testing.assert_allclose(high, ref_high, rtol=TOL)


def test_normal_zero_variance_is_a_point_and_nan_propagates() -> None:
    low, high = normal(np.array([4.0, np.nan, 1.0]), np.array([0.0, 1.0, np.nan]), 0.95)
    assert (low[0], high[0]) == (4.0, 4.0)  # se = 0: exactly the estimate
    assert np.isnan(low[1:]).all() and np.isnan(high[1:]).all()


@settings(max_examples=50, deadline=None)
@given(
    estimate=st.floats(-1e6, 1e6),
    se=st.floats(0.0, 1e6),
    confidence=st.floats(0.5, 0.999),
)
def test_normal_is_symmetric_and_ordered(estimate: float, se: float, confidence: float) -> None:
    low, high = normal(np.array([estimate]), np.array([se]), confidence)
    assert low[0] <= estimate <= high[0]
    assert (high[0] - estimate) == pytest.approx(estimate - low[0], rel=1e-9, abs=1e-9)


# -- gamma (Fay–Feuer) ---------------------------------------------------------------------------


def _fay_feuer(estimate: float, variance: float, event: float, confidence: float) -> tuple[float, float]:
    """Fay & Feuer (1997), written out with scipy's gamma distribution.

    low:  Gamma(shape = y²/v, scale = v/y) quantile α (mean y, variance v);
    high: Gamma(shape = (y+w)²/(v+w²), scale = (v+w²)/(y+w)) quantile 1 − α (one more event of size w).
    """
    alpha = (1 - confidence) / 2
    low = sps.gamma.ppf(alpha, estimate**2 / variance, scale=variance / estimate)
    high = sps.gamma.ppf(1 - alpha, (estimate + event) ** 2 / (variance + event**2),
                         scale=(variance + event**2) / (estimate + event))
    return float(low), float(high)


@pytest.mark.parametrize(
    ("estimate", "variance", "event"),
    [(3.0, 3.0, 1.0), (120.0, 400.0, 5.0), (0.5, 2.0, 3.0), (1e4, 1e5, 50.0), (7.0, 0.01, 0.2)],
)
@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_gamma_matches_fay_feuer(estimate: float, variance: float, event: float, confidence: float) -> None:
    low, high = gamma(np.array([estimate]), np.array([variance]), np.array([event]), confidence)
    ref_low, ref_high = _fay_feuer(estimate, variance, event, confidence)
    assert low[0] == pytest.approx(ref_low, rel=1e-9)
    assert high[0] == pytest.approx(max(ref_high, estimate), rel=1e-9)


@pytest.mark.parametrize(
    ("count", "expected"),
    # exact (Garwood) Poisson 95 % limits, as tables print them
    [(1, (0.0253, 5.5716)), (3, (0.6187, 8.7673)), (10, (4.7954, 18.3904))],
)
def test_gamma_of_an_unweighted_count_is_the_exact_poisson_interval(count: int, expected: tuple[float, float]) -> None:
    # weights 1: y = x events, v = x, w = 1 → low = Gamma(x, 1) quantile α = χ²(2x)/2,
    # high = Gamma(x+1, 1) quantile 1−α = χ²(2x+2)/2: Garwood's interval.
    low, high = gamma(np.array([float(count)]), np.array([float(count)]), np.array([1.0]), 0.95)
    assert low[0] == pytest.approx(sps.chi2.ppf(0.025, 2 * count) / 2, rel=TOL)
    assert high[0] == pytest.approx(sps.chi2.ppf(0.975, 2 * count + 2) / 2, rel=TOL)
    assert (low[0], high[0]) == pytest.approx(expected, abs=1e-4)


def test_gamma_with_no_events_reaches_one_event_up() -> None:
    # y = 0, v = 0, w = 1: low = 0; high = Gamma(1, 1) quantile 0.975 = −ln(0.025) = 3.68888 (the rule of 3.7)
    low, high = gamma(np.array([0.0]), np.array([0.0]), np.array([1.0]), 0.95)
    assert low[0] == 0.0
    assert high[0] == pytest.approx(-math.log(0.025), rel=TOL)
    # an event of size 2.5 scales the upper limit: 2.5·3.68888
    low, high = gamma(np.array([0.0]), np.array([0.0]), np.array([2.5]), 0.95)
    assert high[0] == pytest.approx(-2.5 * math.log(0.025), rel=TOL)


def test_gamma_zero_variance_and_no_event_is_a_point() -> None:
    # an exact total (v = 0, w = 0): the interval is the estimate itself
    low, high = gamma(np.array([5.0, 0.0]), np.array([0.0, 0.0]), np.array([0.0, 0.0]), 0.95)
    np.testing.assert_array_equal(low, [5.0, 0.0])
    np.testing.assert_array_equal(high, [5.0, 0.0])


def test_gamma_zero_variance_with_an_event_widens_only_upwards() -> None:
    # y = 4, v = 0, w = 1: low = y (no spread below); high = Gamma(shape 25/1, scale 1/5) quantile 0.975
    low, high = gamma(np.array([4.0]), np.array([0.0]), np.array([1.0]), 0.95)
    assert low[0] == 4.0
    assert high[0] == pytest.approx(sps.gamma.ppf(0.975, 25.0, scale=0.2), rel=TOL)


def test_gamma_is_vectorised_over_segments_and_points() -> None:
    rng = np.random.default_rng(0)
    estimate = rng.uniform(0.1, 100, size=(4, 7))
    variance = rng.uniform(0.1, 50, size=(4, 7))
    event = rng.uniform(0, 3, size=(4, 7))
    estimate[1, :3] = estimate[0, :3]  # repeated shapes: the quantile is computed once per distinct shape
    variance[1, :3] = variance[0, :3]
    low, high = gamma(estimate, variance, event, 0.95)
    assert low.shape == high.shape == (4, 7)
    for i in range(4):
        for j in range(7):
            ref_low, ref_high = _fay_feuer(estimate[i, j], variance[i, j], event[i, j], 0.95)
            assert low[i, j] == pytest.approx(ref_low, rel=1e-9)
            assert high[i, j] == pytest.approx(max(ref_high, estimate[i, j]), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    estimate=st.floats(1e-3, 1e6),
    cv=st.floats(1e-3, 3.0),
    event=st.floats(0.0, 1e3),
    confidence=st.floats(0.5, 0.99),
)
def test_gamma_brackets_the_estimate(estimate: float, cv: float, event: float, confidence: float) -> None:
    # (a larger event does not always raise the upper limit: with a large variance it also lowers the
    # shape of the upper gamma, so no monotonicity is claimed)
    variance = (cv * estimate) ** 2
    low, high = gamma(np.array([estimate]), np.array([variance]), np.array([event]), confidence)
    assert 0.0 <= low[0] <= estimate <= high[0]
    assert np.isfinite(low[0]) and np.isfinite(high[0])


def test_gamma_of_undefined_inputs_is_undefined() -> None:
    low, high = gamma(np.array([np.nan, 3.0]), np.array([1.0, np.nan]), np.array([1.0, 1.0]), 0.95)
    assert np.isnan(low).all() and np.isnan(high).all()


def test_gamma_ppf_is_scipys_quantile_for_every_shape() -> None:
    shape = np.array([[0.5, 2.0, 2.0], [30.0, 0.5, 1e4]])  # repeated shapes, 2-D
    got = intervals._gamma_ppf(0.975, shape)
    assert got.shape == shape.shape
    np.testing.assert_allclose(got, sps.gamma.ppf(0.975, shape), rtol=1e-10)
    np.testing.assert_allclose(got, special.gammaincinv(shape, 0.975), rtol=0)


# -- percentile -------------------------------------------------------------------------------------


def test_percentile_known_quantiles() -> None:
    # 101 replicates 0, 1, …, 100: quantile q is exactly 100·q (linear interpolation between order statistics)
    replicates = np.arange(101.0)
    low, high = percentile(replicates, 0.9)
    assert (float(low), float(high)) == pytest.approx((5.0, 95.0), abs=1e-12)
    # 5 replicates [4, 1, 3, 2, 5] at 0.5: quantiles 0.25 and 0.75 of the sorted 1..5 → 2 and 4
    low, high = percentile(np.array([4.0, 1.0, 3.0, 2.0, 5.0]), 0.5)
    assert (float(low), float(high)) == pytest.approx((2.0, 4.0), abs=1e-12)


def test_percentile_over_the_last_axis_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    replicates = rng.normal(size=(3, 5, 200))  # (segments, points, B)
    low, high = percentile(replicates, 0.95)
    assert low.shape == high.shape == (3, 5)
    # the same quantiles, computed per pair instead of together: equal up to rounding
    np.testing.assert_allclose(low, np.quantile(replicates, 0.025, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(high, np.quantile(replicates, 0.975, axis=-1), rtol=1e-12)


def test_percentile_is_undefined_when_any_replicate_is() -> None:
    low, high = percentile(np.array([[1.0, np.nan, 3.0], [1.0, 2.0, 3.0], [2.0, 2.0, 2.0]]), 0.9)
    assert np.isnan(low[0]) and np.isnan(high[0])
    # [1, 2, 3] at quantiles 0.05 and 0.95: 1 + 2·0.05 = 1.1 and 1 + 2·0.95 = 2.9
    assert (low[1], high[1]) == pytest.approx((1.1, 2.9), abs=1e-12)
    assert (low[2], high[2]) == (2.0, 2.0)  # no spread: a point
