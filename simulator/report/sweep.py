"""What `policysim sweep` writes: the grid's results, the frontier, its plots and the recommendation.

- `sweep.parquet`: one row per grid point × segment × metric (SPEC §9 columns, the point and its parameters);
- `frontier.parquet`: the Pareto-efficient points (net value and approval rate against fraud rate), per segment;
- `frontier.png` and `frontier.html` (self-contained, interactive): the overall frontier with the baseline, the
  recommended point and its reason, the objective's constraints; the page also tables the frontier points;
- `recommendation.json` (with an objective): the chosen point, why, and how often the bootstrap chooses it;
- `by_segment.parquet`, `by_segment_results.parquet` (with `[sweep] by`): per-value choices and the combined policy;
- `summary.json`: the config, the data fingerprint, the grid, counts and timings.

The folder is written whole: built beside `--out` and swapped in (`simulator.report.folders`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from simulator.config import RunConfig
from simulator.decide.frontier import frontiers
from simulator.report.frontier_plots import frontier_figure, frontier_html, write_frontier_png
from simulator.report.files import write_json, write_parquet, write_text
from simulator.report.folders import staged_folder
from simulator.workflows.run import label_summary, provenance
from simulator.workflows.sweep import SweepResult
from segments.labels import ALL


def recommendation_payload(result: SweepResult) -> dict[str, Any] | None:
    """The recommendation as plain values, with its bootstrap share and the runners-up."""
    if result.choice is None:
        return None
    payload = result.choice.recommendation.as_dict()
    payload["baseline_policy"] = result.plan.baseline  # the policy every delta (and `baseline`, its value) is against
    payload["bootstrap_share"] = result.choice.share()
    frequency = result.choice.frequency
    payload["bootstrap_choices"] = None if frequency is None else frequency.head(10).to_dicts()
    if result.by_segment is not None:
        payload["by_segment_policy"] = result.by_segment.policy
        if result.by_segment.holdout is not None:  # by_segment_results.parquet holds the held-out rows' numbers
            payload["by_segment_holdout"] = result.by_segment.holdout
    return payload


def sweep_summary(result: SweepResult, config: RunConfig, path: Path, config_source: str) -> dict[str, Any]:
    """What `summary.json` records for a sweep."""
    plan = result.plan
    return {
        **provenance(config, path, config_source, result.data, result.source),
        "as_of": plan.as_of.isoformat(),
        "label_maturity_days": plan.label_maturity_days,
        "labels": label_summary(plan),
        "grid": {"points": result.points.height, "skipped": result.skipped, "parameters": result.parameters,
                 "evaluation": "binned (one pass, prefix sums over score bins)" if result.binned else "one policy per point"},
        "rows": result.stats.rows,
        "baseline": plan.baseline,
        "estimator": config.estimation.estimator,
        "bootstrap": config.estimation.bootstrap,
        "recommendation": recommendation_payload(result),
        "engine": result.engine,
        "timings": result.timings,
    }


def _with_thresholds(table: pl.DataFrame) -> pl.DataFrame:
    """Frontier pictures label points by thresholds; grids over other parameters have none."""
    missing = [c for c in ("challenge_above", "block_above") if c not in table.columns]
    return table.with_columns([pl.lit(None, pl.Float64).alias(c) for c in missing])


def write_sweep_outputs(result: SweepResult, config: RunConfig, path: Path, config_source: str, out_dir: Path, *,
                        overwrite: bool = False) -> list[Path]:
    """Every sweep output: the folder `out_dir`, new or empty unless `overwrite`, written whole; the paths written."""
    with staged_folder(out_dir, overwrite=overwrite) as folder:
        written = _write_sweep_files(result, config, path, config_source, folder)
    return [out_dir / p.name for p in written]


def _write_sweep_files(result: SweepResult, config: RunConfig, path: Path, config_source: str, out_dir: Path) -> list[Path]:
    """Write every sweep output file into `out_dir`."""
    table = _with_thresholds(result.table)
    frontier = frontiers(table)
    written = [write_parquet(result.table, out_dir / "sweep.parquet"), write_parquet(frontier, out_dir / "frontier.parquet")]
    figure = frontier_figure(table, frontier, segment=ALL, choice=result.choice)
    written.append(write_frontier_png(figure, out_dir / "frontier.png"))
    written.append(write_text(frontier_html(table, frontier, segment=ALL, choice=result.choice), out_dir / "frontier.html"))
    payload = recommendation_payload(result)
    if payload is not None:
        written.append(write_json(payload, out_dir / "recommendation.json"))
    if result.by_segment is not None:
        written.append(write_parquet(result.by_segment.choices, out_dir / "by_segment.parquet"))
        written.append(write_parquet(result.by_segment.results, out_dir / "by_segment_results.parquet"))
    written.append(write_json(sweep_summary(result, config, path, config_source), out_dir / "summary.json"))
    return written
