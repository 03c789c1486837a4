"""Shared fixtures: generated logs small enough for fast tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.synthetic.generate import GenerateSpec, generate


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40k-row generated log (2 files) with its ground truth, shared by the session."""
    out = tmp_path_factory.mktemp("generated")
    generate(GenerateSpec(rows=40_000, files=2, seed=11, exploration=0.2), out)
    return out
