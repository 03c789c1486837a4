"""`python`: importing the user's class, its declared capabilities, and checking its output."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import polars as pl
import pytest

from simulator.errors import InvalidConfig, PolicysimError, UnknownName
from tests.policies.conftest import Build

USER = "tests.policies.example_user_policy"
BROKEN = "tests.policies.broken_user_policies"
BATCH = pl.DataFrame({"amount": [499.99, 500.0, 12.0], "auth_score": [0.9, 0.2, 1.0]})


def python(object_path: str, **params: Any) -> dict[str, Any]:
    """A `python` policy table."""
    return {"kind": "python", "object": object_path, "params": params}


def test_user_class_known_answer(build: Build) -> None:
    policy = build(python(f"{USER}:ChallengeHighAmounts", above=500.0))
    # amount >= 500 challenges: 499.99 allows, 500.0 (on the threshold) challenges, 12 allows.
    np.testing.assert_array_equal(policy.probabilities(BATCH), [[1, 0, 0], [0, 1, 0], [1, 0, 0]])


def test_capabilities_come_from_the_class(build: Build) -> None:
    deterministic = build(python(f"{USER}:ChallengeHighAmounts"))
    stochastic = build(python(f"{USER}:BlockShareByAuthScore"))
    assert deterministic.columns == frozenset({"amount"})
    assert (deterministic.deterministic, deterministic.logging) == (True, False)
    assert (stochastic.columns, stochastic.deterministic) == (frozenset({"auth_score"}), False)


def test_coded_is_delegated_when_the_class_has_it(build: Build) -> None:
    coded = build(python(f"{USER}:ChallengeHighAmounts")).coded(BATCH)
    assert coded is not None
    np.testing.assert_array_equal(coded.codes, [0, 1, 0])
    assert build(python(f"{USER}:BlockShareByAuthScore")).coded(BATCH) is None


def test_receives_the_action_set(build: Build) -> None:
    actions = ("block", "allow")
    probs = build(python(f"{USER}:BlockShareByAuthScore"), actions=actions).probabilities(BATCH)
    np.testing.assert_allclose(probs, [[0.1, 0.9], [0.8, 0.2], [0.0, 1.0]], rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    ("object_path", "message"),
    [
        (
            "no_such_package.policies:Mine",
            "policies[0].object: cannot import module 'no_such_package.policies' (No module named 'no_such_package')",
        ),
        (
            f"{USER}:ChallengeHighAmount",
            f"policies[0].object: module '{USER}' has no attribute 'ChallengeHighAmount' "
            "(did you mean 'ChallengeHighAmounts'?)",
        ),
        (f"{USER}.ChallengeHighAmounts", "policies[0].object: must be 'package.module:ClassName', got"),
    ],
)
def test_import_errors(build: Build, object_path: str, message: str) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build(python(object_path))


def test_parameters_the_class_rejects(build: Build) -> None:
    message = f"policies[0].params: {USER}:ChallengeHighAmounts rejected its parameters: "
    with pytest.raises(InvalidConfig, match=re.escape(message) + ".*" + re.escape("'abve'")):
        build(python(f"{USER}:ChallengeHighAmounts", abve=10.0))


def test_the_class_refusing_the_action_set(build: Build) -> None:
    message = "rejected its parameters: needs actions 'allow' and 'challenge'"
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build(python(f"{USER}:ChallengeHighAmounts"), actions=("allow", "block"))


def test_actions_cannot_be_a_parameter(build: Build) -> None:
    message = "policies[0].params.actions: set from the configured action set"
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build(python(f"{USER}:ChallengeHighAmounts", actions=["allow"]))


def test_columns_are_required(build: Build) -> None:
    message = (
        f"policies[0].object: {BROKEN}:NoColumns must have `columns`, a collection of the column names it reads, "
        "got None"
    )
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build(python(f"{BROKEN}:NoColumns"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("NoProbabilities", "NoProbabilities must have a probabilities(batch) method"),
        ("VagueDeterministic", "VagueDeterministic: `deterministic` must be true or false, got 'yes'"),
    ],
)
def test_declared_capabilities_are_checked(build: Build, name: str, message: str) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(f"policies[0].object: {BROKEN}:{message}")):
        build(python(f"{BROKEN}:{name}"))


def test_unknown_declared_column(build: Build) -> None:
    with pytest.raises(UnknownName, match=re.escape("policies[0].object: unknown column 'device_fingerprint'")):
        build(python(f"{BROKEN}:ReadsUnknownColumn"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("WrongShape", "returned shape (3, 2), expected (3, 3)"),
        ("HasNaN", "1 rows have non-finite values, e.g. row 1: [nan, "),
        ("Negative", "3 rows have negative values, e.g. row 0: [1.5, -0.5, 0.0]"),
        ("NotSummingToOne", "3 rows do not sum to 1 (tolerance 1e-9), e.g. row 0: [0.3, 0.3, 0.3]"),
        ("FalselyDeterministic", "3 rows are not one-hot, but the policy is declared deterministic"),
    ],
)
def test_bad_probabilities_name_the_class(build: Build, name: str, message: str) -> None:
    policy = build(python(f"{BROKEN}:{name}"))
    with pytest.raises(PolicysimError, match=re.escape(f"policies[0] ({BROKEN}:{name}).probabilities: {message}")):
        policy.probabilities(BATCH)


def test_bad_codes_name_the_class(build: Build) -> None:
    policy = build(python(f"{BROKEN}:BadCodes"))
    message = f"policies[0] ({BROKEN}:BadCodes).coded: codes must be in [0, 1), got 5..5"
    with pytest.raises(PolicysimError, match=re.escape(message)):
        policy.coded(BATCH)
