"""Cost of a value model written as SQL expressions (issue #15), against the default preset in the same run.

Three threshold policies × `card_country`, `card_funding`, every metric, local engine. Variants: the default
preset (tabulated values); `cost` replaced by a tabulable expression (action, amount and outcomes only);
`cost` by card funding (a row value reading another column); an amount tier (not linear in the amount, so its
table is contradicted by the data and it loses the table's shape). Prints seconds (best of `--repeats`) and
the ratio to the default.

    .venv/bin/policysim generate --rows 1000000 --files 2 --out /tmp/bench1m
    .venv/bin/python benchmarks/bench_values.py /tmp/bench1m/transactions
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from simulator import parse_config, run
from simulator.engine.execution import Execution

POLICIES = [{"name": f"t{i}", "kind": "threshold", "score": "fraud_score", "challenge_above": c, "block_above": b}
            for i, (c, b) in enumerate([(0.02, 0.3), (0.03, 0.35), (0.05, 0.5)])]
SEGMENTS = {"by": [["card_country"], ["card_funding"]]}
BY_FUNDING = ("amount * authorized * CASE card_funding WHEN 'debit' THEN 0.012 WHEN 'prepaid' THEN 0.018 "
              "ELSE 0.021 END + 0.30 * (1 - blocked) + 0.05 * challenged")
VARIANTS: dict[str, dict] = {
    "default preset": {},
    "tabulable cost": {"value_model": {"values": {
        "cost": "0.025 * amount * authorized + 0.30 * (1 - blocked) + 0.05 * challenged"}}},
    "cost by funding": {"value_model": {"values": {"cost": BY_FUNDING}}},
    "amount tier": {"value_model": {"values": {"cost": "CASE WHEN amount > 100 THEN 1.0 ELSE 0.5 END * authorized"}}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    base = None
    for name, extra in VARIANTS.items():
        config = parse_config({"policies": POLICIES, "segments": SEGMENTS, **extra})
        best, result = float("inf"), None
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = run(config, args.data, execution=Execution(engine="local"))
            best = min(best, time.perf_counter() - start)
        base = base or best
        assert result is not None
        print(f"{name:16s} {best:6.2f} s  ×{best / base:4.2f}  stats {result.timings['stats_s']:.2f} s  "
              f"finalize {result.timings['finalize_s']:.2f} s  unverified={sorted(result.plan.values.unverified)}",
              flush=True)


if __name__ == "__main__":
    main()
