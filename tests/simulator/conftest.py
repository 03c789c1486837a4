"""Shared fixtures: generated logs small enough for fast tests, and the CLI runs several tests only read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.synthetic.generate import GenerateSpec, generate

THRESHOLDS = Path(__file__).parents[2] / "configs" / "thresholds.toml"


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40k-row generated log (2 files) with its ground truth, shared by the session."""
    out = tmp_path_factory.mktemp("generated")
    generate(GenerateSpec(rows=40_000, files=2, seed=11, exploration=0.2), out)
    return out


@dataclass(frozen=True)
class CliRun:
    """A finished `policysim run`: its exit code, what it printed and the folder it wrote."""

    exit_code: int
    output: str
    out: Path


@pytest.fixture(scope="session")
def thresholds_cli_run(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    """`policysim run configs/thresholds.toml --engine local` on the generated log at 80 columns, not quiet.

    One end-to-end run (with its 20-figure report) for the tests that only read what it printed and
    wrote; a test that needs other flags or its own folder runs its own.
    """
    out = tmp_path_factory.mktemp("thresholds_cli") / "out"
    result = CliRunner().invoke(app, ["run", str(THRESHOLDS), "--data", str(generated / "transactions"),
                                      "--out", str(out), "--engine", "local"], env={"COLUMNS": "80"})
    return CliRun(result.exit_code, result.output, out)
