"""Choosing from estimates: objectives, recommendations, frontiers, guardrails.

- `objective` — the point of a sweep an objective chooses (and why), feasibility of constraints;
- `recommend` — a sweep's recommendation and how often the bootstrap replicates would choose it;
- `segment_choice` — the best point per value of one column, combined into one policy;
- `frontier` — the Pareto-efficient points of a sweep;
- `guardrails` — a review's guardrail × segment outcomes, multiple testing and the verdict;
- `sizing` — the exploration planner's model: a guardrail's interval for other days and exploration shares.

The tables these read (`[sweep] objective`, `[review] guardrails`) are validated with the config
(`simulator.config_tables`).
"""
