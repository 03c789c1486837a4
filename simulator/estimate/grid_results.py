"""Results of every point of a threshold grid: estimates, intervals, bootstrap, flags (SPEC §9).

The same functions as `simulator.estimate.results`, evaluated on `(segments, points)`
arrays from `simulator.estimate.grid_totals`; bootstrap replicates come from the binned sums
of `simulator.stats.binned`, a block of segments and points at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from simulator.config import Estimation
from simulator.estimate.grid_totals import GridTotals
from simulator.estimate.results import (
    RESULT_SCHEMA,
    Bounds,
    Evaluation,
    bootstrap_bounds,
    flag_text,
    hide_unsupported,
    metric_estimates,
    metric_values,
    policy_columns,
    replicate_values,
    segmentation_name,
)
from simulator.estimate.totals import SegmentTotals
from simulator.plan.compiled import Plan
from simulator.plan.grid import ThresholdGrid
from simulator.plan.moments import Term, term_basis
from simulator.stats.binned import BLOCK_BYTES, Block, blocks
from simulator.stats.bootstrap import Replicates
from simulator.stats.shard import Stats


def finalize_grid(stats: Stats, plan: Plan, estimation: Estimation, grid: ThresholdGrid,
                  on_block: OnBlock | None = None) -> pl.DataFrame:
    """The results of every grid point (SPEC §9 columns, plus the point and its thresholds).

    `plan` is a grid plan (`simulator.plan.grid.grid_plan`). `on_block` sees the
    bootstrap replicates of every metric, a block of segments and points at a time.
    """
    points = grid.frame()
    parameters = [c for c in points.columns if c not in ("point", "label")]
    if stats.cells.is_empty():
        return pl.DataFrame(schema={"point": pl.Int32, **{c: pl.Float64 for c in parameters}, **RESULT_SCHEMA})
    base = SegmentTotals(plan=plan, cells=stats.cells)
    totals = GridTotals(base=base, grid=grid)
    evaluation = Evaluation.of(totals, estimation)
    baseline = {m.name: m for m in metric_estimates(plan.baseline, totals, estimation.estimator)}
    boot = None
    if stats.replicates is not None and stats.replicates.binned is not None:
        base_reps = replicate_values(stats.replicates, base, plan.baseline, estimation.estimator)
        boot = grid_bounds(stats.replicates, totals, estimation.estimator, estimation.confidence, base_reps, on_block)
    columns = policy_columns(totals.policy, evaluation, baseline, boot)
    shape = (len(totals.labels), grid.points)
    text = _text_columns(columns, shape, points["label"], totals)
    numbers = {k: pl.Series(k, np.concatenate(v), dtype=RESULT_SCHEMA[k], strict=False)
               for k, v in columns.items() if k not in text}
    frame = pl.DataFrame([(numbers | text)[k].alias(k) for k in RESULT_SCHEMA])
    index = np.tile(np.broadcast_to(np.arange(grid.points, dtype=np.int32), shape).ravel(), len(columns["metric"]))
    frame = hide_unsupported(frame).with_columns(pl.Series("point", index))
    return frame.join(points.drop("label"), on="point", how="left").select(["point", *parameters, *RESULT_SCHEMA])


def _text_columns(columns: dict[str, list[np.ndarray]], shape: tuple[int, int], labels: pl.Series,
                  totals: GridTotals) -> dict[str, pl.Series]:
    """The string columns, gathered from their few distinct values (millions of Python strings are slow).

    Rows are metric-major, then segment, then point, as `policy_columns` lays them out.
    """
    segments, points = shape
    metrics = len(columns["metric"])
    segment = np.tile(np.repeat(np.arange(segments), points), metrics)
    metric = np.repeat(np.arange(metrics), segments * points)
    names = [segmentation_name(totals.plan, i) for i in range(len(totals.plan.segments.segmentations) + 1)]
    return {
        "policy": labels.gather(np.tile(np.arange(points), segments * metrics)),
        "segmentation": pl.Series([names[i] for i in totals.segmentation]).gather(segment),
        "segment": pl.Series(list(totals.labels)).gather(segment),
        "metric": pl.Series([str(m[0]) for m in columns["metric"]]).gather(metric),
        "estimator": pl.Series([str(e[0]) for e in columns["estimator"]]).gather(metric),
        "baseline_policy": pl.Series([totals.plan.baseline]).gather(np.zeros(len(metric), dtype=np.int64)),
        "interval": pl.Series([str(i[0]) for i in columns["interval"]]).gather(metric),
        "flag": flag_text(columns["flag"]),
    }


OnBlock = Callable[[slice, np.ndarray, dict[str, np.ndarray], GridTotals], None]
"""Sees each block's bootstrap replicates: segments, points, metric -> (segments, points, B), the totals."""


def grid_bounds(replicates: Replicates, totals: GridTotals, estimator_name: str, confidence: float,
                  base_reps: dict[str, np.ndarray] | None, on_block: OnBlock | None = None,
                  budget: int = BLOCK_BYTES) -> dict[str, Bounds]:
    """Bootstrap percentile bounds of every metric of every grid point, `(segments, points)` each.

    Evaluated a block of segments and points at a time; `on_block` sees each block's
    replicate values (e.g. to tell how often each point would be recommended).
    """
    if replicates.binned is None:
        raise ValueError("grid bootstrap bounds need the plan's binned replicate sums (simulator.plan.grid.grid_plan)")
    plan, binned = totals.plan, replicates.binned
    shape = (len(totals.labels), totals.grid.points)
    out: dict[str, list[np.ndarray]] = {}
    regular = np.concatenate(replicates.values, axis=0)  # (segments, terms, B)
    index = {t: i for i, t in enumerate(replicates.terms)}
    for block in blocks(binned, totals.labels, totals.segmentation, len(plan.actions), budget):
        size = block.segments.stop - block.segments.start
        step = max(1, budget // (size * plan.bootstrap * 8 * 64))
        for start in range(0, shape[1], step):
            points = np.arange(start, min(shape[1], start + step))
            total = _replicate_totals(block, points, totals, regular, index)
            reps = metric_values(totals.policy, plan, estimator_name, total)
            base = None if base_reps is None else {k: v[block.segments][:, None, :] for k, v in base_reps.items()}
            for name, (low, high, dlow, dhigh) in bootstrap_bounds(reps, base, plan, confidence).items():
                slot = out.setdefault(name, [np.full(shape, np.nan) for _ in range(4)])
                for target, value in zip(slot, (low, high, dlow, dhigh), strict=True):
                    if value is not None:
                        target[block.segments, start:start + len(points)] = value
            if on_block is not None:
                on_block(block.segments, points, reps, totals)
    finite = plan.finite
    return {k: (v[0], v[1], None if finite else v[2], None if finite else v[3]) for k, v in out.items()}


def _replicate_totals(block: Block, points: np.ndarray, totals: GridTotals, regular: np.ndarray,
                      index: dict[Term, int]) -> Callable[[Term], np.ndarray]:
    """Every term's replicate totals on a block of segments and points: `(segments, points | 1, B)`."""
    plan, segments = totals.plan, block.segments
    replicates = regular.shape[2]
    replicates_outer = plan.binned.outer if plan.binned is not None else None

    cache: dict[Term, np.ndarray] = {}

    def total(term: Term) -> np.ndarray:
        if term not in cache:
            cache[term] = replicate_total(term)
        return cache[term]

    def replicate_total(term: Term) -> np.ndarray:
        basis = term_basis(term, plan)
        if totals.is_grid(term):
            point = totals.total(term)[segments][:, points, None]
            if basis is not None and (basis, term.value) in block.moments:
                outer = totals.outer_weights(term, replicates_outer)
                deviation = block.range_sum((basis, term.value), totals.ranges(term), points, outer)
                return point + deviation if plan.finite else deviation
            if basis is None:
                return np.full((point.shape[0], len(points), replicates), np.nan)
            return np.broadcast_to(point, (point.shape[0], len(points), replicates))  # direct method: fixed
        point = totals.total(term)[segments][:, :, None]
        if term not in index:  # unsupported, or the DR direct method (fixed given the rows)
            value = np.nan if basis is None else point
            return np.broadcast_to(value, (point.shape[0], 1, replicates))
        deviation = regular[segments, index[term], :][:, None, :]
        return point + deviation if plan.finite else deviation

    return total
