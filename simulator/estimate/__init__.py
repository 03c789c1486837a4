"""From merged sums to estimates (SPEC §5, §9), on the driver.

- `totals` — the `Totals` protocol and its single-policy answer: weighted totals and cross sums per segment;
- `grid_totals` — the same protocol for every point of a threshold grid at once, by prefix sums over score bins;
- `linearised` — an estimate with its gradient over weighted totals;
- `estimators` — IPW, global SNIPW and DR over totals, ratios, and their delta-method variances;
- `strata` — the default estimator, SNIPW within strata of what baseline and candidate do;
- `rare` — its variance floor (rare fraud, heavy-tailed amounts) and diagnostics (`few_events`, explored rows);
- `direct_cross` — DR's cross sums from per-row scores;
- `development` — the developed labels' curve uncertainty added to fraud intervals;
- `intervals` — confidence intervals from an estimate and its uncertainty;
- `support` — how much of a policy's mass the logging policy never explored;
- `results` — the results table: estimates, intervals, paired deltas, diagnostics and flags, for any `Totals`;
- `grid_results` — the same table for every grid point, with the grid's bootstrap evaluated in blocks;
- `changes` — decision changes: rows, volume and each transition's share of the deltas, and the example payments;
- `sizing` — a paired delta's variance split by the rows it rests on (explored, production's own, the rest).
"""
