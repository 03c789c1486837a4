"""Choosing from estimates: objectives, recommendations, frontiers.

- `objective` — an objective with constraints, and the point of a sweep it chooses (and why);
- `recommend` — a sweep's recommendation and how often the bootstrap replicates would choose it;
- `segment_choice` — the best point per value of one column, combined into one policy;
- `frontier` — the Pareto-efficient points of a sweep.
"""
