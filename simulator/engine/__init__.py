"""Running the statistics stage over shards, here or on a Ray cluster (SPEC §7).

- `shards` — a dataset cut into shards of whole row groups, `run_shard(shard, job)` (statistics, and the checks of its
  rows when the job carries them), the ordered merge, the local engine;
- `ray_engine` — the same shards as Ray tasks on a started or joined cluster, with retries;
- `execution` — `Execution` (engine, address, CPUs, shard size, progress callbacks) and `execute(plan, ...)`,
  which runs a plan's shards on the chosen engine and returns the merged statistics with their timings.
"""
