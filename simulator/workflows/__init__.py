"""What the commands and the API do, as wiring of the stages (no statistics of their own).

- `run` — validate, plan, compute shard statistics, finalize: the results table of a config's policies;
- `sweep` — a grid of candidates evaluated in one pass, with a recommendation;
- `review` — a candidate against its baseline, checked against guardrails;
- `plan` — the days of traffic and exploration share that would decide each guardrail, and their cost;
- `frames` — notebook conveniences: diagnostics per segment, a sweep on an in-memory frame.
"""
