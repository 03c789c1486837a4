"""The public API of `simulator` (SPEC §10): names, import order, docstrings, diagnostics, sweep_frame."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import simulator
from simulator import InvalidData, diagnostics, parse_config, run_frame, sweep, sweep_frame
from tests.factories import make_transactions, write_parquet
from tests.conftest import LOCAL

EXAMPLE_PENDING: set[str] = set()


def test_every_public_name_resolves() -> None:
    for name in simulator.__all__:
        assert getattr(simulator, name) is not None, name


def test_functions_keep_their_names_whatever_the_import_order() -> None:
    # the modules that define `sweep`, `review` and `generate` are named for their package
    # (simulator.workflows.sweep, ...), so importing them first cannot shadow the functions.
    code = (
        "import simulator.cli, simulator.workflows.review, simulator.synthetic.generate\n"
        "from simulator import sweep, review, generate\n"
        "import simulator\n"
        "assert all(inspect.isfunction(f) for f in (sweep, review, generate, simulator.sweep)), (sweep, review)\n"
        "from simulator.workflows.sweep import SweepResult\n"
    )
    subprocess.run([sys.executable, "-c", "import inspect\n" + code], check=True, cwd=Path(__file__).parents[3])


def test_importing_the_package_loads_no_plotting_library_nor_ray() -> None:
    code = (
        "import sys, simulator, simulator.cli\n"
        "loaded = [m for m in ('matplotlib', 'plotly', 'ray') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])


def test_every_public_function_has_a_docstring_example() -> None:
    functions = [name for name in simulator.__all__ if inspect.isfunction(getattr(simulator, name, None))]
    missing = [name for name in functions if "Example" not in (getattr(simulator, name).__doc__ or "")]
    assert sorted(missing) == sorted(EXAMPLE_PENDING)


def _config(**extra: object) -> dict[str, object]:
    return {
        "segments": {"by": [["card_country"], ["card_funding"]]},
        "policies": [{"name": "stricter", "kind": "threshold", "score": "fraud_score",
                      "challenge_above": 0.3, "block_above": 0.6}],
    } | extra


def test_diagnostics_is_one_row_per_policy_and_segment_with_the_most_cautious_values() -> None:
    results = run_frame(parse_config(_config()), make_transactions(n=800, seed=5)).results
    diag = diagnostics(results)
    keys = results.select("policy", "segmentation", "segment").unique()
    assert diag.height == keys.height
    joined = results.join(diag, on=["policy", "segmentation", "segment"], suffix="_diag")
    assert (joined["rows"] <= joined["rows_diag"]).all()
    assert (joined["ess"].fill_nan(float("inf")) >= joined["ess_diag"]).all()
    assert (joined["max_weight"] <= joined["max_weight_diag"]).all()
    # every flag of every metric is in the segment's flag
    parts = joined.filter(pl.col("flag") != "").select(
        pl.col("flag").str.split(";").alias("part"), "flag_diag").explode("part")
    assert all(part in flag.split(";") for part, flag in parts.iter_rows())
    logged = diagnostics(results, metric="auth_rate").filter(pl.col("policy") == "logged")
    assert (logged["ess"] == logged["rows"].cast(pl.Float64)).all()  # weights of exactly 1
    assert (logged["max_weight"] == 1.0).all()


def test_diagnostics_of_one_metric() -> None:
    results = run_frame(parse_config(_config()), make_transactions(n=800, seed=5)).results
    one = diagnostics(results, "net_value")
    expected = results.filter(pl.col("metric") == "net_value").select(
        "policy", "segmentation", "segment", "rows", "ess", "max_weight", "unsupported_mass", "flag")
    assert one.equals(expected.cast(one.schema))  # type: ignore[arg-type]


def test_sweep_frame_equals_sweep_on_the_written_dataset(tmp_path: Path) -> None:
    frame = make_transactions(n=1500, seed=9)
    config = parse_config(_config(sweep={"score": "fraud_score", "block_above": [0.5, 0.7, 0.9]}))
    on_path = sweep(config, write_parquet(frame, tmp_path / "data.parquet"), execution=LOCAL)
    in_memory = sweep_frame(config, frame)
    assert in_memory.table.equals(on_path.table)
    assert in_memory.points.equals(on_path.points)


def test_sweep_frame_validates_like_sweep() -> None:
    frame = make_transactions(n=200, seed=9).with_columns(pl.lit(0.0).alias("propensity"))
    config = parse_config(_config(sweep={"score": "fraud_score", "block_above": [0.5]}))
    with pytest.raises(InvalidData, match="propensity"):
        sweep_frame(config, frame)
