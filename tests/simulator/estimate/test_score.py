"""Score (Wilson) limits for 0/1 shares and their MOVER combination (`simulator.estimate.score`).

Known answers: Wilson's limits for a few shares (Newcombe 1998, table I, and
hand-computed), the binomial coverage that motivates them, and the combined
interval of an estimate built by hand from one share and one symmetric rest.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from simulator import parse_config, run_frame
from simulator.model.value import ValueModel, ValueSet
from simulator.estimate.score import two_values, wilson
from simulator.synthetic.fresh import as_of, fresh_population

Q = 1.959963984540054


@pytest.mark.parametrize(("successes", "n", "low", "high"), [
    (81, 263, 0.2553, 0.3662),  # Newcombe (1998) table I, 81/263
    (15, 148, 0.0624, 0.1605),  # 15/148
    (0, 20, 0.0, 0.1611),  # 0/20
    (29, 29, 0.8830, 1.0),  # 29/29
    (50, 100, 0.4038, 0.5962),
])
def test_wilson_limits_match_published_values(successes: int, n: int, low: float, high: float) -> None:
    got = wilson(np.array([successes / n]), np.array([float(n)]), np.array([Q]))
    assert got[0][0] == pytest.approx(low, abs=1e-4)
    assert got[1][0] == pytest.approx(high, abs=1e-4)


@pytest.mark.parametrize(("p", "n"), [(0.9, 100), (0.95, 300), (0.02, 400)])
def test_wilson_holds_both_tails_where_the_symmetric_interval_misses_one(p: float, n: int) -> None:
    k = np.arange(n + 1)
    mass, share = stats.binom.pmf(k, n, p), k / n
    low, high = wilson(share, np.full(share.shape, float(n)), np.full(share.shape, Q))
    half = Q * np.sqrt(share * (1 - share) / n)
    wald_below, wald_above = mass[p < share - half].sum(), mass[p > share + half].sum()
    worst_wald = max(wald_below, wald_above)
    assert worst_wald > 0.04  # the symmetric interval misses one side (why this exists)
    worst = max(mass[p < low].sum(), mass[p > high].sum())  # a binomial's discreteness moves it around 0.025
    assert worst < 0.045 and worst < worst_wald - 0.01


def test_one_to_three_events_take_the_exact_poisson_lower_limit() -> None:
    """Brown, Cai & DasGupta's modification: Wilson's own lower limit for 1/29 (0.0061) is too high for small rates."""
    low, high = wilson(np.array([1 / 29, 28 / 29]), np.array([29.0, 29.0]), np.array([Q, Q]))
    assert low[0] == pytest.approx(-np.log(0.975) / 29)  # Garwood, one event
    assert high[0] == pytest.approx(0.1718, abs=1e-4)  # Wilson's upper limit stands
    assert high[1] == pytest.approx(1 + np.log(0.975) / 29)  # and symmetrically at the top


def test_a_share_seen_only_as_zero_still_has_an_upper_limit() -> None:
    low, high = wilson(np.array([0.0]), np.array([50.0]), np.array([Q]))
    assert low[0] == 0.0
    assert high[0] == pytest.approx(Q**2 / (50 + Q**2))


def test_the_two_valued_columns_of_the_default_value_model() -> None:
    actions = ("allow", "challenge", "block")
    model = ValueSet(ValueModel())
    assert two_values(model, actions, 0, "authorized") == (0.0, 1.0)
    assert two_values(model, actions, 1, "authorized") == (0.0, 1.0)
    assert two_values(model, actions, 0, "fraud") == (0.0, 1.0)
    assert two_values(model, actions, 0, "authorized_volume") is None  # moves with the amount
    assert two_values(model, actions, 0, "net_value") is None


@pytest.fixture(scope="module")
def results() -> pl.DataFrame:
    log, _ = fresh_population(20_000, 77)
    config = parse_config({
        "data": {"as_of": as_of(), "immature_labels": "exclude"},
        "policies": [{"name": "cand", "kind": "threshold", "score": "fraud_score",
                      "challenge_above": 0.02, "block_above": 0.2}],
        "estimation": {"min_ess": 0},
    })
    return run_frame(config, log).overall().filter(pl.col("policy") == "cand")


def _row(results: pl.DataFrame, metric: str) -> dict[str, float]:
    return results.filter(pl.col("metric") == metric).row(0, named=True)


def test_counts_near_certainty_get_a_longer_lower_side(results: pl.DataFrame) -> None:
    """~90 % approvals: the share's variance grows as it moves away from 1, so the interval reaches further down."""
    row = _row(results, "authorized_count")
    assert row["estimate"] - row["ci_low"] > row["ci_high"] - row["estimate"]
    assert "score limits" in row["interval"]


def test_rare_counts_get_a_longer_upper_side(results: pl.DataFrame) -> None:
    """Payments blocked: a small share of the rows, whose variance grows as the share does."""
    row = _row(results, "blocked_count")
    assert row["ci_high"] - row["estimate"] > row["estimate"] - row["ci_low"]


def test_money_keeps_the_symmetric_t_interval(results: pl.DataFrame) -> None:
    row = _row(results, "net_value")
    assert row["ci_high"] - row["estimate"] == pytest.approx(row["estimate"] - row["ci_low"], rel=1e-9)
