"""Every registered policy kind honours the policy protocol (STYLE §8).

Parametrized over the registry: a new kind fails here until it adds an example
to EXAMPLES. EXTRA_EXAMPLES cover the compositions (rules and epsilon over
coded and uncoded policies).
"""

from __future__ import annotations

import importlib
import pickle
import textwrap
import tomllib
from typing import Any

import numpy as np
import polars as pl
import pytest

from policies import Policy, known_kinds
from simulator.schema import DEFAULT_ACTIONS, logging_prob_column
from tests.policies.conftest import Build

USER = "tests.policies.example_user_policy"
THRESHOLD = {"kind": "threshold", "score": "fraud_score", "challenge_above": 0.5, "block_above": 0.8}
EXAMPLES: dict[str, dict[str, Any]] = {
    "logged": {"kind": "logged"},
    "production": {"kind": "production"},
    "threshold": THRESHOLD,
    "segment_threshold": {
        "kind": "segment_threshold",
        "score": "fraud_score",
        "column": "card_country",
        "default": {"challenge_above": 0.5, "block_above": 0.8},
        "thresholds": {"BR": {"challenge_above": 0.3, "block_above": 0.6}, "FR": {"block_above": 0.9}},
    },
    "rules": {
        "kind": "rules",
        "rules": [
            {"when": "fraud_score >= 0.9", "action": "block"},
            {"when": "amount > 200 AND card_country IN ('BR', 'US')", "action": "challenge"},
            {"when": "channel = 'moto' OR mcc = '7995'", "action": "challenge"},
        ],
        "fallback": {"kind": "threshold", "score": "fraud_score", "block_above": 0.7},
    },
    "epsilon": {"kind": "epsilon", "epsilon": 0.2, "base": THRESHOLD},
    "python": {"kind": "python", "object": f"{USER}:ChallengeHighAmounts", "params": {"above": 150.0}},
}
STOCHASTIC_USER = {"kind": "python", "object": f"{USER}:BlockShareByAuthScore"}
EXTRA_EXAMPLES: dict[str, dict[str, Any]] = {
    "rules_action_fallback": {
        "kind": "rules",
        "rules": [{"when": "amount < 20", "action": "allow"}],
        "fallback": "challenge",
    },
    "rules_uncoded_fallback": {
        "kind": "rules",
        "rules": [{"when": "TRUE AND amount > 100", "action": "block"}],
        "fallback": STOCHASTIC_USER,
    },
    "epsilon_over_uncoded": {"kind": "epsilon", "epsilon": 0.1, "base": STOCHASTIC_USER},
    "epsilon_over_rules": {"kind": "epsilon", "epsilon": 0.5, "base": EXAMPLES["rules"]},
    "python_stochastic": STOCHASTIC_USER,
}
CASES = {**{kind: EXAMPLES.get(kind) for kind in known_kinds()}, **EXTRA_EXAMPLES}


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> str:
    """The name of one example: a registered kind or an extra composition."""
    return str(request.param)


@pytest.fixture
def policy(case: str, build: Build) -> Policy:
    spec = CASES[case]
    if spec is None:
        pytest.fail(f"policy kind {case!r} has no example in EXAMPLES")
    return build(spec)


def test_every_kind_has_an_example() -> None:
    assert set(known_kinds()) <= set(EXAMPLES)


@pytest.mark.parametrize("kind", known_kinds())
def test_docstring_example_builds(kind: str, build: Build) -> None:
    # Each kind's module docstring shows a [[policies]] table; it must stay valid.
    doc = importlib.import_module(f"policies.{kind}").__doc__ or ""
    assert "Example::" in doc, f"policies/{kind}.py has no example"
    example = tomllib.loads(textwrap.dedent(doc.split("Example::", 1)[1]))
    [table] = example["policies"]
    assert table.pop("kind") == kind
    build({"kind": kind, **{key: value for key, value in table.items() if key != "name"}})


def test_shape_sums_and_values(policy: Policy, frame: pl.DataFrame) -> None:
    probs = policy.probabilities(frame)
    assert probs.shape == (frame.height, len(DEFAULT_ACTIONS))
    assert probs.dtype == np.float64
    assert not np.isnan(probs).any()
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_same_batch_same_array(policy: Policy, frame: pl.DataFrame) -> None:
    np.testing.assert_array_equal(policy.probabilities(frame), policy.probabilities(frame))


def test_split_then_concat_equals_whole(policy: Policy, frame: pl.DataFrame) -> None:
    parts = [policy.probabilities(frame.slice(offset, 137)) for offset in range(0, frame.height, 137)]
    np.testing.assert_array_equal(np.vstack(parts), policy.probabilities(frame))


def test_row_order_does_not_matter(policy: Policy, frame: pl.DataFrame) -> None:
    order = np.random.default_rng(0).permutation(frame.height)
    np.testing.assert_array_equal(policy.probabilities(frame[order]), policy.probabilities(frame)[order])


def test_empty_batch(policy: Policy, frame: pl.DataFrame) -> None:
    assert policy.probabilities(frame.head(0)).shape == (0, len(DEFAULT_ACTIONS))


def test_pickle_round_trip(policy: Policy, frame: pl.DataFrame) -> None:
    restored = pickle.loads(pickle.dumps(policy))
    np.testing.assert_array_equal(restored.probabilities(frame), policy.probabilities(frame))
    assert restored.columns == policy.columns


def test_runs_on_declared_columns_only(policy: Policy, frame: pl.DataFrame) -> None:
    logging_probs = {logging_prob_column(action) for action in DEFAULT_ACTIONS} if policy.logging else set()
    narrow = frame.select(sorted(policy.columns | logging_probs))
    np.testing.assert_array_equal(policy.probabilities(narrow), policy.probabilities(frame))


def test_coded_table_matches_probabilities(policy: Policy, frame: pl.DataFrame) -> None:
    coded = policy.coded(frame)
    if coded is None:
        pytest.skip("not finitely coded")
    assert coded.codes.shape == (frame.height,) and coded.codes.dtype == np.int32
    assert 0 <= coded.codes.min() and coded.codes.max() < len(coded.table)
    np.testing.assert_allclose(coded.table.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(coded.table[coded.codes], policy.probabilities(frame))


def test_coded_table_does_not_depend_on_the_batch(policy: Policy, frame: pl.DataFrame) -> None:
    # The engine reads the table once, from an empty batch, and uses it for every shard.
    coded, empty = policy.coded(frame), policy.coded(frame.head(0))
    if coded is None:
        pytest.skip("not finitely coded")
    assert empty is not None and empty.codes.shape == (0,)
    np.testing.assert_array_equal(empty.table, coded.table)
    np.testing.assert_array_equal(policy.coded(frame.slice(0, 7)).table, coded.table)  # type: ignore[union-attr]


def test_deterministic_is_one_hot(policy: Policy, frame: pl.DataFrame) -> None:
    if not policy.deterministic:
        pytest.skip("not deterministic")
    probs = policy.probabilities(frame)
    assert set(np.unique(probs)) <= {0.0, 1.0}
    assert (probs.max(axis=1) == 1.0).all()


def test_logging_only_for_logged(case: str, policy: Policy) -> None:
    assert policy.logging == (case == "logged")
