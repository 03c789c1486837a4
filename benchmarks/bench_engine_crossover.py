"""Below how many rows is `--engine local` faster than the default Ray engine, end to end?

Times the whole command a user runs, `policysim run CONFIG --data D --out O
--engine {local,ray}`, each in a fresh process (imports, Ray start-up and
shutdown, validation, statistics, writing), on generated logs of increasing
size, and prints the Ray/local ratio per size from the same run. The crossover
is where straight lines fitted to each engine's times (seconds = fixed + per-row
cost × rows) meet; when Ray's per-row cost is not lower on this machine there is
none. The minimum of `--repeats` runs is kept (the machine is shared and noisy).

    .venv/bin/python benchmarks/bench_engine_crossover.py
    .venv/bin/python benchmarks/bench_engine_crossover.py --sizes 300000,3000000,10000000,30000000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POLICYSIM = Path(sys.executable).with_name("policysim")
ROWS_PER_FILE = 1_250_000


def generated(rows: int, workdir: Path) -> Path:
    """A generated log of `rows` rows (reused when present)."""
    out = workdir / f"rows{rows}"
    if not (out / "generation.json").exists():
        files = max(1, -(-rows // ROWS_PER_FILE))
        subprocess.run([str(POLICYSIM), "generate", "--rows", str(rows), "--files", str(files), "--seed", "7",
                        "--out", str(out), "--quiet", "--overwrite"], check=True)
    return out / "transactions"


def wall_seconds(config: Path, data: Path, engine: str, cpus: int | None) -> float:
    """Wall time of one `policysim run` in a fresh process."""
    with tempfile.TemporaryDirectory(prefix="crossover-") as out:
        command = [str(POLICYSIM), "run", str(config), "--data", str(data), "--out", out, "--engine", engine, "--quiet"]
        if engine == "ray" and cpus is not None:
            command += ["--num-cpus", str(cpus)]
        began = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        return time.perf_counter() - began


def crossover(rows: list[int], local: list[float], ray: list[float]) -> tuple[str, tuple[float, float], tuple[float, float]]:
    """Where the fitted lines meet, and each engine's (fixed seconds, seconds per million rows)."""
    fit_local = np.polyfit(np.asarray(rows, float) / 1e6, local, 1)
    fit_ray = np.polyfit(np.asarray(rows, float) / 1e6, ray, 1)
    (slope_l, fixed_l), (slope_r, fixed_r) = fit_local, fit_ray
    if slope_r >= slope_l:
        text = "none: Ray's per-row cost is not lower here, so --engine local is faster at every size"
    else:
        text = f"{(fixed_r - fixed_l) / (slope_l - slope_r):.1f} M rows"
    return text, (fixed_l, slope_l), (fixed_r, slope_r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,3000000,10000000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "thresholds.toml")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of Ray's local cluster (default: all)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "policysim-crossover")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; config {args.config.name}; "
          f"minimum of {args.repeats} runs")
    print(f"{'rows':>12} {'local s':>9} {'ray s':>9} {'ray/local':>10}")
    local, ray = [], []
    for rows in sizes:
        data = generated(rows, args.workdir)
        runs = {engine: [wall_seconds(args.config, data, engine, args.num_cpus) for _ in range(args.repeats)]
                for engine in ("local", "ray")}
        local.append(min(runs["local"]))
        ray.append(min(runs["ray"]))
        print(f"{rows:>12,} {local[-1]:>9.1f} {ray[-1]:>9.1f} {ray[-1] / local[-1]:>10.2f}", flush=True)
    text, (fixed_l, slope_l), (fixed_r, slope_r) = crossover(sizes, local, ray)
    print(f"fit: local {fixed_l:.1f} s + {slope_l:.2f} s/M rows; ray {fixed_r:.1f} s + {slope_r:.2f} s/M rows")
    print(f"crossover (ray faster above): {text}; load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
