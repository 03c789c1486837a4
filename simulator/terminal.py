"""What the command line prints: the consoles, error reporting and exit codes, progress bars, the
engine line and the result tables. With `simulator.cli` (the commands), the only module that prints.

Results go to stdout; progress, warnings and errors to stderr (one rich console), and
`--quiet` silences progress, never errors. A policysim error becomes one message and
exit code 2 (no traceback); any other exception is a bug: its traceback and `EX_SOFTWARE`.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from itertools import count
from pathlib import Path

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text
from typer.exceptions import TyperException

from simulator.data.validate import DataSummary
from simulator.decide.ranking import recommendation_note
from simulator.decide.recommend import choice_spread
from simulator.engine.execution import Execution
from simulator.engine.ray_engine import Cluster
from simulator.engine.shards import Shard
from simulator.errors import PolicysimError
from simulator.report.candidates import policy_lines, selection_warning
from simulator.report.changes import changes_table
from simulator.report.tables import (KEY_METRICS, NOTE, candidates_table, exploration_cost, flag_legend, overall_table, segment_table, shown_rows,
                                     top_points_table)
from simulator.workflows.review import CandidatesReview
from simulator.workflows.run import RunResult, label_text
from simulator.workflows.sweep import SweepResult

EX_SOFTWARE = 70  # an internal error: a bug, not bad input (sysexits.h)

console = Console(stderr=True)


def stdout() -> Console:
    """Results go to stdout; when it is not a terminal, do not squeeze tables to 80 columns."""
    out = Console()
    return out if out.is_terminal else Console(width=140)


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


def progress_bar(quiet: bool) -> Progress:
    """A transient rich progress bar over rows on stderr (rows/s, ETA); disabled by --quiet."""
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
def shard_progress(quiet: bool, execution: Execution, *, announce: bool = True) -> Iterator[Execution]:
    """`execution` with callbacks that drive a progress bar over shards (rows/s, ETA) and say which engine runs.

    With `announce`, the engine line comes first: `engine: local (this process)`, or,
    when the Ray cluster is up, `engine: ray, started a local Ray cluster at ... in 3.4 s`.
    """
    progress = progress_bar(quiet)
    task = progress.add_task("evaluating", total=0)
    tell = announce and not quiet
    with progress:
        if execution.engine == "local" and tell:
            progress.console.print(engine_line(None))
        yield replace(
            track_passes(progress, task, execution),
            on_cluster=lambda used: progress.console.print(engine_line(used)) if tell else None,
        )


def track_passes(progress: Progress, task: TaskID, execution: Execution) -> Execution:
    """`execution` with callbacks that count each pass over the data on `task`, from 0 to that pass's rows.

    A workflow may read the data several times with one execution (a sweep: the
    grid, the held-out point, the per-segment choice), and the engine plans
    shards once per pass. Counting every pass's rows against one pass's total
    showed `600,000/300,000 rows`; each pass now restarts the bar, named
    `evaluating (pass 2)`, so `completed` never exceeds `total`.
    """
    passes = count(1)

    def on_plan(shards: list[Shard]) -> None:
        number = next(passes)
        progress.reset(task, total=sum(s.rows for s in shards),
                       description="evaluating" if number == 1 else f"evaluating (pass {number})")

    return replace(execution, on_plan=on_plan, on_shard=lambda shard: progress.advance(task, shard.rows))


def engine_line(used: Cluster | None) -> str:
    """What runs the shards: `engine: local (this process)` or the Ray cluster and what starting it cost."""
    if used is None:
        return "engine: local (this process)"
    return f"engine: ray, {used.describe()}"


def summary_table(summary: DataSummary) -> Table:
    """A rich table of a dataset summary: what a user checks before trusting a run."""
    table = Table(title="logged transactions", show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in summary.display_rows():
        table.add_row(key, value)
    return table


def print_run(result: RunResult, segmentations: Sequence[str] = ()) -> None:
    """The overall table, each chosen segmentation's table, a legend of the flags shown, the decision changes,
    what the exploration cost, and the plan's warnings (e.g. about the baseline)."""
    out, baseline = stdout(), result.plan.baseline
    out.print(overall_table(result.results, baseline, KEY_METRICS + result.plan.values.own_metrics))
    for name in segmentations:
        out.print(segment_table(result.results, baseline, name, result.plan.segments))
    print_legend(shown_rows(result.results, baseline, segmentations))
    out.print(changes_table(result.changes, baseline))
    out.print(label_text(result.plan), highlight=False)
    cost = exploration_cost(result.results, result.plan.baseline)
    if cost is not None:
        stdout().print(cost, highlight=False)
    print_warnings(result.plan.warnings)


def print_legend(shown: pl.DataFrame) -> None:
    """What bold and the units mean, and one line per flag among the rows shown (plain text: no markup)."""
    out = stdout()
    out.print(NOTE, markup=False, highlight=False)
    for line in flag_legend(shown):
        out.print(line, markup=False, highlight=False)


def print_warnings(warnings: tuple[str, ...]) -> None:
    """What every output must say about a plan (e.g. that deltas include the exploration), on stderr."""
    for warning in warnings:
        console.print(Text.assemble(("warning: ", "bold yellow"), warning), highlight=False, soft_wrap=True)


def print_sweep(result: SweepResult, out: Path) -> None:
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
        print_legend(shown_rows(result.by_segment.results, result.plan.baseline))
    skipped = f", {result.skipped:,} combinations skipped (challenge_above >= block_above)" if result.skipped else ""
    console.print(f"{result.points.height:,} grid points{skipped}; wrote {out} "
                  f"(sweep.parquet, frontier.parquet, frontier.png, frontier.html) in {result.timings['total_s']:.1f} s "
                  f"on {result.engine}")


def print_candidates(reviewed: CandidatesReview, report: Path, *, allow_inconclusive: bool, quiet: bool) -> int:
    """Several candidates: the ranked table (unless quiet), one verdict line per candidate, best first, then the
    recommendation and its warning; the verdict lines go to stdout even with --quiet. Returns the exit code."""
    if not quiet:
        stdout().print(candidates_table(reviewed.ranking, policy_lines(reviewed)))
        print_warnings(reviewed.run.plan.warnings)
    code = reviewed.exit_code(allow_inconclusive=allow_inconclusive)
    total = len(reviewed.reviews)
    for rank, result in enumerate(reviewed.reviews, start=1):
        counts = ", ".join(f"{n} {o}" for o, n in result.counts().items())
        stdout().print(f"review of '{result.candidate}' against '{result.baseline}': [bold]{result.verdict.upper()}[/] "
                       f"(rank {rank} of {total}; {counts})", highlight=False)
    chosen = reviewed.recommended(allow_inconclusive=allow_inconclusive)
    head = f"recommended: '{chosen.candidate}'" if chosen is not None else "recommended: none"
    stdout().print(f"{head} — {recommendation_note(reviewed.ranking)} (exit {code}); report: {report}", highlight=False)
    warning = selection_warning(reviewed)
    if warning:
        stdout().print(Text.assemble(("warning: ", "bold yellow"), warning), highlight=False, soft_wrap=True)
    return code
