"""Bias of `immature_labels` modes against the generator's eventual fraud, over seeds (docs/estimation.md).

For each seed: a generated log (`rows` payments, a year, 10 % exploration) and the
same payments with every eventual dispute known (the oracle); each mode's
fraud totals for the logging policy and a candidate against the oracle over the
same rows. Prints develop's error relative and in censoring standard errors, and
exclude's and include's relative errors. Reuses the fixture of
tests/simulator/estimate/test_label_development.py.

    PYTHONPATH=. .venv/bin/python benchmarks/label_development.py 400000 12,13,14
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from simulator.plan.compiled import compile_plan
from tests.simulator.estimate import test_label_development as fixture

METRICS = ("fraud_count", "fraud_volume", "fraud_loss", "fraud_rate_bps")


class _Temp:
    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=name))


def main() -> None:
    rows, seeds = int(sys.argv[1]), [int(s) for s in sys.argv[2].split(",")]
    spec = fixture.GenerateSpec
    for seed in seeds:
        fixture.GenerateSpec = lambda seed_=seed, **kw: spec(**{**kw, "rows": rows, "seed": seed_})
        log, eventual, as_of = fixture.logs._get_wrapped_function()(_Temp())
        developed = fixture._config(as_of, "develop")
        dev = compile_plan(developed, log.lazy()).development
        est = fixture._estimates(log, developed)
        oracle = fixture._estimates(eventual, fixture._config(as_of, "exclude", dev.min_age_days))
        exclude = fixture._estimates(log, fixture._config(as_of, "exclude"))
        oracle90 = fixture._estimates(eventual, fixture._config(as_of, "exclude"))
        include = fixture._estimates(log, fixture._config(as_of, "include"))
        oracle_all = fixture._estimates(eventual, fixture._config(as_of, "include"))
        for policy in ("logged", "p"):
            se = fixture._censoring_se(log, developed, policy)
            for m in METRICS:
                error = est[policy, m] - oracle[policy, m]
                z = f"{error / se[m]:+.2f} se" if m in se else ""
                print(f"seed {seed} {policy:6} {m:14} develop {error / oracle[policy, m]:+.4f} ({z})  "
                      f"exclude {exclude[policy, m] / oracle90[policy, m] - 1:+.4f}  "
                      f"include {include[policy, m] / oracle_all[policy, m] - 1:+.4f}")
        print(f"seed {seed}: min age {dev.min_age_days} days, curve relative se {np.sqrt(dev.relative_variance):.4f}")


if __name__ == "__main__":
    main()
