"""Shared fixtures of the policy tests: a factory frame and a builder with a known context."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl
import pytest

from policies import Policy, PolicyContext, build_policy
from simulator.schema import DEFAULT_ACTIONS
from tests.factories import make_transactions

Build = Callable[..., Policy]


@pytest.fixture(scope="session")
def frame() -> pl.DataFrame:
    """500 valid logged transactions with every SPEC §2 column."""
    return make_transactions(n=500, seed=3)


@pytest.fixture
def build(frame: pl.DataFrame) -> Build:
    """`build(spec, actions=..., columns=...)`: the policy a table describes, at `policies[0]`.

    Columns default to the factory frame's, so unknown columns are caught at build time.
    """

    def build_(
        spec: Mapping[str, Any],
        *,
        actions: tuple[str, ...] = DEFAULT_ACTIONS,
        columns: frozenset[str] | None = frozenset(frame.columns),
    ) -> Policy:
        return build_policy(spec, PolicyContext(actions=actions, columns=columns), where="policies[0]")

    return build_
