"""A shard's mergeable sums (SPEC §5: all statistics are sums, so shards combine in any order).

- `cells` — grouping a shard's rows into statistics cells (dense keys, compacted);
- `units` — rows with the same contribution to every sum, grouped before any sum is taken;
- `shard` — `shard_stats(frame, plan, needs) -> Stats`: the per-cell linear, cross and design sums; `Stats.merge`;
- `bootstrap` — seeded Poisson replicate weights from the transaction id, and their per-cell sums;
- `binned` — a sweep's bootstrap sums, per (segment, score bin, logged action);
- `changes` — decision changes: per-row policies' transition sums and each shard's largest changed payments;
- `kernel` — the compiled loops of the hot path (numba): grouping, unit moments, cell sums, example candidates, the merge;
- `warm` — compiles and caches the kernel at install time (`python -m simulator.stats.warm`, run by the Makefile).
"""
