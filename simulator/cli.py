"""`policysim` command line: thin commands that resolve input, call one library
function and render the result with `simulator.terminal` (with which it is the
only module that prints, besides notebooks).

Exit codes: 0 ok; 1 a review guardrail failed; 3 a review the data cannot
decide (--allow-inconclusive turns it into 0); 2 bad input, config or usage
(a message, no traceback); 70 an internal error, i.e. a bug in policysim
(EX_SOFTWARE: the traceback is printed on stderr; please report it).

Help is plain click text (`rich_markup_mode=None`), so every bracketed name
(`[sweep]`, `[review] candidate`) shows as written and a flag shows as a flag.
Every command that writes checks `--out` before it reads any data
(`simulator.report.folders`) and says first which engine runs and what
starting it cost.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from simulator import __version__
from simulator.config import RunConfig, derive, load_config
from simulator.config_tables import parse_objective
from simulator.engine.address import check_reachable
from simulator.engine.execution import Execution, ignored_setting
from simulator.engine.ray_engine import cluster
from simulator.report.folders import check_output_folder, staged_folder
from simulator.report.candidates import write_candidates_review
from simulator.report.review import write_review
from simulator.errors import UnknownName
from simulator.report.tables import guardrail_table, segmentation_name
from simulator.terminal import (EX_SOFTWARE, print_candidates, print_run, print_sweep, print_warnings, progress_bar, shard_progress,
                                console, engine_line, internal_error, stdout, summary_table, user_errors)
from simulator.workflows.run import resolve_data, run, write_run_outputs
from simulator.workflows.review import review, review_candidates
from simulator.workflows.plan import checks as plan_checks, plan
from simulator.report.plan import plan_table, write_plan
from simulator.workflows.sweep import sweep
from simulator.report.sweep import write_sweep_outputs
from simulator.synthetic.generate import GenerateSpec, generate
from simulator.schema import Schema
from simulator.data.load import open_source, scan_dataset
from simulator.data.validate import check_dataset

app = typer.Typer(
    name="policysim",
    help="Counterfactual policy simulator for card payments.\n\n"
    "Exit codes: 0 ok, 1 a review guardrail failed, 3 a review the data cannot decide, 2 bad input, config "
    "or usage, 70 an internal error (a bug; the traceback is printed). Commands, flags and outputs: docs/cli.md.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: "[sweep]" is text, not rich markup, and a flag shows no <bool>
    context_settings={"max_content_width": 120},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"policysim {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Options before the command (`policysim --version`)."""


Seed = Annotated[int, typer.Option("--seed", help="Random seed (generation, bootstrap).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output; errors still print.")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Replace what an earlier policysim command wrote in --out, whole; without it --out must be "
                        "new or empty.")]


def _generate(rows: int, out: Path, seed: int, files: int, exploration: float, quiet: bool, overwrite: bool,
              scenario: str = "cards") -> None:
    try:
        spec = GenerateSpec(rows=rows, files=files, seed=seed, exploration=exploration, scenario=scenario)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    with progress_bar(quiet) as progress:
        task = progress.add_task("generating", total=rows)
        report = generate(spec, out, on_rows=lambda n: progress.advance(task, n), overwrite=overwrite)
    if not quiet:
        console.print(
            f"wrote {report.rows:,} rows in {report.files} files to {report.transactions_dir} "
            f"and ground truth to {report.ground_truth_dir} in {report.seconds:.1f} s "
            f"({report.rows / max(report.seconds, 1e-9):,.0f} rows/s); as of {report.as_of:%Y-%m-%d}"
        )


class ScenarioName(str, Enum):
    """The generator's scenarios (`GenerateSpec.scenario`)."""

    cards = "cards"
    review = "review"


@app.command("generate")
def generate_command(
    rows: Annotated[int, typer.Option("--rows", help="Number of payment attempts.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory.")],
    seed: Seed = 0,
    files: Annotated[int, typer.Option("--files", help="Number of Parquet files (shards).")] = 1,
    exploration: Annotated[
        float, typer.Option("--exploration", help="Share of rows where the logging policy explores.")
    ] = 0.05,
    scenario: Annotated[
        ScenarioName, typer.Option("--scenario", help="cards: allow / challenge / block; review: also a manual-review "
                                                      "action (docs/data.md).")
    ] = ScenarioName.cards,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Realistic synthetic logged transactions with known propensities, plus ground truth."""
    with user_errors():
        _generate(rows, out, seed, files, exploration, quiet, overwrite, scenario.value)


@app.command("validate")
def validate_command(
    data: Annotated[str, typer.Argument(help="Parquet or CSV file, directory, glob, or s3:// gs:// az:// URI.")],
    config: Annotated[
        Optional[Path], typer.Option("--config", help="Read the action set, column names and as-of date from this config.")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Check logged transactions against the data contract and print a summary."""
    with user_errors():
        if config is None:
            summary = check_dataset(data, Schema())
        else:
            loaded = load_config(config)
            settings = loaded.data
            summary = check_dataset(data, settings.schema(), as_of=settings.as_of,
                                    label_maturity_days=settings.label_maturity_days)
            schema = settings.schema()  # the config's value expressions read these columns: check them too
            loaded.values().check(scan_dataset(open_source(data, schema), schema).collect_schema())
    if not quiet:
        stdout().print(summary_table(summary))


ConfigArg = Annotated[Path, typer.Argument(metavar="CONFIG", help="TOML config (docs/config.md; examples in configs/).")]
DataOpt = Annotated[Optional[str], typer.Option("--data", help="Data path or URI (s3://, gs://, az://); overrides the config's data.path.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output folder: new or empty (or --overwrite); checked before any work.")]


class EngineName(str, Enum):
    ray = "ray"
    local = "local"


EngineOpt = Annotated[EngineName, typer.Option("--engine", help="ray: tasks on a Ray cluster; local: this process.")]
AddressOpt = Annotated[
    Optional[str],
    typer.Option("--address", help="Join a Ray cluster: auto, host:port or ray://host:port (default: start a local one)."),
]
CpusOpt = Annotated[Optional[int], typer.Option("--num-cpus", min=1, help="CPUs of the local Ray cluster started (not with --address).")]

SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Overrides the config's estimation.seed.")]


def _check_before_work(out: Path, overwrite: bool, inputs: tuple[str | Path, ...], execution: Execution) -> None:
    """What can be refused before any data is read: the output folder, and a cluster address nothing answers at."""
    check_output_folder(out, overwrite=overwrite, inputs=inputs)
    if execution.address is not None:
        check_reachable(execution.address)


def _config(path: Path, seed: int | None) -> RunConfig:
    """The validated config, with `--seed` applied."""
    cfg = load_config(path)
    return cfg if seed is None else derive(cfg, {"estimation": {"seed": seed}}, source="--seed")


def _execution(engine: EngineName, address: str | None, num_cpus: int | None) -> Execution:
    """The `--engine`, `--address` and `--num-cpus` options as one `Execution`; a flag that would be ignored is
    a usage error (exit 2)."""
    ignored = ignored_setting(engine.value, address, num_cpus)
    if ignored is not None and ignored[1] == "local":
        flag = "--" + ignored[0].replace("_", "-")
        raise typer.BadParameter(f"it is for the Ray engine, and --engine local runs in this process "
                                 f"(drop {flag}, or use --engine ray)", param_hint=f"'{flag}'")
    if ignored is not None:
        raise typer.BadParameter("it sets the CPUs of the local Ray cluster a command starts, and the cluster at "
                                 f"--address {address} has its own (drop --num-cpus)", param_hint="'--num-cpus'")
    return Execution(engine=engine.value, address=address, num_cpus=num_cpus)


SegmentsOpt = Annotated[Optional[list[str]], typer.Option(
    "--segments", metavar="NAME",
    help="Also print this segmentation's table (e.g. card_country, card_country,card_brand, created_at_week); "
         "repeatable.")]


def _segmentations(cfg: RunConfig, names: list[str] | None) -> list[str]:
    """The `--segments` names as results name them, each one the config makes (checked before any work)."""
    known = ["|".join(columns) for columns in cfg.segments.segmentations]
    chosen = [segmentation_name(name) for name in names or ()]
    for name in chosen:
        if name not in known:
            raise UnknownName("segmentation", name, known)
    return chosen


@app.command("run")
def run_command(
    config: ConfigArg,
    out: OutOpt,
    data: DataOpt = None,
    segments: SegmentsOpt = None,
    engine: EngineOpt = EngineName.ray,
    address: AddressOpt = None,
    num_cpus: CpusOpt = None,
    seed: SeedOpt = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Evaluate the policies of a config against its baseline."""
    with user_errors():
        planned = _execution(engine, address, num_cpus)
        cfg = _config(config, seed)
        chosen = _segmentations(cfg, segments)
        path = resolve_data(cfg, data)
        _check_before_work(out, overwrite, (path, config), planned)
        with shard_progress(quiet, planned) as execution:
            result = run(cfg, path, execution=execution)
        write_run_outputs(result, cfg, path, str(config), out, overwrite=overwrite)
    if not quiet:
        print_run(result, chosen)
        console.print(f"wrote {out / 'results.parquet'}, changes.parquet, examples.parquet, report.html, report.md "
                      f"and summary.json ({result.results.height:,} rows, {result.timings['total_s']:.1f} s on "
                      f"{result.engine})")


ObjectiveOpt = Annotated[
    Optional[str],
    typer.Option("--objective", help='e.g. "net_value; fraud_rate_bps<=12 every_segment; min_rows=1000" '
                                     "(overrides [sweep] objective; grammar in docs/sweep.md)."),
]


@app.command("sweep")
def sweep_command(
    config: ConfigArg,
    out: OutOpt,
    data: DataOpt = None,
    objective: ObjectiveOpt = None,
    engine: EngineOpt = EngineName.ray,
    address: AddressOpt = None,
    num_cpus: CpusOpt = None,
    seed: SeedOpt = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Evaluate the config's [sweep] grid in one pass: frontier and recommendation.

    Every point of the grid is a threshold policy; all are evaluated in one pass over the
    data (docs/sweep.md). With an objective, a point is recommended, chosen on one part of
    the log and reported from the other.
    """
    with user_errors():
        planned = _execution(engine, address, num_cpus)
        cfg = _config(config, seed)
        goal = None if objective is None else parse_objective(objective)
        path = resolve_data(cfg, data)
        _check_before_work(out, overwrite, (path, config), planned)
        with shard_progress(quiet, planned) as execution:
            result = sweep(cfg, path, objective=goal, execution=execution)
        write_sweep_outputs(result, cfg, path, str(config), out, overwrite=overwrite)
    if not quiet:
        print_sweep(result, out)


@app.command("review")
def review_command(
    config: ConfigArg,
    out: OutOpt,
    data: DataOpt = None,
    engine: EngineOpt = EngineName.ray,
    address: AddressOpt = None,
    num_cpus: CpusOpt = None,
    seed: SeedOpt = None,
    allow_inconclusive: Annotated[bool, typer.Option(
        "--allow-inconclusive", help="Exit 0 instead of 3 when the data cannot decide a guardrail.")] = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Pre-launch review of the [review] candidate(s): exit 0 pass, 1 fail, 3 undecided.

    The candidate is compared with the baseline in every segment against the
    [[review.guardrails]] (docs/review.md); review.html and review.md say why.
    With [review] candidates = [...], every candidate is reviewed in one pass and
    ranked: exit 0 when one passes (the recommended one), 1 when all fail, 3 otherwise.
    """
    with user_errors():
        planned = _execution(engine, address, num_cpus)
        cfg = _config(config, seed)
        _check_before_work(out, overwrite, (resolve_data(cfg, data), config), planned)
        if cfg.review is not None and cfg.review.several:  # [review] candidates = [...]: ranked, one pass
            with shard_progress(quiet, planned) as execution:
                ranked = review_candidates(cfg, data, execution=execution, config_source=str(config))
            files = write_candidates_review(ranked, out, allow_inconclusive=allow_inconclusive, overwrite=overwrite)
            raise typer.Exit(print_candidates(ranked, files.html, allow_inconclusive=allow_inconclusive, quiet=quiet))
        with shard_progress(quiet, planned) as execution:
            result = review(cfg, data, execution=execution, config_source=str(config))
        files = write_review(result, out, allow_inconclusive=allow_inconclusive, overwrite=overwrite)
    if not quiet:
        stdout().print(guardrail_table(result.guardrails))
        print_warnings(result.run.plan.warnings)
    code = result.exit_code(allow_inconclusive=allow_inconclusive)
    # the verdict is the command's answer: stdout, even with --quiet
    stdout().print(f"review of '{result.candidate}' against '{result.baseline}': [bold]{result.verdict.upper()}[/] "
                   f"(exit {code}; {', '.join(f'{n} {o}' for o, n in result.counts().items())}); report: {files.html}",
                   highlight=False)
    raise typer.Exit(code)


def _numbers(text: str | None, flag: str, *, most: float | None = None) -> list[float] | None:
    """A comma-separated list of positive numbers (at most `most`), or None for the default grid."""
    if text is None:
        return None
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected numbers separated by commas, got {text!r}", param_hint=f"'{flag}'") from None
    bad = [v for v in values if not (v > 0 and (most is None or v <= most) and v != float("inf"))]
    if not values or bad:
        bound = f"in (0, {most:g}]" if most is not None else "> 0"
        raise typer.BadParameter(f"every value must be {bound}, got {text!r}", param_hint=f"'{flag}'")
    return values


@app.command("plan")
def plan_command(
    config: ConfigArg,
    out: OutOpt,
    data: DataOpt = None,
    days: Annotated[Optional[str], typer.Option(
        "--days", metavar="LIST", help="Days of traffic to size, e.g. 7,30,90 (default 7,14,30,60,90,180,365 and "
                                       "the log's span).")] = None,
    exploration: Annotated[Optional[str], typer.Option(
        "--exploration", metavar="LIST", help="Exploration shares to size, e.g. 0.01,0.05 (default "
                                              "0.01,0.02,0.05,0.1,0.2 and the log's).")] = None,
    engine: EngineOpt = EngineName.ray,
    address: AddressOpt = None,
    num_cpus: CpusOpt = None,
    seed: SeedOpt = None,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Size a test: the days of traffic and exploration share that make each guardrail conclusive, and their cost.

    One run of the [review] candidate (or, without [review], of every policy for the sign of net_value,
    auth_rate and fraud_rate_bps); the model and its assumptions are in docs/review.md ("Before you
    explore: sizing a test"). The table goes to stdout even with --quiet.
    """
    with user_errors():
        planned = _execution(engine, address, num_cpus)
        grid_days = _numbers(days, "--days")
        grid_shares = _numbers(exploration, "--exploration", most=1.0)
        cfg = _config(config, seed)
        plan_checks(cfg)  # nothing to plan is a config error, before any data is read
        _check_before_work(out, overwrite, (resolve_data(cfg, data), config), planned)
        with shard_progress(quiet, planned) as execution:
            result = plan(cfg, data, execution=execution, days=grid_days, shares=grid_shares,
                          config_source=str(config))
        files = write_plan(result, out, config_source=str(config), overwrite=overwrite)
    stdout().print(plan_table(result))  # the answer: stdout, even with --quiet (as review's verdict)
    if not quiet:
        print_warnings(result.run.plan.warnings)
        console.print(f"wrote {files.parquet}, {files.markdown.name}, {files.figure.name} and {files.summary.name}")


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Folder the demo writes results to (new or empty, or --overwrite).")] = Path("demo"),
    data: Annotated[Path, typer.Option("--data", help="Folder the demo writes its generated data to (new or empty, or --overwrite).")] = Path("data"),
    configs: Annotated[Path, typer.Option("--configs", help="Directory of example configs to run.")] = Path("configs"),
    rows: Annotated[int, typer.Option("--rows", help="Rows of demo data.")] = 1_000_000,
    engine: EngineOpt = EngineName.ray,
    address: AddressOpt = None,
    num_cpus: CpusOpt = None,
    seed: Seed = 7,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Generate demo data, validate it, run every example config, sweep thresholds and review a candidate.

    Everything that can be refused is checked first (the configs, both folders); the results
    folder is written whole at the end, on one Ray cluster for the whole demo.
    """
    with user_errors(), ExitStack() as stack:
        planned = replace(_execution(engine, address, num_cpus), shard_rows=250_000)
        examples = {path: load_config(path) for path in sorted(configs.glob("*.toml"))}
        check_output_folder(data, overwrite=overwrite, inputs=(configs,))
        _check_before_work(out, overwrite, (configs, data), planned)
        used = stack.enter_context(cluster(address, num_cpus)) if engine is EngineName.ray else None
        console.print(engine_line(used))
        demo = replace(planned, address=None, num_cpus=None)  # runs join the demo's one cluster
        _generate(rows, data, seed, 4, 0.05, quiet, overwrite)
        transactions = data / "transactions"
        stdout().print(summary_table(check_dataset(transactions, Schema())))
        staging = stack.enter_context(staged_folder(out, overwrite=overwrite, inputs=(configs, data)))
        for path, cfg in examples.items():
            if not cfg.policies:  # a sweep-only config: swept below
                continue
            with shard_progress(quiet, demo, announce=False) as execution:
                result = run(cfg, transactions, execution=execution)
            write_run_outputs(result, cfg, transactions, str(path), staging / path.stem)
            print_run(result)
            console.print(f"{path}: wrote {out / path.stem} in {result.timings['total_s']:.1f} s")
        swept = examples[configs / "sweep.toml"]  # a threshold sweep with its frontier and a recommendation
        with shard_progress(quiet, demo, announce=False) as execution:
            grid = sweep(swept, transactions, execution=execution)
        write_sweep_outputs(grid, swept, transactions, str(configs / "sweep.toml"), staging / "sweep")
        print_sweep(grid, out / "sweep")
        # the demo ends with a review the demo data can decide (docs/review.md, "Two reviews of the demo data")
        reviewed = review(examples[configs / "block_risky.toml"], transactions, execution=demo,
                          config_source=str(configs / "block_risky.toml"))
        write_review(reviewed, staging / "review")
        stdout().print(guardrail_table(reviewed.guardrails))
        console.print(f"review of '{reviewed.candidate}': {reviewed.verdict.upper()}; open {out / 'review' / 'review.html'}")


def main() -> None:
    """Console-script entry point; a bug outside a command's `user_errors` also exits `EX_SOFTWARE`."""
    try:
        app()
    except Exception:  # typer has already turned its own exits and usage errors into SystemExit
        internal_error()
        sys.exit(EX_SOFTWARE)


if __name__ == "__main__":
    main()
    sys.exit(0)
