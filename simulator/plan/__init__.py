"""The compiled plan: everything a shard computes, decided once on the driver.

- `compiled` — `compile_plan(config, data)`: policies built, segments planned, as-of date and the DR model fixed;
- `grid` — a threshold sweep's grid: its points and the score bins they share (the grid policy);
- `moments` — which sums the estimators need, and how each policy's weight enters them (terms, bases, coefficients);
- `strata` — the strata of the default estimator (baseline × candidate action) and the terms they restrict;
- `direct_terms` — the DR estimator's per-row score terms (its variance from per-row DR scores);
- `changes` — which decision changes a run collects: example payments per transition and their columns.
"""
