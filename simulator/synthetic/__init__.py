"""Synthetic payments with a known truth: the demo data and the ground truth estimators are checked against.

- `world` — the fixed world payments are drawn from (countries, brands, merchants, ...);
- `model` — the per-row generative model: scores, potential outcomes of every action;
- `log` — the logging policy with exploration, timestamps and censored disputes;
- `tables` — Arrow tables of a simulated chunk;
- `generate` — `policysim generate`: chunked, seeded, the same bytes for any number of files;
  two scenarios, `cards` (allow / challenge / block, the default) and `review` (a fourth,
  manual-review action);
- `truth` — the true counterfactual value of a policy on generated data, for any action set.
"""
