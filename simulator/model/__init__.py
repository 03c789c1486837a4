"""What a logged payment is worth (SPEC §3), and what the doubly robust estimator predicts.

- `value` — the value model: per-row value columns (counts and money) and the metrics built on them;
- `direct` — the DR outcome model: per (score bin, action) means of every value column, fitted on the driver;
- `crossfit` — its folds by a hash of `transaction_id` and the out-of-fold, shrunk tables;
- `maturity` — the dispute-delay curve that develops immature fraud labels (`immature_labels = "develop"`).
"""
