"""`policysim` command line: thin commands that resolve input, call one library
function and render the result. The only module (with notebooks) that prints.

Exit codes: 0 ok; 1 a review guardrail failed; 3 a review the data cannot
decide (--allow-inconclusive turns it into 0); 2 bad input, config or usage
(a message, no traceback);
70 an internal error, i.e. a bug in policysim (EX_SOFTWARE: the traceback is
printed on stderr; please report it).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.exceptions import TyperException
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text
from rich.table import Table

from simulator.config import RunConfig, derive, load_config
from simulator.config_tables import parse_objective
from simulator.engine.execution import Execution
from simulator.engine.ray_engine import cluster
from simulator.errors import PolicysimError
from simulator.report.review import write_review
from simulator.report.tables import exploration_cost, guardrail_table, overall_table, top_points_table
from simulator.workflows.run import RunResult, label_text, resolve_data, run, write_run_outputs
from simulator.decide.recommend import choice_spread
from simulator.workflows.review import review
from simulator.workflows.sweep import SweepResult, sweep
from simulator.report.sweep import write_sweep_outputs
from simulator.synthetic.generate import GenerateSpec, generate
from simulator.schema import Schema
from simulator.data.validate import DataSummary, check_dataset

EX_SOFTWARE = 70  # an internal error: a bug, not bad input (sysexits.h)

app = typer.Typer(
    name="policysim",
    help="Counterfactual policy simulator for card payments. Exit codes: 0 ok, 1 a review guardrail failed, "
    "3 a review the data cannot decide, 2 bad input, config or usage, 70 an internal error (a bug; the "
    "traceback is printed).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def stdout() -> Console:
    """Results go to stdout; when it is not a terminal, do not squeeze tables to 80 columns."""
    out = Console()
    return out if out.is_terminal else Console(width=140)

Seed = Annotated[int, typer.Option("--seed", help="Random seed (generation, bootstrap).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output; errors still print.")]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn policysim's own exceptions into a message and an exit code, no traceback; any other is a bug.

    A bug prints its traceback and exits `EX_SOFTWARE` (70), so that neither a
    user nor a script mistakes it for bad input (2) or a failed guardrail (1).
    """
    try:
        yield
    except PolicysimError as error:
        # the message is plain text: "[data.columns]" in it must not be read as rich markup
        console.print(Text.assemble(("error: ", "bold red"), str(error)), highlight=False, soft_wrap=True)
        raise typer.Exit(error.exit_code) from None
    except (typer.Exit, typer.Abort, TyperException):
        raise  # typer's own ways out: an exit code, Ctrl-C, a usage error (typer.BadParameter)
    except Exception:  # a bug
        internal_error()
        raise typer.Exit(EX_SOFTWARE) from None


def internal_error() -> None:
    """Print the traceback of the exception being handled, as a bug report needs it."""
    sys.stderr.write(traceback.format_exc())
    console.print(Text.assemble(("internal error", "bold red"),
                                f" (a bug in policysim, exit code {EX_SOFTWARE}): please report it with the traceback above"),
                  highlight=False, soft_wrap=True)


class RowsPerSecond(ProgressColumn):
    """Throughput of the task in rows per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s", style="progress.data.speed")


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} rows"),
        RowsPerSecond(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
        transient=True,
    )


@contextmanager
def _shard_progress(quiet: bool, execution: Execution) -> Iterator[Execution]:
    """`execution` with callbacks that drive a progress bar over shards (rows/s, ETA)."""
    progress = _progress(quiet)
    task = progress.add_task("evaluating", total=0)
    with progress:
        yield replace(
            execution,
            on_plan=lambda shards: progress.update(task, total=sum(s.rows for s in shards)),
            on_shard=lambda shard: progress.advance(task, shard.rows),
            on_cluster=lambda used: None if quiet else progress.console.print(
                f"Ray: {'started a local cluster' if used.started else 'joined'} {used.address} with {used.cpus:g} CPUs"
            ),
        )


def _generate(rows: int, out: Path, seed: int, files: int, exploration: float, quiet: bool) -> None:
    try:
        spec = GenerateSpec(rows=rows, files=files, seed=seed, exploration=exploration)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    with _progress(quiet) as progress:
        task = progress.add_task("generating", total=rows)
        report = generate(spec, out, on_rows=lambda n: progress.advance(task, n))
    if not quiet:
        console.print(
            f"wrote {report.rows:,} rows in {report.files} files to {report.transactions_dir} "
            f"and ground truth to {report.ground_truth_dir} in {report.seconds:.1f} s "
            f"({report.rows / max(report.seconds, 1e-9):,.0f} rows/s); as of {report.as_of:%Y-%m-%d}"
        )


@app.command("generate")
def generate_command(
    rows: Annotated[int, typer.Option("--rows", help="Number of payment attempts.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory.")],
    seed: Seed = 0,
    files: Annotated[int, typer.Option("--files", help="Number of Parquet files (shards).")] = 1,
    exploration: Annotated[
        float, typer.Option("--exploration", help="Share of rows where the logging policy explores.")
    ] = 0.05,
    quiet: Quiet = False,
) -> None:
    """Realistic synthetic logged transactions with known propensities, plus ground truth."""
    with user_errors():
        _generate(rows, out, seed, files, exploration, quiet)


def summary_table(summary: DataSummary) -> Table:
    """A rich table of a dataset summary: what a user checks before trusting a run."""
    table = Table(title="logged transactions", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in summary.display_rows():
        table.add_row(key, value)
    return table


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
            settings = load_config(config).data
            summary = check_dataset(data, settings.schema(), as_of=settings.as_of,
                                    label_maturity_days=settings.label_maturity_days)
    if not quiet:
        stdout().print(summary_table(summary))


ConfigArg = Annotated[Path, typer.Argument(help="TOML config (SPEC §11).")]
DataOpt = Annotated[Optional[str], typer.Option("--data", help="Data path or URI; overrides the config's data.path.")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output directory.")]
class EngineName(str, Enum):
    ray = "ray"
    local = "local"


EngineOpt = Annotated[EngineName, typer.Option("--engine", help="ray: tasks on a Ray cluster; local: this process.")]
AddressOpt = Annotated[
    Optional[str],
    typer.Option("--address", help="Join a Ray cluster: auto, host:port or ray://host:port (default: start a local one)."),
]
CpusOpt = Annotated[Optional[int], typer.Option("--num-cpus", min=1, help="CPUs of the local Ray cluster started.")]

SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Overrides the config's estimation.seed.")]


def _config(path: Path, seed: int | None) -> RunConfig:
    """The validated config, with `--seed` applied."""
    cfg = load_config(path)
    return cfg if seed is None else derive(cfg, {"estimation": {"seed": seed}}, source="--seed")


def _execution(engine: EngineName, address: str | None, num_cpus: int | None) -> Execution:
    """The `--engine`, `--address` and `--num-cpus` options as one `Execution`."""
    return Execution(engine=engine.value, address=address, num_cpus=num_cpus)


@app.command("run")
def run_command(
    config: ConfigArg,
    out: OutOpt,
    data: DataOpt = None,
    engine: EngineOpt = EngineName.ray,
    address: AddressOpt = None,
    num_cpus: CpusOpt = None,
    seed: SeedOpt = None,
    quiet: Quiet = False,
) -> None:
    """Evaluate the policies of a config against its baseline."""
    with user_errors():
        cfg = _config(config, seed)
        path = resolve_data(cfg, data)
        with _shard_progress(quiet, _execution(engine, address, num_cpus)) as execution:
            result = run(cfg, path, execution=execution)
        write_run_outputs(result, cfg, path, str(config), out)
    if not quiet:
        _print_run(result)
        console.print(f"wrote {out / 'results.parquet'} and {out / 'summary.json'} "
                      f"({result.results.height:,} rows, {result.timings['total_s']:.1f} s on {result.engine})")


def _print_run(result: RunResult) -> None:
    """The overall table, what the exploration cost, and the plan's warnings (e.g. about the baseline)."""
    stdout().print(overall_table(result.results, result.plan.baseline))
    stdout().print(label_text(result.plan), highlight=False)
    cost = exploration_cost(result.results, result.plan.baseline)
    if cost is not None:
        stdout().print(cost, highlight=False)
    _print_warnings(result.plan.warnings)


def _print_warnings(warnings: tuple[str, ...]) -> None:
    """What every output must say about a plan (e.g. that deltas include the exploration), on stderr."""
    for warning in warnings:
        console.print(Text.assemble(("warning: ", "bold yellow"), warning), highlight=False, soft_wrap=True)


ObjectiveOpt = Annotated[
    Optional[str],
    typer.Option("--objective", help='e.g. "net_value; fraud_rate_bps<=12 every_segment; min_rows=1000" '
                                     "(overrides [sweep] objective; grammar in docs/sweep.md)."),
]


def _print_sweep(result: SweepResult, out: Path) -> None:
    """The best grid points, the recommendation and its stability, and where the outputs are."""
    choice = result.choice
    metric, maximize, feasible, point = "net_value", True, None, None
    if choice is not None:
        objective = choice.objective
        metric, maximize, point = objective.metric, objective.sense == "maximize", choice.recommendation.point
        feasible = set(choice.feasible) or None
    stdout().print(top_points_table(result.table, metric, maximize=maximize, feasible=feasible, recommended=point))
    if choice is not None:
        lines = list(choice.recommendation.reason)
        share = choice.share()
        if share is not None:
            lines.append(f"chosen in {share:.0%} of {result.plan.bootstrap} bootstrap replicates"
                         + choice_spread(choice, result.points))
        elif point is not None:
            lines.append("set [estimation] bootstrap to see how often the bootstrap would choose it")
        stdout().print("[bold]recommendation[/]: " + "\n  ".join(lines), highlight=False)
    if result.by_segment is not None:
        stdout().print(overall_table(result.by_segment.results, result.plan.baseline))
    skipped = f", {result.skipped:,} combinations skipped (challenge_above >= block_above)" if result.skipped else ""
    console.print(f"{result.points.height:,} grid points{skipped}; wrote {out} "
                  f"(sweep.parquet, frontier.parquet, frontier.png, frontier.html) in {result.timings['total_s']:.1f} s "
                  f"on {result.engine}")


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
    quiet: Quiet = False,
) -> None:
    """Evaluate a grid of threshold configs ([sweep]) in one pass; write the frontier and a recommendation."""
    with user_errors():
        cfg = _config(config, seed)
        goal = None if objective is None else parse_objective(objective)
        path = resolve_data(cfg, data)
        with _shard_progress(quiet, _execution(engine, address, num_cpus)) as execution:
            result = sweep(cfg, path, objective=goal, execution=execution)
        write_sweep_outputs(result, cfg, path, str(config), out)
    if not quiet:
        _print_sweep(result, out)


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
    quiet: Quiet = False,
) -> None:
    """Pre-launch review of [review] candidate against the baseline: exit 0 pass, 1 fail, 3 undecided."""
    with user_errors():
        cfg = _config(config, seed)
        with _shard_progress(quiet, _execution(engine, address, num_cpus)) as execution:
            result = review(cfg, data, execution=execution, config_source=str(config))
        files = write_review(result, out, allow_inconclusive=allow_inconclusive)
    if not quiet:
        stdout().print(guardrail_table(result.guardrails))
        _print_warnings(result.run.plan.warnings)
    code = result.exit_code(allow_inconclusive=allow_inconclusive)
    # the verdict is the command's answer: stdout, even with --quiet
    stdout().print(f"review of '{result.candidate}' against '{result.baseline}': [bold]{result.verdict.upper()}[/] "
                   f"(exit {code}; {', '.join(f'{n} {o}' for o, n in result.counts().items())}); report: {files.html}",
                   highlight=False)
    raise typer.Exit(code)


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Where the demo writes results.")] = Path("demo"),
    data: Annotated[Path, typer.Option("--data", help="Where the demo writes its generated data.")] = Path("data"),
    configs: Annotated[Path, typer.Option("--configs", help="Directory of example configs to run.")] = Path("configs"),
    rows: Annotated[int, typer.Option("--rows", help="Rows of demo data.")] = 1_000_000,
    engine: EngineOpt = EngineName.ray,
    address: AddressOpt = None,
    num_cpus: CpusOpt = None,
    seed: Seed = 7,
    quiet: Quiet = False,
) -> None:
    """Generate demo data, validate it, run every example config, sweep thresholds and review a candidate."""
    with user_errors(), ExitStack() as stack:
        _generate(rows, data, seed, 4, 0.05, quiet)
        summary = check_dataset(data / "transactions", Schema())
        stdout().print(summary_table(summary))
        demo = Execution(engine=engine.value, shard_rows=250_000)  # runs join the demo's one cluster
        if engine is EngineName.ray:  # one cluster for the whole demo
            used = stack.enter_context(cluster(address, num_cpus))
            console.print(f"Ray cluster: {'started' if used.started else 'joined'} {used.address}, {used.cpus:g} CPUs")
        for path in sorted(configs.glob("*.toml")):
            cfg = load_config(path)
            if not cfg.policies:  # a sweep-only config: swept below
                continue
            with _shard_progress(quiet, demo) as execution:
                result = run(cfg, data / "transactions", execution=execution)
            write_run_outputs(result, cfg, data / "transactions", str(path), out / path.stem)
            _print_run(result)
            console.print(f"{path}: wrote {out / path.stem} in {result.timings['total_s']:.1f} s")
        swept = load_config(configs / "sweep.toml")  # a threshold sweep with its frontier and a recommendation
        with _shard_progress(quiet, demo) as execution:
            grid = sweep(swept, data / "transactions", execution=execution)
        write_sweep_outputs(grid, swept, data / "transactions", str(configs / "sweep.toml"), out / "sweep")
        _print_sweep(grid, out / "sweep")
        # the demo ends with a review the demo data can decide (docs/review.md, "Two reviews of the demo data")
        reviewed = review(load_config(configs / "block_risky.toml"), data / "transactions", execution=demo,
                          config_source=str(configs / "block_risky.toml"))
        files = write_review(reviewed, out / "review")
        stdout().print(guardrail_table(reviewed.guardrails))
        console.print(f"review of '{reviewed.candidate}': {reviewed.verdict.upper()}; open {files.html}")


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
