"""Throughput of `run` (issue #15 a, b): 10 policies × 4 segmentations × every metric, against a read.

The config: 10 policies (7 thresholds, a segment threshold, rules, an epsilon
mixture) × segments `card_country`, `card_country × card_brand`, `mcc`,
amount bands × every metric, SNIPW, local engine.

Baseline measured in the same run: polars reading the plan's columns (the
string `transaction_id` included) from the same Parquet files, warm, best of
three. Then, best of `--repeats`:

- the whole command a user types (`policysim run CONFIG --engine local`: config,
  validation, statistics, finalize, decision changes, results, report) in a
  fresh process, minus the start-up of that process (`policysim --version`,
  which imports the same modules, best of three), over the read: target ≤ 3×;
- the same with `bootstrap = B`, over the analytic command: target ≤ 5×;
- per-stage timings of the same run in this process, with the shard stages
  summed over shards (stage functions wrapped with timers; inclusive times).

    .venv/bin/policysim generate --rows 10000000 --files 8 --out /tmp/bench10m
    .venv/bin/python benchmarks/bench_run.py /tmp/bench10m/transactions                       # (a)
    .venv/bin/python benchmarks/bench_run.py /tmp/bench10m/transactions --bootstrap 200 --no-stages  # (b)
    .venv/bin/python benchmarks/bench_run.py /tmp/bench10m/transactions --bootstrap 200 --against /tmp/before --repeats 1

`--tree DIR` runs the command and the stages from another checkout of the code
(an exported older commit, on `PYTHONPATH`), for before/after figures in one run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SEGMENTS = {
    "by": [["card_country"], ["card_country", "card_brand"], ["mcc"], ["amount"]],
    "bands": {"amount": {"edges": [0, 10, 50, 200, 1000]}},
}
# The earlier config, without `mcc` (`--no-mcc`): the bootstrap's figures before replicate totals were
# kept per segment were measured on it, as with `mcc` a shard then needed 22.6 GiB (benchmarks/README.md).
SEGMENTS_NO_MCC = {"by": [["card_country"], ["card_country", "card_brand"], ["amount"]], "bands": SEGMENTS["bands"]}


def policies() -> list[dict]:
    """Ten candidates of every common kind."""
    grid = [(0.02, 0.3), (0.03, 0.35), (0.05, 0.3), (0.05, 0.5), (0.1, 0.6), (0.02, 0.4), (0.08, 0.45)]
    out: list[dict] = [
        {"name": f"t{i}", "kind": "threshold", "score": "fraud_score", "challenge_above": c, "block_above": b}
        for i, (c, b) in enumerate(grid)
    ]
    out.append({"name": "prepaid", "kind": "segment_threshold", "score": "fraud_score", "column": "card_funding",
                "default": {"challenge_above": 0.05, "block_above": 0.4},
                "thresholds": {"prepaid": {"challenge_above": 0.02, "block_above": 0.2}}})
    out.append({"name": "rules", "kind": "rules", "fallback": "allow",
                "rules": [{"when": "amount >= 1000 AND fraud_score >= 0.2", "action": "block"},
                          {"when": "fraud_score >= 0.05", "action": "challenge"}]})
    out.append({"name": "explore", "kind": "epsilon", "epsilon": 0.05,
                "base": {"kind": "threshold", "score": "fraud_score", "challenge_above": 0.05, "block_above": 0.4}})
    return out


def config_table(bootstrap: int, estimator: str = "snipw", *, mcc: bool = True) -> dict[str, Any]:
    """The benchmark's config as a table (`parse_config` input); `mcc=False`: the earlier segments."""
    return {"segments": SEGMENTS if mcc else SEGMENTS_NO_MCC, "policies": policies(),
            "estimation": {"bootstrap": bootstrap, "estimator": estimator}}


def toml_text(table: dict[str, Any]) -> str:
    """A TOML file of `config_table` (the few shapes it uses: scalars, lists, nested tables, arrays of tables)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"
        return repr(v)

    lines = []
    for name in ("segments", "estimation"):
        lines.append(f"[{name}]")
        lines += [f"{k} = {value(v)}" for k, v in table[name].items()]
    for policy in table["policies"]:
        lines.append("[[policies]]")
        lines += [f"{k} = {value(v)}" for k, v in policy.items()]
    return "\n".join(lines) + "\n"


# --- the command, in a fresh process -------------------------------------------------------------------------------


def _environment(tree: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    return env


def _command(tree: Path | None) -> list[str]:
    """`policysim`, from the installed code or from `tree` (its modules first on the path)."""
    # -P: `python -c` would put the working directory first on the path, ahead of PYTHONPATH's tree
    return [sys.executable, "-P", "-c", "import sys; from simulator.cli import main; sys.argv[0] = 'policysim'; main()"]


def _wall(args: list[str], env: dict[str, str]) -> float:
    return _timed(args, env)[0]


def _timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, all threads) of a command: CPU moves less with the other sessions' load."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    now = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, now.ru_utime - used.ru_utime + now.ru_stime - used.ru_stime


def startup_seconds(tree: Path | None) -> float:
    """A fresh `policysim --version`: the interpreter and every module the CLI imports."""
    return min(_wall([*_command(tree), "--version"], _environment(tree)) for _ in range(3))


def command_seconds(data: Path, bootstrap: int, tree: Path | None, estimator: str, folder: Path, mcc: bool = True
                    ) -> tuple[float, dict]:
    """Wall time of `policysim run CONFIG --data DATA --engine local --quiet`, and its summary.json timings.

    The timings gain `command_cpu_s`: the command's CPU seconds, start-up included.
    """
    config = folder / f"bench_b{bootstrap}.toml"
    config.write_text(toml_text(config_table(bootstrap, estimator, mcc=mcc)))
    out = folder / f"out_b{bootstrap}"
    seconds, cpu = _timed([*_command(tree), "run", str(config), "--data", str(data), "--out", str(out), "--engine",
                           "local", "--quiet", "--overwrite"], _environment(tree))
    return seconds, {**json.loads((out / "summary.json").read_text())["timings"], "command_cpu_s": cpu}


# --- the stages, in this process -----------------------------------------------------------------------------------

# (module, function) pairs timed inside the run: inclusive seconds, summed over calls (shards).
STAGES: list[tuple[str, str, str]] = [
    ("read", "simulator.engine.shards", "read_shard"),
    ("shard validation", "simulator.engine.shards", "shard_checks"),
    ("shard statistics (all)", "simulator.engine.shards", "shard_stats"),
    ("  logged action", "simulator.stats.shard", "action_index"),
    ("  policy coding", "simulator.stats.shard", "policy_codes"),
    ("  per-row policies", "simulator.stats.shard", "row_probabilities"),
    ("  support pattern", "simulator.stats.shard", "support_pattern"),
    ("  layout (all)", "simulator.stats.shard", "_layout"),
    ("    segment coding", "simulator.stats.shard", "segment_codes"),
    ("    units", "simulator.stats.shard", "build_units"),
    ("      row grouping", "simulator.stats.units", "group_rows"),
    ("    outcome pattern", "simulator.stats.shard", "outcome_pattern"),
    ("  unit values", "simulator.stats.shard", "unit_values"),
    ("  sums", "simulator.stats.shard", "_sums"),
    ("    compiled cell sums", "simulator.stats.shard", "cell_sums"),
    ("  masses", "simulator.stats.shard", "_masses"),
    ("  changes: memberships", "simulator.stats.shard", "memberships"),
    ("  changes: transition sums", "simulator.stats.shard", "transition_sums"),
    ("  changes: examples", "simulator.stats.shard", "shard_examples"),
    ("    example candidates", "simulator.stats.changes", "example_candidates"),
    ("  bootstrap replicates", "simulator.stats.shard", "replicate_sums"),
    ("merge", "simulator.engine.shards", "merge_all"),
    ("validation pass", "simulator.workflows.run", "check_dataset"),
    ("plan", "simulator.workflows.run", "compile_plan"),
    ("totals (both finalizes)", "simulator.workflows.run", "segment_evaluation"),
    ("finalize", "simulator.workflows.run", "finalize"),
    ("changes finalize", "simulator.workflows.run", "finalize_changes"),
    ("examples finalize", "simulator.workflows.run", "finalize_examples"),
    ("write results + report", "simulator.workflows.run", "write_run_outputs"),
    ("  report", "simulator.workflows.run", "write_run_report"),
]


@contextmanager
def timed_stages(cpu: bool = False) -> Iterator[dict[str, float]]:
    """Wrap every stage function that exists in this tree with a timer; restore them on exit.

    With `cpu`, each label's process CPU seconds (all threads) are kept too, under "LABEL cpu".
    """
    seconds: dict[str, float] = defaultdict(float)
    saved: list[tuple[Any, str, Callable]] = []
    for label, module_name, name in STAGES:
        module = importlib.import_module(module_name)
        original = getattr(module, name, None)
        if original is None:
            continue

        def timer(*args: Any, _original: Callable = original, _label: str = label, **kwargs: Any) -> Any:
            start, used = time.perf_counter(), time.process_time() if cpu else 0.0
            try:
                return _original(*args, **kwargs)
            finally:
                seconds[_label] += time.perf_counter() - start
                if cpu:
                    seconds[_label + " cpu"] += time.process_time() - used

        saved.append((module, name, original))
        setattr(module, name, timer)
    try:
        yield seconds
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def stage_seconds(data: Path, bootstrap: int, estimator: str, folder: Path, mcc: bool = True
                  ) -> tuple[float, dict[str, float], dict]:
    """One run and its outputs in this process, with every stage timed; (total, stages, run timings)."""
    from simulator.config import parse_config
    from simulator.engine.execution import Execution
    from simulator.workflows import run as workflow

    config = parse_config(config_table(bootstrap, estimator, mcc=mcc))
    with timed_stages() as seconds:
        start = time.perf_counter()
        result = workflow.run(config, data, execution=Execution(engine="local"))
        workflow.write_run_outputs(result, config, data, "bench", folder / f"stages_b{bootstrap}", overwrite=True)
        total = time.perf_counter() - start
    return total, dict(seconds), result.timings


def read_seconds(data: Path, bootstrap: int, estimator: str, mcc: bool = True) -> tuple[float, list[str], int]:
    """Polars reading the plan's columns from the same files (best of three), the columns, and the rows."""
    import polars as pl

    from simulator.config import parse_config
    from simulator.data.load import dataset_files, open_source, scan_dataset
    from simulator.plan.compiled import compile_plan
    from simulator.plan.changes import with_changes

    config = parse_config(config_table(bootstrap, estimator, mcc=mcc))
    schema = config.data.schema()
    scan = scan_dataset(open_source(str(data), schema), schema)
    names = scan.collect_schema().names()
    plan = with_changes(compile_plan(config, scan), names, schema.resolved_scores(names), config.segments)
    columns = sorted(plan.columns)
    files = dataset_files(data)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        frame = pl.scan_parquet(files).select(columns).collect()
        best = min(best, time.perf_counter() - start)
    return best, columns, frame.height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--bootstrap", type=int, default=0, help="also time B replicates, against the analytic command")
    parser.add_argument("--estimator", default="snipw")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each command; the best counts")
    parser.add_argument("--tree", type=Path, help="run another checkout's code (on PYTHONPATH), e.g. an older commit")
    parser.add_argument("--no-stages", action="store_true", help="skip the in-process per-stage run")
    parser.add_argument("--bootstrap-stages", action="store_true", help="also time the stages with the bootstrap")
    parser.add_argument("--no-mcc", action="store_true", help="the earlier segments, without mcc (see SEGMENTS_NO_MCC)")
    parser.add_argument("--against", type=Path, help="another checkout: its command and this one's alternate, "
                                                     "each after a read of its own (before/after under one load)")
    args = parser.parse_args()
    if args.tree is not None:  # the stages run in this process: import that tree's modules
        sys.path.insert(0, str(args.tree))
    data = args.data.resolve()
    mcc = not args.no_mcc
    read, columns, rows = read_seconds(data, 0, args.estimator, mcc)
    print(f"rows {rows:,}; {len(columns)} columns ({', '.join(columns)}); polars read {read:.3f} s (best of 3)")
    startup = startup_seconds(args.tree)
    print(f"start-up (policysim --version, fresh process): {startup:.2f} s")
    if args.against is not None:
        return alternate(data, args, mcc)
    with tempfile.TemporaryDirectory(prefix="bench_run_") as tmp:
        folder = Path(tmp)
        runs = {0: [command_seconds(data, 0, args.tree, args.estimator, folder, mcc) for _ in range(args.repeats)]}
        analytic, timings = min(runs[0], key=lambda r: r[0])
        net = analytic - startup
        print(f"analytic command: {analytic:.2f} s wall ({', '.join(f'{t:.2f}' for t, _ in runs[0])}), "
              f"minus start-up {net:.2f} s = {net / read:.1f}x the read (target <= 3x)")
        print("  summary.json timings: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))
        if args.bootstrap:
            boot = [command_seconds(data, args.bootstrap, args.tree, args.estimator, folder, mcc)
                    for _ in range(args.repeats)]
            best, btimings = min(boot, key=lambda r: r[0])
            print(f"bootstrap={args.bootstrap} command: {best:.2f} s wall, minus start-up {best - startup:.2f} s = "
                  f"{(best - startup) / net:.2f}x the analytic command (target <= 5x)")
            print("  summary.json timings: " + ", ".join(f"{k} {v:.2f}" for k, v in btimings.items()))
        if not args.no_stages:
            for bootstrap in (0, args.bootstrap) if args.bootstrap and args.bootstrap_stages else (0,):
                total, stages, _ = stage_seconds(data, bootstrap, args.estimator, folder, mcc)
                print(f"stages in this process, bootstrap={bootstrap}: total {total:.2f} s (run + outputs)")
                for label, _, _ in STAGES:
                    if label in stages:
                        print(f"  {label:<30} {stages[label]:7.2f} s  {stages[label] / read:6.1f}x read")


def alternate(data: Path, args: argparse.Namespace, mcc: bool) -> None:
    """This code's command and `args.against`'s, alternately, each next to a read and a start-up of its own.

    With `--bootstrap B`, each tree runs the analytic command and then the one with B replicates, and
    the ratio of the two is printed per tree and round.

    On a shared machine the load moves by 2-3x within minutes: a pair measured back to back is
    the comparison that holds (each ratio to its own read, and the two commands' ratio).
    """
    import polars as pl

    from simulator.data.load import dataset_files

    files, columns = dataset_files(data), read_seconds(data, 0, args.estimator, mcc)[1]

    def read() -> float:
        start = time.perf_counter()
        pl.scan_parquet(files).select(columns).collect()
        return time.perf_counter() - start

    trees: dict[str, Path | None] = {"this": None, "against": args.against}
    with tempfile.TemporaryDirectory(prefix="bench_run_") as tmp:
        for round_ in range(args.repeats):
            for label, tree in trees.items():
                baseline = min(read() for _ in range(2))
                startup = startup_seconds(tree)
                nets = []
                for bootstrap in (0, args.bootstrap) if args.bootstrap else (0,):  # with B: its analytic run too
                    seconds, timings = command_seconds(data, bootstrap, tree, args.estimator, Path(tmp), mcc)
                    nets.append(seconds - startup)
                    print(f"round {round_ + 1} {label:>7} bootstrap={bootstrap}: read {baseline:.2f} s, start-up "
                          f"{startup:.2f} s, command {seconds:.2f} s, minus start-up {nets[-1]:.2f} s = "
                          f"{nets[-1] / baseline:.1f}x the read; " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()),
                          flush=True)
                if args.bootstrap:
                    print(f"round {round_ + 1} {label:>7}: bootstrap={args.bootstrap} / analytic = "
                          f"{nets[1] / nets[0]:.2f}x (target <= 5x)", flush=True)


if __name__ == "__main__":
    main()
