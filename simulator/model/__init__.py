"""What a logged payment is worth (SPEC §3), and what the doubly robust estimator predicts.

- `value` — the value model: per-row value columns (counts and money) and the metrics built on them;
- `direct` — the DR outcome model: per (score bin, action) means of every value column, fitted on the driver.
"""
