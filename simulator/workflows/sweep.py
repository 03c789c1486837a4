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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from simulator.config import RunConfig, derive
from simulator.config_tables import Objective, Range, SweepConfig
from simulator.data.load import Source, scan_dataset
from simulator.data.validate import DataSummary
from simulator.decide.frontier import THRESHOLDS
from simulator.decide.holdout import held_out, scale_to_whole
from simulator.decide.objective import Recommendation
from simulator.decide.recommend import Choice, ReplicateChoices, policy_choices, recommend
from simulator.decide.segment_choice import COMBINED, BySegment, combined_policy, segment_choices
from simulator.engine.execution import Execution, execute, shared_cluster
from simulator.errors import InvalidConfig
from simulator.estimate.development import with_development_uncertainty
from simulator.estimate.grid_results import finalize_grid
from simulator.estimate.results import RESULT_SCHEMA
from simulator.plan.compiled import Plan, compile_plan
from simulator.plan.grid import ThresholdGrid, grid_plan, grid_values, threshold_grid
from simulator.plan.holdout import Holdout, holdout
from simulator.schema import Schema
from simulator.stats.shard import Stats, verified_plan
from simulator.workflows.run import RunResult, ValidatedData, evaluate, run, validated_data

HELD_OUT = "recommended"  # the chosen point, evaluated alone on the report rows

def sweep_config(config: RunConfig) -> SweepConfig:
    """The config's `[sweep]` table (validated with the config); a config without one raises `InvalidConfig`."""
    if config.sweep is None:
        raise InvalidConfig("no [sweep] table in the config: add one with score, block_above and challenge_above "
                            "(docs/sweep.md)")
    return config.sweep


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
    source: Source | None = None  # the dataset's files and types, as opened once

    @property
    def parameters(self) -> list[str]:
        return [c for c in self.points.columns if c not in ("point", "label")]


def sweep(config: RunConfig, data: str | Path | None = None, *, objective: Objective | None = None,
          execution: Execution = Execution()) -> SweepResult:
    """Evaluate every point of the config's `[sweep]` grid against its baseline.

    The config's own `[[policies]]` are not evaluated (only the baseline, when it
    names one). With an `objective` (else the `[sweep] objective`), the result
    recommends a point and, with a bootstrap, says how often each replicate
    would recommend it; with `[sweep] by` it also picks the best point per value
    of that column and evaluates the combined `segment_threshold` policy.
    `execution` as in `simulator.workflows.run.run`.

    Example::

        config = load_config(Path("configs/sweep.toml"))
        swept = sweep(config, Path("data/transactions"), execution=Execution(engine="local"),
                      objective=parse_objective("net_value; fraud_rate_bps<=45; min_rows=20000"))
        swept.table.filter(pl.col("segment") == "ALL")     # every grid point × metric
        swept.choice.recommendation.reason, swept.choice.share()
        frontiers(swept.table)                             # the Pareto-efficient points
    """
    settings = sweep_config(config)
    objective = objective or settings.objective
    if settings.by is not None and objective is None:
        raise InvalidConfig("sweep.by: choosing thresholds per value needs an objective ([sweep] objective or --objective)")
    if not settings.binned:
        return _sweep_policies(config, settings, data, objective, execution)
    start = time.perf_counter()
    base = _with_segmentation(_baseline_only(config), settings.by)
    validated = validated_data(base, data)
    validate_s = time.perf_counter() - start
    grid = _grid(settings, config.data.actions, validated.schema)
    lazy = scan_dataset(validated.source, validated.schema)
    plan = grid_plan(compile_plan(base, lazy, as_of=validated.summary.as_of), grid, lazy.collect_schema().names())
    compiled = time.perf_counter() - start - validate_s
    with shared_cluster(execution) as execution:
        executed = execute(plan, validated.source, validated.schema, execution)
        plan = verified_plan(plan, executed.stats)
        mark = time.perf_counter()
        honest = objective is not None and settings.holdout != "none"
        choices = None if objective is None or not plan.bootstrap else ReplicateChoices(objective, grid.points, plan.bootstrap)
        table = with_development_uncertainty(
            finalize_grid(executed.stats, plan, config.estimation, grid, on_block=None if honest else choices),
            plan, config.estimation.confidence)
        choice, held = None, None
        if objective is not None and not honest:
            choice = recommend(table, objective, choices)
        elif objective is not None:
            held = _held_out_choice(config, settings, objective, plan, grid, table, validated, lazy, choices, execution)
            choice = held.choice
        finalize_s = time.perf_counter() - mark
        combined = None
        if settings.by is not None and objective is not None and choice is not None:
            assert settings.score is not None  # a threshold sweep has one (checked when the config was loaded)
            combined = _by_segment(table, config, settings.by, settings.score, objective, choice.recommendation,
                                   validated, execution, held)
    timings = {"validate_s": validate_s, **executed.timings, "plan_s": compiled + executed.timings["plan_s"],
               "finalize_s": finalize_s, "total_s": time.perf_counter() - start}
    return SweepResult(table=table, points=grid.frame(), plan=plan, stats=executed.stats, data=validated.summary,
                       binned=True, skipped=grid.skipped, timings=timings, engine=executed.engine, choice=choice,
                       by_segment=combined, source=validated.source)


@dataclass(frozen=True)
class HeldOut:
    """A choice made on the selection rows and reported on the others, with what a per-value choice needs."""

    choice: Choice
    chosen_on: pl.DataFrame  # the grid's table on the selection rows
    split: Holdout
    described: dict[str, Any]  # `Holdout.describe`: the rule and rows of each part


def _held_out_choice(config: RunConfig, settings: SweepConfig, objective: Objective, plan: Plan, grid: ThresholdGrid,
                     table: pl.DataFrame, validated: ValidatedData, lazy: pl.LazyFrame, choices: ReplicateChoices | None,
                     execution: Execution) -> HeldOut:
    """Choose on one part of the log (`[sweep] holdout`), report the chosen point from the other.

    Two more passes: the grid on the selection rows (the bootstrap's choice frequency
    too), then the chosen point alone on the report rows, scaled to the whole log.
    """
    split = holdout(settings.holdout, settings.holdout_share, lazy, seed=config.estimation.seed)
    chooser = replace(plan, rows=split.select)
    selected = execute(chooser, validated.source, validated.schema, execution)
    chooser = verified_plan(chooser, selected.stats)
    chosen_on = with_development_uncertainty(
        finalize_grid(selected.stats, chooser, config.estimation, grid, on_block=choices), chooser,
        config.estimation.confidence)
    choice = recommend(chosen_on, objective, choices)
    point = choice.recommendation.point
    if point is None:
        return HeldOut(choice, chosen_on, split, split.describe(selected=selected.stats.rows, reported=0))
    thresholds = {k: float(v) for k, v in (("challenge_above", grid.challenge[point]), ("block_above", grid.block[point]))
                  if np.isfinite(v)}
    alone = {"name": HELD_OUT, "kind": "threshold", "score": settings.score, **thresholds}
    point_config = _against_baseline(config, [alone], "[sweep] holdout")
    reported = evaluate(point_config, validated, execution, rows=split.report)
    columns = table.filter(pl.col("point") == point).select("point", *THRESHOLDS).head(1)
    report = scale_to_whole(reported.results.filter(pl.col("policy") == HELD_OUT), whole_rows(table), _sums(config)).join(
        columns, how="cross")
    described = split.describe(selected=selected.stats.rows, reported=reported.stats.rows)
    return HeldOut(replace(choice, recommendation=held_out(choice.recommendation, report, objective, described)),
                   chosen_on, split, described)


def _sums(config: RunConfig) -> list[str]:
    """The config's sum metrics (scaled from the report part to the whole log)."""
    return [m.name for m in config.values().sums]


def whole_rows(table: pl.DataFrame) -> pl.DataFrame:
    """Each (segment, metric)'s rows in the whole log, from a sweep table (the same for every point)."""
    first = table.filter(pl.col("point") == table["point"].min())
    return first.select("segment", "metric", pl.col("rows").alias("whole_rows"))


def _with_segmentation(config: RunConfig, by: str | None) -> RunConfig:
    """The config with `[by]` among its segmentations (a sweep `by` chooses per segment of it).

    A banded `by` was refused when the config was loaded.
    """
    if by is None or (by,) in config.segments.by or [by] in [list(s) for s in config.segments.by]:
        return config
    return derive(config, {"segments": {"by": [*config.segments.by, (by,)]}}, "[sweep] by")


def _baseline_only(config: RunConfig) -> RunConfig:
    """The config with only the policy its baseline needs (the grid replaces `[[policies]]`, so no `[review]`)."""
    return derive(config, {"policies": _baseline_tables(config), "review": None}, "[sweep]")


def _baseline_tables(config: RunConfig) -> list[dict[str, Any]]:
    """The `[[policies]]` table the baseline names, if it names one (else none: logged and production are built in)."""
    return [p.model_dump() for p in config.policies if p.name == config.baseline.policy]


def _against_baseline(config: RunConfig, policies: list[dict[str, Any]], source: str) -> RunConfig:
    """A run of `policies` against the config's baseline: the sweep's grid and its review table left out."""
    return derive(config, {"policies": [*_baseline_tables(config), *policies], "sweep": None, "review": None}, source)


def _by_segment(table: pl.DataFrame, config: RunConfig, column: str, score: str, objective: Objective,
                default: Recommendation, validated: ValidatedData, execution: Execution,
                held: HeldOut | None = None) -> BySegment | None:
    """Choose per value, combine, and evaluate the combination (on the sweep's validated data, not read twice).

    With `held`, the values' points are chosen on the selection rows and the combination is
    evaluated on the report rows, scaled to the whole log, as the overall recommendation is.
    None when nothing overall is feasible.
    """
    if default.point is None:
        return None
    choices = segment_choices(table if held is None else held.chosen_on, column, objective)
    policy = combined_policy(choices, column, score, default)
    combined = _against_baseline(config, [policy], "[sweep] by")
    rows = None if held is None else held.split.report
    results = evaluate(combined, validated, execution, rows=rows).results.filter(pl.col("policy") == COMBINED)
    if held is not None:
        results = scale_to_whole(results, whole_rows(table), _sums(config)).select(results.columns)
    return BySegment(column=column, choices=choices, policy=policy, results=results,
                     holdout=None if held is None else held.described)


def _grid(settings: SweepConfig, actions: tuple[str, ...], schema: Schema) -> ThresholdGrid:
    """The threshold grid, its thresholds checked against the score's range (in the score's own units)."""
    assert settings.score is not None  # a threshold sweep has one (checked when the config was loaded)
    bounds = schema.score_range(settings.score)
    return threshold_grid(settings.score, grid_values(settings.challenge_above, "sweep.challenge_above", bounds),
                          grid_values(settings.block_above, "sweep.block_above", bounds), actions, "sweep")


def _sweep_policies(config: RunConfig, settings: SweepConfig, data: str | Path | None, objective: Objective | None,
                    execution: Execution) -> SweepResult:
    """Any other kind: every grid point is a policy of its own, evaluated in one pass of `run`."""
    points, tables = expand_grid(settings)
    names = [f"sweep[{i}]" for i in range(points.height)]
    policies = [{"name": name, **table} for name, table in zip(names, tables, strict=True)]
    points_config = _against_baseline(config, policies, "[sweep] grid")
    result: RunResult = run(points_config, data, execution=execution)
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
        choices = policy_choices(result.stats, result.plan, names, objective, config.estimation.estimator) if result.plan.bootstrap else None
        choice = recommend(frame, objective, choices)
    return SweepResult(table=frame, points=points, plan=result.plan, stats=result.stats, data=result.data,
                       binned=False, timings=result.timings, engine=result.engine, choice=choice, source=result.source)


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
