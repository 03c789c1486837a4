"""`sweep`: evaluate a grid of candidate policies on the full data in one pass (SPEC §8, §11 `[sweep]`).

A grid of `threshold` policies on one score is evaluated exactly as one binned
grid policy (`simulator.plan.grid`, `simulator.estimate.grid_totals`): one pass over the rows, then
every point's totals by prefix sums over score bins, so a grid of thousands of
points costs about as much as one policy. Grids over any other kind (`rules`,
`segment_threshold`, `python`...) fall back to evaluating each point as its own
policy in the same pass of `run`. Either way every point's numbers are those
`policysim run` gives for that policy alone.

Config::

    [sweep]
    kind = "threshold"                                   # the default
    score = "fraud_score"
    block_above = { start = 0.5, stop = 0.99, num = 50 } # a range, a list, or one number
    challenge_above = [0.2, 0.3, 0.4]                    # either may be left out
    by = "card_country"                                  # optional: best thresholds per value

    [sweep]                                              # any other kind: a grid over its parameters
    kind = "rules"
    rules = [{ when = "fraud_score >= {t} AND amount > 500", action = "block" }]
    fallback = "allow"
    [sweep.grid]
    t = [0.3, 0.5, 0.7]                                  # sets a parameter named t, and fills {t}
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError

from simulator.config import RunConfig, config_error, parse_config
from simulator.errors import InvalidConfig
from simulator.engine.shards import DEFAULT_SHARD_ROWS, Shard
from simulator.estimate.grid_results import finalize_grid
from simulator.decide.objective import Objective, objective_from_table, parse_objective
from simulator.decide.recommend import Choice, ReplicateChoices, policy_choices, recommend
from simulator.decide.segment_choice import BySegment, by_segment
from simulator.plan.grid import Range, ThresholdGrid, grid_plan, grid_values, threshold_grid
from simulator.data.load import scan_dataset
from simulator.plan.compiled import Plan, compile_plan
from simulator.engine.ray_engine import Cluster
from simulator.estimate.results import RESULT_SCHEMA
from simulator.workflows.run import Engine, RunResult, execute, run, validated_data
from simulator.stats.shard import Stats
from simulator.data.validate import DataSummary

Threshold = Range | list[float] | float | None


class SweepConfig(BaseModel):
    """The `[sweep]` table; keys besides these are the swept kind's parameters."""

    model_config = ConfigDict(frozen=True, extra="allow")

    kind: str = "threshold"
    score: str | None = None
    challenge_above: Threshold = None
    block_above: Threshold = None
    by: str | None = None
    grid: dict[str, Range | list[float | int | str] | float | int | str] | None = None
    objective: dict[str, Any] | str | None = None

    def objective_model(self) -> Objective | None:
        """The `objective` key as an `Objective`: a table, or the `--objective` string form."""
        if self.objective is None:
            return None
        if isinstance(self.objective, str):
            return parse_objective(self.objective, "sweep.objective")
        return objective_from_table(self.objective, "sweep.objective")

    @property
    def binned(self) -> bool:
        """A threshold grid: evaluated as one binned grid policy in one pass."""
        return self.kind == "threshold" and self.grid is None


def sweep_config(config: RunConfig) -> SweepConfig:
    """The validated `[sweep]` table of a config."""
    if config.sweep is None:
        raise InvalidConfig("no [sweep] table in the config: see SPEC §11 (score, block_above, challenge_above)")
    try:
        sweep = SweepConfig.model_validate(config.sweep)
    except ValidationError as error:
        raise config_error(error, "[sweep]") from None
    if sweep.binned and sweep.score is None:
        raise InvalidConfig("sweep.score: a threshold sweep needs the score column, e.g. score = \"fraud_score\"")
    if not sweep.binned and not sweep.grid:
        raise InvalidConfig(f"sweep.grid: a sweep of kind {sweep.kind!r} needs a [sweep.grid] table of parameter lists")
    return sweep


@dataclass(frozen=True)
class SweepResult:
    """Every grid point's results (`table`), and what they were computed from."""

    table: pl.DataFrame  # RESULT_SCHEMA + point + the swept parameters, one row per point × segment × metric
    points: pl.DataFrame  # one row per point: point, label, the swept parameters
    plan: Plan
    stats: Stats
    data: DataSummary | None
    binned: bool
    skipped: int = 0  # grid combinations left out (challenge_above >= block_above)
    timings: dict[str, float] = field(default_factory=dict)
    engine: str = "local"
    choice: Choice | None = None  # with an objective: the recommended point and its bootstrap stability
    by_segment: BySegment | None = None  # with `by` and an objective: the best point per value, combined

    @property
    def parameters(self) -> list[str]:
        return [c for c in self.points.columns if c not in ("point", "label")]


def sweep(
    config: RunConfig,
    data: Path | None = None,
    *,
    objective: Objective | None = None,
    engine: Engine = "ray",
    address: str | None = None,
    num_cpus: int | None = None,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    on_shard: Callable[[Shard], None] | None = None,
    on_plan: Callable[[list[Shard]], None] | None = None,
    on_cluster: Callable[[Cluster], None] | None = None,
) -> SweepResult:
    """Evaluate every point of the config's `[sweep]` grid against its baseline.

    The config's own `[[policies]]` are not evaluated (only the baseline, when it
    names one). With an `objective` (else the `[sweep] objective`), the result
    recommends a point and, with a bootstrap, says how often each replicate
    would recommend it; with `[sweep] by` it also picks the best point per value
    of that column and evaluates the combined `segment_threshold` policy.
    Engines as in `simulator.workflows.run.run`.

    Example::

        config = load_config(Path("configs/sweep.toml"))
        swept = sweep(config, Path("data/transactions"), engine="local",
                      objective=parse_objective("net_value; fraud_rate_bps<=45; min_rows=20000"))
        swept.table.filter(pl.col("segment") == "ALL")     # every grid point × metric
        swept.choice.recommendation.reason, swept.choice.share()
        frontiers(swept.table)                             # the Pareto-efficient points
    """
    settings = sweep_config(config)
    objective = objective or settings.objective_model()
    options = {"engine": engine, "address": address, "num_cpus": num_cpus, "shard_rows": shard_rows,
               "on_shard": on_shard, "on_plan": on_plan, "on_cluster": on_cluster}
    if settings.by is not None and objective is None:
        raise InvalidConfig("sweep.by: choosing thresholds per value needs an objective ([sweep] objective or --objective)")
    if not settings.binned:
        return _sweep_policies(config, settings, data, objective, **options)
    timings: dict[str, Any] = {}
    start = time.perf_counter()
    base = _with_segmentation(_baseline_only(config), settings.by)
    validated = validated_data(base, data)
    path, schema, summary = validated
    timings["validate_s"] = time.perf_counter() - start
    grid = _grid(settings, config.data.actions)
    lazy = scan_dataset(path, schema)
    plan = grid_plan(compile_plan(base, lazy, as_of=summary.as_of), grid, lazy.collect_schema().names())
    timings["plan_s"] = time.perf_counter() - start - timings["validate_s"]
    stats, engine_info = execute(plan, path, schema, timings, **options)  # type: ignore[arg-type]
    mark = time.perf_counter()
    choices = None if objective is None or not plan.bootstrap else ReplicateChoices(objective, grid.points, plan.bootstrap)
    table = finalize_grid(stats, plan, config.estimation, grid, on_block=choices)
    choice = None if objective is None else recommend(table, objective, choices)
    timings["finalize_s"] = time.perf_counter() - mark
    result = SweepResult(table=table, points=grid.frame(), plan=plan, stats=stats, data=summary, binned=True,
                         skipped=grid.skipped, timings=timings, engine=engine_info, choice=choice)
    if settings.by is not None and objective is not None and choice is not None:
        assert settings.score is not None
        combined = by_segment(table, config, settings.by, settings.score, objective, choice.recommendation, validated,
                              options)
        result = replace(result, by_segment=combined)
    timings["total_s"] = time.perf_counter() - start
    return result


def _with_segmentation(config: RunConfig, by: str | None) -> RunConfig:
    """The config with `[by]` among its segmentations (a sweep `by` chooses per segment of it)."""
    if by is None:
        return config
    if by in config.segments.bands:
        raise InvalidConfig(f"sweep.by: {by!r} is banded; per-value thresholds need a categorical column")
    if (by,) in config.segments.by or [by] in [list(s) for s in config.segments.by]:
        return config
    segments = config.segments.model_copy(update={"by": (*config.segments.by, (by,))})
    return config.model_copy(update={"segments": segments})


def _baseline_only(config: RunConfig) -> RunConfig:
    """The config with only the policy its baseline needs (the grid replaces `[[policies]]`)."""
    kept = tuple(p for p in config.policies if p.name == config.baseline.policy)
    return config.model_copy(update={"policies": kept})


def _grid(settings: SweepConfig, actions: tuple[str, ...]) -> ThresholdGrid:
    assert settings.score is not None  # checked by sweep_config
    return threshold_grid(settings.score, grid_values(settings.challenge_above, "sweep.challenge_above"),
                          grid_values(settings.block_above, "sweep.block_above"), actions, "sweep")


def _sweep_policies(config: RunConfig, settings: SweepConfig, data: Path | None, objective: Objective | None,
                    **options: Any) -> SweepResult:
    """Any other kind: every grid point is a policy of its own, evaluated in one pass of `run`."""
    points, tables = expand_grid(settings)
    names = [f"sweep[{i}]" for i in range(points.height)]
    policies = [p.model_dump() for p in _baseline_only(config).policies]
    policies += [{"name": name, **table} for name, table in zip(names, tables, strict=True)]
    table = config.model_dump(mode="python") | {"policies": policies, "sweep": None}
    result: RunResult = run(parse_config(table, "[sweep] grid"), data, **options)
    named = pl.DataFrame({"policy": names, "point": points["point"]})
    frame = result.results.join(named, on="policy", how="inner")
    parameters = [c for c in points.columns if c not in ("point", "label")]
    frame = frame.join(points.drop("label"), on="point", how="left").with_columns(
        pl.col("point").replace_strict(points["point"], points["label"], return_dtype=pl.String).alias("policy"))
    thresholds = [pl.lit(None, pl.Float64).alias(c) for c in ("challenge_above", "block_above") if c not in parameters]
    frame = frame.with_columns(thresholds).select(["point", *parameters, *[t.meta.output_name() for t in thresholds],
                                                   *RESULT_SCHEMA])
    choice = None
    if objective is not None:
        choices = policy_choices(result, names, objective, config.estimation.estimator) if result.plan.bootstrap else None
        choice = recommend(frame, objective, choices)
    return SweepResult(table=frame, points=points, plan=result.plan, stats=result.stats, data=result.data,
                       binned=False, timings=result.timings, engine=result.engine, choice=choice)


def expand_grid(settings: SweepConfig) -> tuple[pl.DataFrame, list[dict[str, Any]]]:
    """Every combination of `[sweep.grid]`, as a points table and one policy table per point.

    A grid key sets the parameter of that name (when the kind has one) and fills
    `{key}` placeholders in every string parameter, nested ones included.
    """
    assert settings.grid is not None
    axes = {key: list(v.values()) if isinstance(v, Range) else (v if isinstance(v, list) else [v])
            for key, v in settings.grid.items()}
    empty = [key for key, values in axes.items() if not values]
    if empty:
        raise InvalidConfig(f"sweep.grid.{empty[0]}: the list of values is empty")
    fixed = {"kind": settings.kind, **(settings.model_extra or {})}
    if settings.score is not None:
        fixed["score"] = settings.score
    combos = list(product(*axes.values()))
    tables = [_fill(fixed | {k: v for k, v in zip(axes, combo, strict=True) if k in fixed or _is_param(k, fixed)},
                    dict(zip(axes, combo, strict=True))) for combo in combos]
    points = pl.DataFrame({"point": np.arange(len(combos), dtype=np.int32),
                           "label": [" ".join(f"{k}={v}" for k, v in zip(axes, combo, strict=True)) for combo in combos],
                           **{key: [combo[i] for combo in combos] for i, key in enumerate(axes)}}, strict=False)
    return points, tables


def _is_param(key: str, fixed: Mapping[str, Any]) -> bool:
    """A grid key that no string mentions as a placeholder is a parameter of the kind."""
    return not _mentions(fixed, "{" + key + "}")


def _mentions(value: Any, placeholder: str) -> bool:
    if isinstance(value, str):
        return placeholder in value
    if isinstance(value, Mapping):
        return any(_mentions(v, placeholder) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_mentions(v, placeholder) for v in value)
    return False


def _fill(value: Any, values: Mapping[str, Any]) -> Any:
    """Replace `{key}` in every string (recursively) by the point's value."""
    if isinstance(value, str):
        for key, v in values.items():
            value = value.replace("{" + key + "}", str(v))
        return value
    if isinstance(value, Mapping):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_fill(v, values) for v in value]
    return value
