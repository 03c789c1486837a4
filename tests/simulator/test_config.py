"""Issue #11 (ops): `[sweep]` and `[review]` are validated with the config, at load, with TOML paths;
derived configs are validated again; every example config loads; imports have no cycle."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.config import derive, load_config, parse_config
from simulator.config_tables import Objective, ReviewConfig, SweepConfig
from simulator.errors import InvalidConfig

ROOT = Path(__file__).resolve().parents[2]
POLICY = {"name": "stricter", "kind": "threshold", "score": "fraud_score", "block_above": 0.3}


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_example_config_loads_with_typed_tables(path: Path) -> None:
    config = load_config(path)
    assert config.sweep is None or isinstance(config.sweep, SweepConfig)
    assert config.review is None or isinstance(config.review, ReviewConfig)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[review]\ncandidate = "stricter"\n[[review.guardrails]]\nmetric = "net_value"\nmin_delta = 0\nmin_rowz = 5\n',
         "review.guardrails[0].min_rowz: unknown key 'min_rowz'; known: max_increase, max_relative_increase, metric, "
         "min_delta, min_ess, min_relative_delta, min_rows, scope (did you mean 'min_rows'?)"),
        ('[review]\ncandidate = "stricter"\n[[review.guardrails]]\nmetric = "net_valu"\nmin_delta = 0\n',
         "review.guardrails[0].metric: unknown metric 'net_valu'"),
        ('[review]\ncandidate = "strict"\n', "review.candidate: unknown policy 'strict'; known: stricter"),
        ('[sweep]\nscore = "fraud_score"\nblok_above = [0.5]\n',
         "sweep.blok_above: unknown [sweep] key 'blok_above'"),
        ('[sweep]\nblock_above = [0.5]\n', "sweep.score: a threshold sweep needs the score column"),
        ('[sweep]\nkind = "rules"\n', "sweep.grid: a sweep of kind 'rules' needs a [sweep.grid] table"),
        ('[sweep]\nscore = "fraud_score"\nblock_above = [0.5]\nobjective = "net_value; fraud_rate_bps<12"\n',
         "sweep.objective: clause 2 'fraud_rate_bps<12': use <= for a maximum"),
        ('[sweep]\nscore = "fraud_score"\nblock_above = [0.5]\n[sweep.objective]\nmaximise = "net_value"\n',
         "sweep.objective.maximise: unknown key 'maximise'; known: constraints, maximize, min_rows, minimize "
         "(did you mean 'maximize'?)"),
    ],
)
def test_a_typo_in_sweep_or_review_fails_at_load_with_its_path(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('[[policies]]\nname = "stricter"\nkind = "threshold"\nscore = "fraud_score"\nblock_above = 0.3\n'
                    + toml)
    with pytest.raises(InvalidConfig, match=re.escape(f"{path}: ") + ".*" + re.escape(message)):
        load_config(path)


def test_the_candidate_cannot_be_the_baseline() -> None:
    table = {"policies": [POLICY], "baseline": {"policy": "stricter"}, "review": {"candidate": "stricter"}}
    with pytest.raises(InvalidConfig, match=re.escape("review.candidate: 'stricter' is the baseline")):
        parse_config(table, "review.toml")


def test_a_banded_sweep_by_fails_at_load() -> None:
    table = {"segments": {"by": [["amount"]], "bands": {"amount": {"edges": [0, 50]}}},
             "sweep": {"score": "fraud_score", "block_above": [0.5], "by": "amount"}}
    with pytest.raises(InvalidConfig, match=re.escape("sweep.by: 'amount' is banded")):
        parse_config(table)


def test_the_objective_string_and_table_validate_alike() -> None:
    text = parse_config({"sweep": {"score": "fraud_score", "block_above": [0.5],
                                   "objective": "net_value; fraud_rate_bps<=12 every_segment"}})
    table = parse_config({"sweep": {"score": "fraud_score", "block_above": [0.5], "objective": {
        "maximize": "net_value", "constraints": [{"metric": "fraud_rate_bps", "max": 12, "scope": "every_segment"}]}}})
    assert isinstance(text.sweep.objective, Objective)  # type: ignore[union-attr]
    assert text.sweep == table.sweep  # type: ignore[union-attr]


def test_derived_configs_are_validated_again() -> None:
    config = parse_config({"policies": [POLICY], "estimation": {"seed": 1}})
    seeded = derive(config, {"estimation": {"seed": 3}}, "--seed")
    assert seeded.estimation.seed == 3 and config.estimation.seed == 1
    assert seeded.estimation.confidence == config.estimation.confidence  # other keys of the table are kept
    with pytest.raises(InvalidConfig, match=re.escape("--confidence: estimation.confidence: must be < 1, got 2")):
        derive(config, {"estimation": {"confidence": 2}}, "--confidence")
    reviewed = parse_config({"policies": [POLICY], "review": {"candidate": "stricter"}})
    with pytest.raises(InvalidConfig, match=re.escape("derived: review.candidate: unknown policy 'stricter'")):
        derive(reviewed, {"policies": []}, "derived")  # the cross-table check runs on a derived config too


def test_derive_keeps_policy_parameters_and_sweep_keys() -> None:
    config = parse_config({"policies": [POLICY], "sweep": {"kind": "rules", "fallback": "allow", "grid": {"t": [0.3]},
                                                         "rules": [{"when": "fraud_score >= {t}", "action": "block"}]}})
    same = derive(config, {}, "copy")
    assert same == config


FIRST_IMPORTS = ["policies", "segments", "simulator.config", "simulator.config_tables", "simulator.cli",
                 "policies.registry", "segments.spec"]


@pytest.fixture(scope="module")
def fresh_interpreters() -> Iterator[dict[str, subprocess.Popen[str]]]:
    """One fresh interpreter per module importing it first, all started at once (each spends ~2 s importing
    polars and numpy; they do not depend on each other), waited for by the test that reads it."""
    started = {module: subprocess.Popen([sys.executable, "-c", f"import {module}"], cwd=ROOT, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for module in FIRST_IMPORTS}
    yield started
    for process in started.values():
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.mark.parametrize("module", FIRST_IMPORTS)
def test_each_package_imports_first_in_a_fresh_interpreter(
        module: str, fresh_interpreters: dict[str, subprocess.Popen[str]]) -> None:
    process = fresh_interpreters[module]
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr


def test_immature_labels_default_to_develop_and_take_three_modes() -> None:
    assert parse_config({}).data.immature_labels == "develop"
    for mode in ("develop", "exclude", "include"):
        assert parse_config({"data": {"immature_labels": mode}}).data.immature_labels == mode
    with pytest.raises(InvalidConfig, match=r"data\.immature_labels.*'develop', 'exclude' or 'include'"):
        parse_config({"data": {"immature_labels": "drop"}})
