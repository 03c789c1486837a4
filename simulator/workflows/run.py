"""`run`: evaluate a config's policies on logged transactions (SPEC §5, §9).

Compiles the plan, computes shard statistics on the chosen engine, and finalizes
estimates on the driver, which never holds rows. The data is validated in the
same read as the statistics (`simulator.data.shard_checks`): every shard checks
its own rows, and the merged checks raise `InvalidData` before anything is
finalized. Data the shards cannot validate alone (schema problems, the
propensity audit of a declared logging policy) is validated first, in a pass of
its own (`check_dataset`), as `sweep` and `review` always do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import polars as pl

from segments.labels import ALL
from simulator import __version__
from simulator.config import RunConfig
from simulator.data.load import Source, dataset_files, in_utc, latest_timestamp, open_source, scan_dataset
from simulator.data.storage import absolute
from simulator.data.logging_policy import derived_columns, with_logging_columns
from simulator.data.shard_checks import FoldedChecks, fold_checks
from simulator.data.validate import DataSummary, Origin, check_dataset, find_problems
from simulator.engine.execution import Execution, execute
from simulator.errors import InvalidConfig, InvalidData, PolicysimError
from simulator.estimate.changes import CHANGES_SCHEMA, finalize_changes, finalize_examples
from simulator.estimate.development import with_development_uncertainty
from simulator.estimate.results import finalize, segment_evaluation
from simulator.plan.changes import DEFAULT_EXAMPLES, with_changes
from simulator.plan.compiled import Plan, compile_plan
from simulator.plan.moments import needed_sums
from simulator.report.files import parquet_footer_digest, write_json, write_parquet
from simulator.report.folders import staged_folder
from simulator.report.run_report import write_run_report
from simulator.schema import Schema
from simulator.stats.shard import Stats, shard_stats, verified_plan


@dataclass(frozen=True)
class RunResult:
    """What a run produced: the results table and what it was computed from.

    `changes` and `examples` are the decision changes (`changes.parquet`, `examples.parquet`,
    docs/cli.md): per policy, segment and transition from the baseline's action to the policy's,
    the rows and volume that change decision with the metric deltas they carry, and the largest
    of those payments. `changes` is computed on first read from `changes_from` (`run` computes it
    with the results, sharing their totals; `run_frame` and `evaluate` when it is read: most of
    their callers, tests and sweeps, never read it).
    """

    results: pl.DataFrame
    plan: Plan
    stats: Stats
    data: DataSummary | None  # None when run on an in-memory frame
    timings: dict[str, float] = field(default_factory=dict)
    engine: str = "local"
    source: Source | None = None  # the dataset's files and types, as opened once (None for an in-memory frame)
    changes_from: Callable[[], pl.DataFrame] = field(default=lambda: pl.DataFrame(schema=CHANGES_SCHEMA),
                                                     repr=False, compare=False)
    examples: pl.DataFrame = field(default_factory=pl.DataFrame)

    @cached_property
    def changes(self) -> pl.DataFrame:
        """The decision changes table (`changes.parquet`), computed once, when first read."""
        return self.changes_from()

    def transitions(self) -> pl.DataFrame:
        """The ALL segment's transitions: one row per (policy, from_action, to_action), rows and volume."""
        return (self.changes.filter(pl.col("segment") == ALL)
                .unique(["policy", "from_action", "to_action"], keep="first", maintain_order=True)
                .select("policy", "from_action", "to_action", "rows", "volume"))

    def overall(self) -> pl.DataFrame:
        """The ALL segment only: one row per (policy, metric)."""
        return self.results.filter(pl.col("segment") == ALL)


def resolve_data(config: RunConfig, data: str | Path | None) -> str:
    """The data location, absolute (or a URI): the argument wins over the config's `[data] path`.

    A relative argument is relative to the working directory; a relative
    `[data] path` was resolved against the config's folder when it was loaded.
    """
    path = data if data is not None else config.data.path
    if path is None:
        raise InvalidConfig("no data: give --data or set [data] path in the config")
    return absolute(path)


def run(config: RunConfig, data: str | Path | None = None, *, execution: Execution = Execution(),
        examples: int = DEFAULT_EXAMPLES, changes: bool = True) -> RunResult:
    """Evaluate every policy of `config` against its baseline on the data.

    `execution` says which engine runs the shards and where (`Execution`: Ray
    by default, on a new local cluster; `Execution(engine="local")` runs in this
    process with identical results). Bad data raises `InvalidData` (column,
    count, example id), as the CLI reports it. `examples`: how many of the
    largest payments of each transition `result.examples` keeps. `changes=False`
    leaves the decision changes out (no transition sums or example payments in
    the shards): for callers that never read them (review, plan).

    Example::

        result = run(config, Path("data/transactions"), execution=Execution(engine="local"))
        result.overall().filter(pl.col("metric") == "net_value")   # one row per policy
        result.results                                              # every segment (docs/cli.md, outputs)
        result.transitions()                                        # rows and volume that change decision
    """
    start = time.perf_counter()
    path = resolve_data(config, data)
    schema = config.data.schema()
    source = open_source(path, schema)
    try:
        result, checking = _evaluate(config, source, schema, execution, summary=None, examples=examples,
                                     eager_changes=changes, changes=changes)
    except _NotFolded:  # the data needs the one-pass validator: validate first, then evaluate
        validated = validated_data(config, source)
        result, checking = _evaluate(config, source, schema, execution, summary=validated.summary, examples=examples,
                                     eager_changes=changes, changes=changes)
    total = time.perf_counter() - start
    # validate_s: validation outside the shard pass (its checks inside the shards count in stats_s)
    timings = {**result.timings, "validate_s": total - result.timings["total_s"] + checking, "total_s": total}
    return replace(result, timings=timings)


class _NotFolded(Exception):
    """The data cannot be validated in the shards' read (`fold_checks`): the caller validates it first."""


@dataclass(frozen=True, slots=True)
class ValidatedData:
    """A dataset that passed the data contract: where it is, its files, its schema and what it holds."""

    path: str
    source: Source
    schema: Schema
    summary: DataSummary


def evaluate(config: RunConfig, validated: ValidatedData, execution: Execution, *,
             rows: pl.Expr | None = None, examples: int = DEFAULT_EXAMPLES) -> RunResult:
    """`run` on data already validated (e.g. by a sweep that evaluates one more policy): plan, statistics, finalize.

    `rows` keeps only the matching rows in the statistics (the plan is the whole log's). The decision
    changes are computed when `result.changes` is first read.
    """
    result, _ = _evaluate(config, validated.source, validated.schema, execution, summary=validated.summary, rows=rows,
                          examples=examples)
    return result


def _evaluate(config: RunConfig, source: Source, schema: Schema, execution: Execution, *,
              summary: DataSummary | None, rows: pl.Expr | None = None, examples: int = DEFAULT_EXAMPLES,
              eager_changes: bool = False, changes: bool = True) -> tuple[RunResult, float]:
    """Plan, statistics, finalize; and the seconds spent finishing the shards' checks (0 on validated data).

    `eager_changes`: finalize the decision changes now, on the results' totals, with their time in
    `timings["changes_s"]` (what `run` and the CLI report); else when `changes` is first read.

    Without a `summary` the data has not been validated: the shards check their rows in
    the same read (`fold_checks`), and their merged checks raise `InvalidData` or give the
    summary before anything is finalized. Raises `_NotFolded` when the shards cannot
    validate it alone. A failure before the checks are in may be the data's (an empty log
    has no as-of date): the one-pass validator then says what is wrong, or the failure stands.
    """
    start = time.perf_counter()
    folded: FoldedChecks | None = None
    try:
        scan = scan_dataset(source, schema)
        # the default as-of date: from the Parquet footers when they can say, else compile_plan reads the timestamps
        as_of = latest_timestamp(source, schema) if summary is None else summary.as_of
        plan = compile_plan(config, scan, as_of=as_of)
        if changes:
            plan = _with_changes(plan, config, scan.collect_schema().names(), schema, examples)
        if summary is None:
            folded = fold_checks(source, schema, as_of=plan.as_of,
                                 label_maturity_days=config.data.label_maturity_days)
            if folded is None:
                raise _NotFolded
        if rows is not None:
            plan = replace(plan, rows=rows)
        compiled = time.perf_counter() - start
        executed = execute(plan, source, schema, execution, checks=None if folded is None else folded.shard)
    except _NotFolded:
        raise
    except Exception:
        if summary is None:
            check_dataset(source, schema, as_of=config.data.as_of, label_maturity_days=config.data.label_maturity_days)
        raise
    mark = time.perf_counter()
    if folded is not None:
        assert executed.checked is not None  # asked for with `checks`
        summary = executed.checked.finish(folded)  # InvalidData here: no estimate was computed
    checking = time.perf_counter() - mark
    plan = verified_plan(plan, executed.stats)
    mark = time.perf_counter()
    evaluation = segment_evaluation(executed.stats, plan, config.estimation)  # shared by both finalizes
    results = with_development_uncertainty(finalize(executed.stats, plan, config.estimation, evaluation=evaluation),
                                           plan, config.estimation.confidence)
    finalized = time.perf_counter() - mark
    changes_from = partial(finalize_changes, executed.stats, plan, config.estimation, results) if changes \
        else _not_collected
    if eager_changes:  # computed now, on the totals finalize already has, and timed
        changes = finalize_changes(executed.stats, plan, config.estimation, results, evaluation=evaluation)
        changes_from = partial(_computed, changes)
    changed = {"changes_s": time.perf_counter() - mark - finalized} if eager_changes else {}
    timings = {**executed.timings, "plan_s": compiled + executed.timings["plan_s"],  # compiling + cutting shards
               "finalize_s": finalized, **changed, "total_s": time.perf_counter() - start}
    result = RunResult(results=results, plan=plan, stats=executed.stats, data=summary, timings=timings,
                       engine=executed.engine, source=source, changes_from=changes_from,
                       examples=finalize_examples(executed.stats, plan))
    return result, checking


def _not_collected() -> pl.DataFrame:
    """`RunResult.changes` of a run made with `changes=False`: an error, not an empty table that reads as none."""
    raise PolicysimError("this run left the decision changes out (run(..., changes=False)); run it with changes=True")


def _computed(frame: pl.DataFrame) -> pl.DataFrame:
    """A table computed already (a picklable `changes_from`, unlike a lambda)."""
    return frame


def _with_changes(plan: Plan, config: RunConfig, names: list[str], schema: Schema, examples: int) -> Plan:
    """The plan, collecting decision changes with `examples` payments per transition (`simulator.plan.changes`)."""
    return with_changes(plan, names, schema.resolved_scores(names), config.segments, examples=examples)


def validated_data(config: RunConfig, data: str | Path | Source | None) -> ValidatedData:
    """The data location, its files, its schema and its validated summary; bad data raises `InvalidData`."""
    path = data.location if isinstance(data, Source) else resolve_data(config, data)
    schema = config.data.schema()
    source = open_source(path, schema)
    summary = check_dataset(
        source, schema, as_of=config.data.as_of, label_maturity_days=config.data.label_maturity_days
    )
    return ValidatedData(path=path, source=source, schema=schema, summary=summary)


def run_frame(config: RunConfig, frame: pl.DataFrame, *, examples: int = DEFAULT_EXAMPLES) -> RunResult:
    """Evaluate on an in-memory frame (canonical column names), as one shard.

    The frame is validated like a dataset; bad rows raise `InvalidData`. The decision changes are
    computed when `result.changes` is first read.

    Example::

        frame = pl.read_parquet("data/transactions").filter(pl.col("card_country") == "BR")
        run_frame(config, frame).overall()
    """
    start = time.perf_counter()
    schema = config.data.schema()
    origin = Origin(derived=derived_columns(schema, frame.columns))
    frame = with_logging_columns(in_utc(frame), schema)  # a declared logging policy derives what the frame lacks
    problems = find_problems(frame, schema, origin)
    if problems:
        raise InvalidData(
            f"{len(problems)} problems with the logged transactions (docs/data.md):\n"
            + "\n".join(f"  - {p.message()}" for p in problems),
            problems=tuple(problems),
        )
    plan = _with_changes(compile_plan(config, frame.lazy()), config, frame.columns, schema, examples)
    stats = shard_stats(frame.select(sorted(plan.columns)), plan, needed_sums(plan))
    plan = verified_plan(plan, stats)
    results = with_development_uncertainty(finalize(stats, plan, config.estimation), plan, config.estimation.confidence)
    return RunResult(results=results, plan=plan, stats=stats, data=None,
                     timings={"total_s": time.perf_counter() - start},
                     changes_from=partial(finalize_changes, stats, plan, config.estimation, results),
                     examples=finalize_examples(stats, plan))


def provenance(config: RunConfig, path: str | Path, config_source: str, data: DataSummary | None,
               source: Source | None = None) -> dict[str, Any]:
    """What every `summary.json` starts with: the version, the config and the data it ran on.

    `source`: the dataset as the run opened it, so its files are not listed again (a remote listing on object storage).
    """
    files = list(source.files) if source is not None else dataset_files(path)
    return {
        "policysim_version": __version__,
        "config_source": config_source,
        "config": config.model_dump(mode="json"),
        "data": {
            "path": absolute(path),
            "fingerprint": parquet_footer_digest(files, absolute(path)),
            **(data.to_dict() if data else {}),
        },
    }


def run_summary(result: RunResult, config: RunConfig, path: str | Path, config_source: str) -> dict[str, Any]:
    """What `summary.json` records: the config, the data it ran on, counts and timings."""
    plan = result.plan
    return {
        **provenance(config, path, config_source, result.data, result.source),
        "as_of": plan.as_of.isoformat(),
        "label_maturity_days": plan.label_maturity_days,
        "fraud_labels_mature_before": None if plan.cutoff is None else plan.cutoff.isoformat(),
        "labels": label_summary(plan),
        "rows": result.stats.rows,
        "policies": {p.name: {"kind": _kind(config, p.name), "coded": p.coded} for p in plan.policies},
        "baseline": plan.baseline,
        "warnings": list(plan.warnings),
        "estimator": config.estimation.estimator,
        "interval": "bootstrap-percentile" if config.estimation.bootstrap else "clt",
        "engine": result.engine,
        "timings": result.timings,
    }


def label_summary(plan: Plan) -> dict[str, Any]:
    """How fraud labels were treated: the mode in effect and, when developed, the dispute-delay curve."""
    out: dict[str, Any] = {"immature_labels": plan.immature_labels}
    if plan.development is not None:
        out |= plan.development.summary()
    return out


def label_text(plan: Plan) -> str:
    """One line on how fraud labels were treated, for the terminal."""
    development = plan.development
    if development is not None:
        return (f"fraud labels developed from {development.disputes:,} observed dispute delays; rows younger than "
                f"{development.min_age_days} days (created after {development.cutoff:%Y-%m-%d}) left out of fraud metrics")
    if plan.cutoff is None:
        return "fraud labels: every row's, as logged (immature labels included)"
    return f"fraud labels: rows created before {plan.cutoff:%Y-%m-%d} only (immature labels excluded)"


def _kind(config: RunConfig, name: str) -> str:
    """A config policy's kind; the policies the engine adds (logged, production) are named for their kind."""
    return next((p.kind for p in config.policies if p.name == name), name)


def write_run_outputs(result: RunResult, config: RunConfig, path: str | Path, config_source: str, out_dir: Path, *,
                      overwrite: bool = False) -> list[Path]:
    """`results.parquet`, `changes.parquet`, `examples.parquet`, `summary.json` and the report (`report.html`,
    `report.md` and its figures): the folder `out_dir`, new or empty unless `overwrite`, written whole.

    `overwrite` replaces what an earlier command wrote there (`simulator.report.folders`).
    """
    names = ("results.parquet", "changes.parquet", "examples.parquet", "summary.json")
    with staged_folder(out_dir, overwrite=overwrite) as folder:
        write_parquet(result.results, folder / names[0])
        write_parquet(result.changes, folder / names[1])
        write_parquet(result.examples, folder / names[2])
        write_json(run_summary(result, config, path, config_source), folder / names[3])
        report = write_run_report(result, folder)
    return [out_dir / name for name in names] + [out_dir / p.name for p in report]
