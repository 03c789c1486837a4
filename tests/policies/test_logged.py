"""`logged`: the logging policy's distribution from the `logging_prob_<action>` columns."""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest

from simulator.errors import InvalidConfig, PolicysimError
from tests.policies.conftest import Build

BATCH = pl.DataFrame(
    {
        "logging_prob_allow": [0.9, 0.05],
        "logging_prob_challenge": [0.05, 0.05],
        "logging_prob_block": [0.05, 0.9],
    }
)


def test_reads_the_logging_probabilities_in_action_order(build: Build) -> None:
    probs = build({"kind": "logged"}, actions=("block", "allow", "challenge")).probabilities(BATCH)
    np.testing.assert_array_equal(probs, [[0.05, 0.9, 0.05], [0.9, 0.05, 0.05]])


def test_declares_its_capabilities(build: Build) -> None:
    policy = build({"kind": "logged"})
    assert (policy.columns, policy.deterministic, policy.logging) == (frozenset(), False, True)
    assert policy.coded(BATCH) is None


def test_missing_logging_probabilities(build: Build) -> None:
    message = (
        "policies[0]: the logged policy's full distribution needs the columns logging_prob_allow, "
        "logging_prob_challenge, logging_prob_block; the data lacks logging_prob_block"
    )
    with pytest.raises(PolicysimError, match=re.escape(message)):
        build({"kind": "logged"}).probabilities(BATCH.drop("logging_prob_block"))


def test_null_logging_probabilities(build: Build) -> None:
    batch = BATCH.with_columns(logging_prob_block=pl.Series([0.05, None]))
    message = "policies[0]: 1 rows with a null or NaN in logging_prob_block, e.g. row 1"
    with pytest.raises(PolicysimError, match=re.escape(message)):
        build({"kind": "logged"}).probabilities(batch)


def test_takes_no_parameters(build: Build) -> None:
    message = "policies[0].score: unknown parameter 'score' for policy kind 'logged'"
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build({"kind": "logged", "score": "fraud_score"})
