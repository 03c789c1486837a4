"""policysim against Open Bandit Pipeline on bootstrap intervals (issue #15 c): same rows, same policy, B = 200.

What each side computes, on the same generated log (default 2 M rows):

- OBP 0.5.7 (`obp.ope.OffPolicyEvaluation` with `SelfNormalizedInverseProbabilityWeighting`,
  `estimate_intervals(n_bootstrap_samples=200)`): the self-normalised IPW value of one
  threshold policy with its bootstrap percentile interval, for 5 metrics (authorized count,
  authorized volume, fraud count, fraud volume, net value; the reward of a row is the
  metric's value under the logged outcome, from policysim's value model) × 11 segments
  (the 6 card brands, 3 card fundings and 2 channels; one `OffPolicyEvaluation` on each
  segment's rows). 55 intervals; it reports means per row, policysim totals (the same
  estimate times the rows). OBP's inputs are prepared here and handed over as .npy files;
  its time counts its estimation calls only (not its import, nor loading the arrays).
- policysim (`run`, in this process, local engine): the same threshold policy, the baseline
  (`production`) and the logging policy, every metric (18) with its paired delta against
  the baseline, each with bootstrap intervals (B = 200, Poisson, stratified SNIPW) and
  diagnostics, for ALL and the same 11 segments, from the Parquet files: validation,
  plan, statistics, finalize and decision changes all counted.

OBP declares Python < 3.11 and pins numpy 1.23 and pandas 1.5; it runs on 3.11 with
numpy 1.26. It must never enter the project's environment: give the python of a
throwaway venv, e.g.

    python3.11 -m venv /tmp/obp-venv
    /tmp/obp-venv/bin/pip install numpy==1.26.4 pandas==1.5.3 scikit-learn==1.5.2 scipy==1.13.1 \\
        matplotlib seaborn tqdm pyyaml torch       # torch: CPU wheel (`pip download torch`, or a local one)
    /tmp/obp-venv/bin/pip install --no-deps --ignore-requires-python obp==0.5.7
    .venv/bin/policysim generate --rows 2000000 --files 2 --out /tmp/bench2m
    .venv/bin/python benchmarks/bench_obp.py /tmp/bench2m/transactions --obp-python /tmp/obp-venv/bin/python

`--segments-of-run` adds the issue's run config without `mcc` (10 policies × `card_country`,
`card_country × card_brand`, amount bands, B = 200) as a second policysim figure; with `mcc` a
shard's replicates would take ~23 GiB (see `bench_run.SEGMENTS_NO_MCC`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run import config_table  # noqa: E402

from simulator.config import parse_config  # noqa: E402
from simulator.data.load import open_source, scan_dataset  # noqa: E402
from simulator.engine.execution import Execution  # noqa: E402
from simulator.schema import ACTION, PROPENSITY  # noqa: E402
from simulator.workflows.run import run  # noqa: E402

POLICY = {"name": "candidate", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.05,
          "block_above": 0.4}
METRICS = {"authorized_count": "authorized", "authorized_volume": "authorized_volume", "fraud_count": "fraud",
           "fraud_volume": "fraud_volume", "net_value": "net_value"}  # metric: its per-row value column
SEGMENT_COLUMNS = ("card_brand", "card_funding", "channel")  # 6 + 3 + 2 = 11 segments
BOOTSTRAP = 200

OBP_SCRIPT = r'''
import json, sys, time
import numpy as np
from obp.ope import OffPolicyEvaluation, SelfNormalizedInverseProbabilityWeighting

folder, bootstrap = sys.argv[1], int(sys.argv[2])
load = lambda name: np.load(f"{folder}/{name}.npy")
action, pscore, action_dist, rewards = load("action"), load("pscore"), load("action_dist"), load("rewards")
segments = json.loads(open(f"{folder}/segments.json").read())
codes = {column: load(f"segment_{column}") for column in segments}
intervals, seconds = [], 0.0
for column, labels in segments.items():
    for code, label in enumerate(labels):
        rows = np.flatnonzero(codes[column] == code)
        for metric in range(rewards.shape[1]):
            start = time.perf_counter()
            feedback = {"n_rounds": len(rows), "n_actions": action_dist.shape[1], "action": action[rows],
                        "reward": rewards[rows, metric], "pscore": pscore[rows], "position": None,
                        "context": np.zeros((len(rows), 1))}  # required by the class; SNIPW does not read it
            ope = OffPolicyEvaluation(bandit_feedback=feedback,
                                      ope_estimators=[SelfNormalizedInverseProbabilityWeighting()])
            found = ope.estimate_intervals(action_dist=action_dist[rows], n_bootstrap_samples=bootstrap,
                                           random_state=12345)
            seconds += time.perf_counter() - start
            intervals.append({"segment": f"{column}={label}", "metric": metric, **found["snipw"]})
print(json.dumps({"seconds": seconds, "intervals": intervals}))
'''


def obp_inputs(data: Path, folder: Path) -> int:
    """OBP's arrays for the log at `data`, as .npy files in `folder`; the rows."""
    config = parse_config({"policies": [POLICY]})
    schema = config.data.schema()
    frame = scan_dataset(open_source(str(data), schema), schema).collect()
    actions = config.data.actions
    from policies.registry import PolicyContext, build_policy

    policy = build_policy({k: v for k, v in POLICY.items() if k != "name"}, PolicyContext(actions=actions, columns=frozenset(frame.columns),
                                                     score_ranges={}), where="bench")
    np.save(folder / "action", frame[ACTION].replace_strict({a: i for i, a in enumerate(actions)},
                                                            return_dtype=pl.Int64).to_numpy())
    np.save(folder / "pscore", frame[PROPENSITY].to_numpy())
    np.save(folder / "action_dist", policy.probabilities(frame)[:, :, None])
    values = config.values().evaluate(frame, None, names=tuple(METRICS.values()))
    np.save(folder / "rewards", np.column_stack([values[column].to_numpy() for column in METRICS.values()]))
    segments = {}
    for column in SEGMENT_COLUMNS:
        labels = sorted(frame[column].unique().to_list())
        np.save(folder / f"segment_{column}", frame[column].replace_strict(
            {label: i for i, label in enumerate(labels)}, return_dtype=pl.Int64).to_numpy())
        segments[column] = labels
    (folder / "segments.json").write_text(json.dumps(segments))
    return frame.height


def run_obp(python: str, folder: Path) -> dict:
    """OBP's 55 bootstrap intervals in its own interpreter: its estimation seconds and the intervals."""
    script = folder / "obp_intervals.py"
    script.write_text(OBP_SCRIPT)
    done = subprocess.run([python, str(script), str(folder), str(BOOTSTRAP)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"OBP failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def policysim_seconds(data: Path, table: dict) -> tuple[float, int, dict]:
    """`run` of `table` on the files at `data`, in this process (local engine): seconds, result rows, timings."""
    config = parse_config(table)
    start = time.perf_counter()
    result = run(config, data, execution=Execution(engine="local"))
    return time.perf_counter() - start, result.results.height, result.timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--obp-python", help="python of a throwaway venv with obp 0.5.7 (needed unless --policysim-only)")
    parser.add_argument("--segments-of-run", action="store_true", help="also time the issue's 10-policy run config")
    parser.add_argument("--policysim-only", action="store_true", help="time policysim alone (e.g. another --tree's)")
    args = parser.parse_args()
    same = {"segments": {"by": [[column] for column in SEGMENT_COLUMNS]}, "policies": [POLICY],
            "estimation": {"bootstrap": BOOTSTRAP}}
    seconds, results, timings = policysim_seconds(args.data, same)
    print(f"policysim, 1 policy (+ baseline, logged) x 12 segments x every metric with deltas, B={BOOTSTRAP}: "
          f"{seconds:.1f} s ({results:,} result rows; " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()) + ")")
    if args.segments_of_run:
        wide, wide_results, wide_timings = policysim_seconds(args.data, config_table(BOOTSTRAP, mcc=False))
        print(f"policysim, the issue's run config without mcc (10 policies x 3 segmentations), B={BOOTSTRAP}: {wide:.1f} s "
              f"({wide_results:,} result rows; " + ", ".join(f"{k} {v:.1f}" for k, v in wide_timings.items()) + ")")
    if args.policysim_only:
        return
    with tempfile.TemporaryDirectory(prefix="bench_obp_") as tmp:
        rows = obp_inputs(args.data, Path(tmp))
        obp = run_obp(args.obp_python, Path(tmp))
    print(f"OBP 0.5.7 SNIPW, {len(obp['intervals'])} intervals (5 metrics x 11 segments), B={BOOTSTRAP}, "
          f"{rows:,} rows: {obp['seconds']:.1f} s of estimation")
    print(f"OBP / policysim = {obp['seconds'] / seconds:.1f}x (target >= 10x)")
    if args.segments_of_run:
        print(f"OBP / policysim (issue's run config) = {obp['seconds'] / wide:.1f}x")


if __name__ == "__main__":
    main()
