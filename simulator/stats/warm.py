"""Compile the shard kernel's functions once, at install time: `python -m simulator.stats.warm`.

numba compiles each compiled function (`simulator.stats.kernel`, the policies' ladders) on
its first call with a new signature and caches the machine code (`cache=True`). A clean
clone has no cache, so its first run would pay the compilation (10-20 s on two loaded
cores) inside whatever it runs first: the test suite, a demo, a benchmark. The Makefile runs
this module after installing the environment: shard statistics and a merge of a small
generated log, with the policy kinds, segment kinds and decision changes of the benchmark's
config and a row value of `configs/pricing.toml`, so the signatures the engine uses are
compiled and cached before anything is timed. Running it again only loads the cache.
"""

from __future__ import annotations

import time

from simulator.config import parse_config
from simulator.plan.changes import with_changes
from simulator.plan.compiled import compile_plan
from simulator.plan.moments import needed_sums
from simulator.stats.shard import merge_all, shard_stats
from simulator.synthetic.fresh import fresh_population

_POLICIES = [
    {"name": "t", "kind": "threshold", "score": "fraud_score", "challenge_above": 0.05, "block_above": 0.4},
    {"name": "prepaid", "kind": "segment_threshold", "score": "fraud_score", "column": "card_funding",
     "default": {"challenge_above": 0.05, "block_above": 0.4},
     "thresholds": {"prepaid": {"challenge_above": 0.02, "block_above": 0.2}}},
    {"name": "rules", "kind": "rules", "fallback": "allow",
     "rules": [{"when": "amount >= 1000 AND fraud_score >= 0.2", "action": "block"}]},
    {"name": "explore", "kind": "epsilon", "epsilon": 0.05,
     "base": {"kind": "threshold", "score": "fraud_score", "challenge_above": 0.05, "block_above": 0.4}},
]
_SEGMENTS = {"by": [["card_country"], ["card_country", "card_brand"], ["amount"]],
             "bands": {"amount": {"edges": [0, 10, 50, 200, 1000]}}}
_ROW_VALUE = {"values": {"cost": "amount * authorized * CASE card_funding WHEN 'debit' THEN 0.012 ELSE 0.021 END"}}


def warm(rows: int = 4000) -> float:
    """Run the compiled paths once on a generated log; returns the seconds it took."""
    start = time.perf_counter()
    log, _ = fresh_population(rows, 0)
    for table in ({"segments": _SEGMENTS, "policies": _POLICIES},
                  {"segments": _SEGMENTS, "policies": _POLICIES[:1], "value_model": _ROW_VALUE}):
        config = parse_config(table)
        plan = compile_plan(config, log.lazy())
        plan = with_changes(plan, log.columns, config.data.schema().resolved_scores(log.columns), config.segments)
        needs = needed_sums(plan)
        half = log.height // 2
        merge_all([shard_stats(log[:half], plan, needs), shard_stats(log[half:], plan, needs)])
    return time.perf_counter() - start


if __name__ == "__main__":
    print(f"shard kernel compiled and cached in {warm():.1f} s")
