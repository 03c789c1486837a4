"""`epsilon`: the mixing arithmetic, coding over coded and uncoded bases, config errors."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest

from simulator.errors import InvalidConfig, UnknownName
from tests.policies.conftest import Build

THRESHOLD = {"kind": "threshold", "score": "fraud_score", "challenge_above": 0.5, "block_above": 0.8}
STOCHASTIC = {"kind": "python", "object": "tests.policies.example_user_policy:BlockShareByAuthScore"}
BATCH = pl.DataFrame({"fraud_score": [0.1, 0.6, 0.9], "auth_score": [1.0, 0.5, 0.2]})


def test_mixing_a_deterministic_base(build: Build) -> None:
    probs = build({"kind": "epsilon", "epsilon": 0.3, "base": THRESHOLD}).probabilities(BATCH)
    # ε = 0.3 over 3 actions: chosen action 0.7 · 1 + 0.3 / 3 = 0.8, the others 0 + 0.1 = 0.1.
    expected = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-15)


def test_mixing_a_stochastic_base(build: Build) -> None:
    probs = build({"kind": "epsilon", "epsilon": 0.5, "base": STOCHASTIC}).probabilities(BATCH)
    # Base row 1 is (allow 0.5, challenge 0, block 0.5): 0.5 · base + 0.5 / 3.
    np.testing.assert_allclose(probs[1], [0.25 + 1 / 6, 1 / 6, 0.25 + 1 / 6], rtol=0, atol=1e-15)


@pytest.mark.parametrize(("epsilon", "expected"), [(0.0, [0.0, 1.0, 0.0]), (1.0, [1 / 3, 1 / 3, 1 / 3])])
def test_extremes(build: Build, epsilon: float, expected: list[float]) -> None:
    probs = build({"kind": "epsilon", "epsilon": epsilon, "base": THRESHOLD}).probabilities(BATCH)
    np.testing.assert_allclose(probs[1], expected, rtol=0, atol=1e-15)


def test_coded_keeps_the_base_codes(build: Build) -> None:
    coded = build({"kind": "epsilon", "epsilon": 0.3, "base": THRESHOLD}).coded(BATCH)
    assert coded is not None
    np.testing.assert_array_equal(coded.codes, [0, 1, 2])
    np.testing.assert_allclose(coded.table, 0.7 * np.eye(3) + 0.1, rtol=0, atol=1e-15)


def test_uncoded_base(build: Build) -> None:
    assert build({"kind": "epsilon", "epsilon": 0.3, "base": STOCHASTIC}).coded(BATCH) is None


def test_declares_its_capabilities(build: Build) -> None:
    policy = build({"kind": "epsilon", "epsilon": 0.0, "base": THRESHOLD})
    assert (policy.columns, policy.deterministic, policy.logging) == (frozenset({"fraud_score"}), False, False)


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ({"epsilon": 1.2, "base": THRESHOLD}, InvalidConfig, "policies[0].epsilon: must be <= 1, got 1.2"),
        ({"epsilon": -0.1, "base": THRESHOLD}, InvalidConfig, "policies[0].epsilon: must be >= 0, got -0.1"),
        ({"epsilon": 0.1}, InvalidConfig, "policies[0].base: missing; policy kind 'epsilon' requires it"),
        (
            {"epsilon": 0.1, "base": {"kind": "thresold"}},
            UnknownName,
            "policies[0].base.kind: unknown policy kind 'thresold'",
        ),
        (
            {"epsilon": 0.1, "base": {**THRESHOLD, "block_above": 0.4}},
            InvalidConfig,
            "policies[0].base.block_above: must be > challenge_above (0.5), got 0.4",
        ),
    ],
)
def test_invalid_config(build: Build, spec: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        build({"kind": "epsilon", **spec})
