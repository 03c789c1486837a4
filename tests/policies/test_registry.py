"""The registry: kinds by name, config validation and the messages it gives."""

from __future__ import annotations

import re

import pytest

import policies.registry as registry
from policies import PolicyContext, PolicyParams, build_policy, known_kinds, register_policy
from policies.threshold import ThresholdPolicy
from simulator.errors import InvalidConfig, UnknownName
from tests.policies.conftest import Build

KNOWN = "epsilon, logged, production, python, rules, segment_threshold, threshold"


def test_known_kinds() -> None:
    assert known_kinds() == tuple(KNOWN.split(", "))


def test_unknown_kind_suggests_the_closest() -> None:
    message = f"policies[0].kind: unknown policy kind 'treshold'; known: {KNOWN} (did you mean 'threshold'?)"
    with pytest.raises(UnknownName, match=re.escape(message)):
        build_policy({"kind": "treshold"}, PolicyContext(actions=("allow",), columns=None), where="policies[0]")


def test_missing_kind(build: Build) -> None:
    with pytest.raises(InvalidConfig, match=re.escape(f"policies[0]: missing 'kind'; known: {KNOWN}")):
        build({"score": "fraud_score"})


def test_not_a_table(build: Build) -> None:
    message = "policies[0]: must be a policy table with a 'kind', got 'threshold'"
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build("threshold")  # type: ignore[arg-type]


def test_missing_parameter(build: Build) -> None:
    message = "policies[0].score: missing; policy kind 'threshold' requires it"
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build({"kind": "threshold", "block_above": 0.8})


def test_unknown_parameter_suggests_the_closest(build: Build) -> None:
    message = (
        "policies[0].blok_above: unknown parameter 'blok_above' for policy kind 'threshold'; "
        "known: above, below, block_above, challenge_above, score (did you mean 'block_above'?)"
    )
    with pytest.raises(InvalidConfig, match=re.escape(message)):
        build({"kind": "threshold", "score": "fraud_score", "blok_above": 0.8})


def test_name_is_not_a_parameter(build: Build) -> None:
    # The caller strips `name`; inside nested tables it has no meaning.
    with pytest.raises(InvalidConfig, match=re.escape("unknown parameter 'name'")):
        build({"kind": "logged", "name": "status_quo"})


def test_one_line_per_error(build: Build) -> None:
    with pytest.raises(InvalidConfig) as raised:
        build({"kind": "threshold", "challenge_above": 2.0, "block_above": -1})
    assert str(raised.value).splitlines() == [
        "policies[0].challenge_above: must be <= 1, got 2.0",
        "policies[0].block_above: must be >= 0, got -1",
        "policies[0].score: missing; policy kind 'threshold' requires it",
    ]


def test_nested_paths(build: Build) -> None:
    base = {
        "kind": "segment_threshold",
        "score": "fraud_score",
        "column": "card_country",
        "default": {"block_above": 0.9},
        "thresholds": {"FR": {"block_above": 1.5}, "a b": {"challenge_above": 0.1, "extra": 1}},
    }
    spec = {"kind": "epsilon", "epsilon": 0.1, "base": base}
    with pytest.raises(InvalidConfig) as raised:
        build(spec)
    assert str(raised.value).splitlines() == [
        "policies[0].base.thresholds.FR.block_above: must be <= 1, got 1.5",
        "policies[0].base.thresholds.\"a b\".extra: unknown parameter 'extra' for policy kind 'segment_threshold'; "
        "known: above, below, block_above, challenge_above",
    ]


def test_registering_a_kind_twice_raises() -> None:
    with pytest.raises(ValueError, match=re.escape("policy kind 'threshold' is already registered")):
        register_policy("threshold", params=PolicyParams)(lambda params, context, *, where: None)


def test_a_new_kind_is_built_through_its_params(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))

    class Params(PolicyParams):
        block_above: float

    @register_policy("always_fraud_score", params=Params)
    def factory(params: Params, context: PolicyContext, *, where: str) -> ThresholdPolicy:
        return ThresholdPolicy("fraud_score", None, params.block_above, context.actions, where)

    context = PolicyContext(actions=("allow", "challenge", "block"), columns=None)
    policy = build_policy({"kind": "always_fraud_score", "block_above": 0.5}, context, where="policies[3]")
    assert policy == ThresholdPolicy("fraud_score", None, 0.5, context.actions, "policies[3]")
    assert "always_fraud_score" in known_kinds()
