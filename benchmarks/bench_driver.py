"""The driver's work that does not depend on rows (issue #15 a): finalize, decision changes, examples, report.

The shards' statistics of `bench_run.py`'s config are computed once (this checkout's code, local
engine) and pickled; then each checkout finalizes the same statistics in a fresh process,
alternately (`--against` another checkout, e.g. `git archive` of an older commit, run from
`PYTHONPATH`), and prints each stage's CPU and wall seconds. On the same statistics the two
checkouts' results and changes can be compared bit for bit (`--compare`), the doubly robust
estimator included (end to end, its cell sums differ in the last bits between runs: polars
sums in parallel). CPU seconds move less than wall seconds with the other sessions' load.

    .venv/bin/python benchmarks/bench_driver.py /tmp/bench10m/transactions --against /tmp/before --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import config_table  # noqa: E402


def capture(data: Path, estimator: str, target: Path) -> dict[str, float]:
    """Plan and shard statistics of the bench config on `data`, pickled to `target`; their timings."""
    from simulator.config import parse_config
    from simulator.engine.execution import Execution
    from simulator.workflows import run as workflow

    config = parse_config(config_table(0, estimator))
    result = workflow.run(config, data, execution=Execution(engine="local"))
    with target.open("wb") as file:
        pickle.dump((config, result.plan, result.stats), file)
    return result.timings


def _timed(work: Callable[[], Any]) -> tuple[Any, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    out = work()
    return out, time.process_time() - cpu, time.perf_counter() - wall


def stages(captured: Path, out: Path | None) -> dict[str, list[float]]:
    """[CPU, wall] seconds of each driver stage on the captured statistics, in the checkout on the path.

    Works with checkouts before and after the shared totals (`segment_evaluation`) and the lazy
    `RunResult.changes`; `out` keeps the results and changes (Parquet) for `--compare`.
    """
    from simulator.estimate import results as finalizing
    from simulator.estimate.changes import finalize_changes, finalize_examples
    from simulator.estimate.development import with_development_uncertainty
    from simulator.report.run_report import write_run_report
    from simulator.workflows.run import RunResult

    with captured.open("rb") as file:
        config, plan, stats = pickle.load(file)
    estimation, shared = config.estimation, hasattr(finalizing, "segment_evaluation")
    seconds: dict[str, list[float]] = {}
    evaluation = None
    if shared:
        evaluation, *seconds["totals"] = _timed(lambda: finalizing.segment_evaluation(stats, plan, estimation))
    extra = {"evaluation": evaluation} if shared else {}
    results, *seconds["finalize"] = _timed(lambda: with_development_uncertainty(
        finalizing.finalize(stats, plan, estimation, **extra), plan, estimation.confidence))
    changes, *seconds["changes"] = _timed(lambda: finalize_changes(stats, plan, estimation, results, **extra))
    examples, *seconds["examples"] = _timed(lambda: finalize_examples(stats, plan))
    made = {"changes_from": lambda: changes} if shared else {"changes": changes}
    result = RunResult(results=results, plan=plan, stats=stats, data=None, examples=examples, **made)
    with tempfile.TemporaryDirectory() as folder:
        _, *seconds["report"] = _timed(lambda: write_run_report(result, Path(folder)))
    if out is not None:
        results.write_parquet(out / "results.parquet")
        changes.write_parquet(out / "changes.parquet")
    return seconds


def child(captured: Path, tree: Path | None, out: Path | None) -> dict[str, list[float]]:
    """`stages` in a fresh process, from `tree` (on PYTHONPATH) or this checkout."""
    env = dict(os.environ) | ({"PYTHONPATH": str(tree)} if tree is not None else {})
    args = [sys.executable, "-P", __file__, "--stages", str(captured)] + (["--out", str(out)] if out else [])
    done = subprocess.run(args, env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(left: Path, right: Path) -> str:
    """Whether two checkouts' results and changes of the same statistics are identical to the bit."""
    import polars as pl
    from polars.testing import assert_frame_equal

    for name in ("results.parquet", "changes.parquet"):
        assert_frame_equal(pl.read_parquet(left / name), pl.read_parquet(right / name), check_exact=True)
    return "results and changes identical to the bit"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="?")
    parser.add_argument("--against", type=Path, help="another checkout, run alternately with this one")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--estimator", default="snipw")
    parser.add_argument("--compare", action="store_true", help="check both checkouts' tables are the same bits")
    parser.add_argument("--stages", type=Path, help=argparse.SUPPRESS)  # the child: stages of a captured run
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stages is not None:
        print(json.dumps(stages(args.stages, args.out)))
        return
    with tempfile.TemporaryDirectory(prefix="bench_driver_") as tmp:
        folder = Path(tmp)
        timings = capture(args.data.resolve(), args.estimator, folder / "captured.pkl")
        print("statistics captured: " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()), flush=True)
        trees: dict[str, Path | None] = {"this": None} | ({"against": args.against} if args.against else {})
        for round_ in range(args.repeats):
            for label, tree in trees.items():
                out = folder / label if args.compare and round_ == 0 else None
                if out is not None:
                    out.mkdir()
                seconds = child(folder / "captured.pkl", tree, out)
                total = [sum(v[i] for v in seconds.values()) for i in (0, 1)]
                print(f"round {round_ + 1} {label:>7}: " + " | ".join(
                    f"{k} {cpu:.2f} cpu ({wall:.2f} wall)" for k, (cpu, wall) in seconds.items())
                    + f" | driver {total[0]:.2f} cpu ({total[1]:.2f} wall)", flush=True)
        if args.compare and args.against is not None:
            print(compare(folder / "this", folder / "against"))


if __name__ == "__main__":
    main()
