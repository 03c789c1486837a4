"""Compile the shard kernel's functions once, at install time: `python -m simulator.stats.warm`.

numba compiles each compiled function (`simulator.stats.kernel`, the policies' ladders) on
its first call with a new signature and caches the machine code (`cache=True`). A clean
clone has no cache, so its first run would pay the compilation (10-30 s on two loaded
cores) inside whatever it runs first: the test suite, a demo, a benchmark. The Makefile runs
this module after installing the environment: shard statistics and a merge of a small
random log (`small_log`), with the policy kinds, segment kinds and decision changes of the benchmark's
config and a row value of `configs/pricing.toml`, so the signatures the engine uses are
compiled and cached before anything is timed. Running it again only loads the cache.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl

from simulator.config import parse_config
from simulator.plan.changes import with_changes
from simulator.plan.compiled import compile_plan
from simulator.plan.moments import needed_sums
from simulator.stats.shard import merge_all, shard_stats

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


def small_log(rows: int, seed: int = 0) -> pl.DataFrame:
    """A log of `rows` random payments with the SPEC §2 columns, types and null pattern (no model behind it)."""
    rng = np.random.default_rng(seed)
    actions = np.array(["allow", "challenge", "block"])
    probs = rng.dirichlet([8.0, 1.0, 1.0], rows)
    action = (rng.random(rows)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1).clip(0, 2)
    seconds = np.sort(rng.integers(0, 150 * 86_400, rows))
    authorized = np.where(action == 2, None, rng.random(rows) < 0.9)
    fraud = np.where(authorized == True, rng.random(rows) < 0.05, None)  # noqa: E712 - None where not authorized
    lost = np.where(fraud == True, rng.random(rows) < 0.8, None)  # noqa: E712
    log = pl.DataFrame({
        "transaction_id": [f"w{i}" for i in range(rows)], "_seconds": seconds,
        "amount": np.round(rng.lognormal(3.6, 1.0, rows) + 0.5, 2), "action": actions[action],
        "propensity": probs[np.arange(rows), action], "authorized": authorized.tolist(),
        "fraud_dispute": fraud.tolist(), "dispute_lost": lost.tolist(),
        "fraud_score": rng.random(rows), "auth_score": rng.random(rows),
        "card_country": rng.choice(["FR", "DE", "US", "BR"], rows), "card_brand": rng.choice(["visa", "mastercard"], rows),
        "card_funding": rng.choice(["credit", "debit", "prepaid"], rows), "mcc": rng.choice(["5411", "5812", "7995"], rows),
        "channel": rng.choice(["web", "app"], rows),
        **{f"logging_prob_{a}": probs[:, k] for k, a in enumerate(actions)},
    }, schema_overrides={"authorized": pl.Boolean, "fraud_dispute": pl.Boolean, "dispute_lost": pl.Boolean})
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    log = log.with_columns(created_at=pl.lit(start).dt.cast_time_unit("us") + pl.duration(seconds=pl.col("_seconds")))
    return log.drop("_seconds").with_columns(
        disputed_at=pl.when(pl.col("fraud_dispute")).then(pl.col("created_at") + timedelta(days=30)))


def warm(rows: int = 4000) -> float:
    """Run the compiled paths once on a small generated log; returns the seconds it took."""
    start = time.perf_counter()
    log = small_log(rows)
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
