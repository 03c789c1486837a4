"""Fresh synthetic populations and their superpopulation truth: how intervals are checked against future traffic.

Shared by `benchmarks/coverage_fresh.py` (the engine's intervals),
`benchmarks/interval_methods.py` (candidate intervals) and the fast coverage
test in `tests/`, so all measure on the very same kind of replication.

What a "fresh population" is: the generator's world (countries, merchants, MCC
amount laws, fraud intercept) is drawn from `world_seed` and held fixed; every
replication draws its rows (features, fraud, scores, outcomes, logging
decisions) from a new row seed. A new `GenerateSpec.seed` would also redraw
the world, i.e. change the superpopulation itself, so it cannot be used to
measure coverage of one fixed truth.

Superpopulation truth of a sum metric for a sample of n rows: n times the
per-row mean of the policy's counterfactual value, the mean taken over a large
population (default 4 M rows) of the same world, generated once and cached
(under /tmp unless told otherwise). Ratio metrics: ratios of those means. Fraud labels are treated
exactly as the estimator treats them (see `docs/research/intervals.md`):
censored at the as-of date and counted only on rows older than
`label_maturity_days` (the engine's default `immature_labels = "exclude"`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from simulator.model.value import DEFAULT_VALUES, VALUES, ValueModel, ValueSet, maturity_cutoff
from simulator.synthetic.generate import GenerateSpec
from simulator.synthetic.log import simulate_chunk
from simulator.synthetic.model import build_model
from simulator.synthetic.tables import ground_truth_table, transactions_table
from simulator.synthetic.truth import counterfactual_log
# --- end of engine internals ---

ACTIONS = ("allow", "challenge", "block")
ALLOW, CHALLENGE, BLOCK = 0, 1, 2
MATURITY_DAYS = 90

# (challenge_above, block_above) on fraud_score; inclusive like the `threshold` policy.
POLICIES: dict[str, tuple[float, float]] = {
    "production": (0.05, 0.4),  # the generator's logging policy without exploration
    "cand_a": (0.02, 0.2),  # benchmarks/coverage_relog.py's candidate
    "cand_b": (0.05, 0.3),  # only blocks more than production (rows in [0.3, 0.4): challenge -> block)
}
BASELINE = "production"
CANDIDATES = ("cand_a", "cand_b")

VALUE_INDEX = {v: j for j, v in enumerate(VALUES)}


def sum_metrics(values: ValueSet = DEFAULT_VALUES) -> tuple[tuple[str, str, str, str], ...]:
    """Sum metrics as (name, value column, weighting, population), as the engine defines them."""
    return tuple((m.name, m.value, m.weighting.value, m.population) for m in values.sums)


def ratio_metrics(values: ValueSet = DEFAULT_VALUES) -> tuple[tuple[str, tuple[str, str], tuple[str, str], float, str], ...]:
    """Ratio metrics as (name, (num value, num weighting), (den value, den weighting), scale, population)."""
    return tuple(
        (r.name, (r.numerator.value, r.numerator.weighting.value), (r.denominator.value, r.denominator.weighting.value),
         r.scale, r.numerator.population)
        for r in values.ratios
    )


# The built-in value model's metrics (the engine's SUM_METRICS and RATIO_METRICS).
SUMS = sum_metrics()
RATIOS = ratio_metrics()


def policy_actions(fraud_score: np.ndarray, name: str) -> np.ndarray:
    """Action code of a threshold policy per row."""
    challenge_above, block_above = POLICIES[name]
    return ((fraud_score >= challenge_above).astype(np.int8) + (fraud_score >= block_above)).astype(np.int8)


@lru_cache(maxsize=4)
def _model(world_seed: int):  # noqa: ANN202 - engine type
    return build_model(world_seed)


def spec(rows: int, world_seed: int = 0, exploration: float = 0.1) -> GenerateSpec:
    return GenerateSpec(rows=rows, files=1, seed=world_seed, exploration=exploration)


def as_of(world_seed: int = 0) -> datetime:
    return spec(1, world_seed).as_of


def fresh_population(rows: int, rep_seed: int, *, world_seed: int = 0, exploration: float = 0.1,
                     lo: int = 0, hi: int | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(log, ground truth) of `rows` payments drawn with row seed `rep_seed` in the world of `world_seed`.

    `lo`, `hi` select a slice of the rows (to build a large population chunk by chunk).
    """
    s = spec(rows, world_seed, exploration)
    model = dataclasses.replace(_model(world_seed), seed=rep_seed)
    chunk = simulate_chunk(model, s.logging_policy(), s.timeline(), lo, rows if hi is None else hi)
    tx = transactions_table(chunk)
    log = pl.from_arrow(tx).with_columns(pl.col(pl.Categorical).cast(pl.String))
    return log, pl.from_arrow(ground_truth_table(chunk, tx.column(0)))


@dataclass(frozen=True, slots=True)
class Labels:
    """Which fraud labels a truth counts: rows at least `maturity_days` old, with the disputes arrived by
    as_of (`immature_labels = "exclude"`) or, `eventual`, every dispute that will arrive (what "develop"
    estimates, on the rows older than its minimum age)."""

    maturity_days: int = MATURITY_DAYS
    eventual: bool = False


EXCLUDE = Labels()


def value_matrix(frame: pl.DataFrame, world_seed: int = 0, value_model: ValueModel | None = None,
                 labels: Labels = EXCLUDE, values: ValueSet | None = None) -> np.ndarray:
    """(rows, len(values.names)) value columns of a value model (default: the built-in one) at each row's action."""
    cutoff = maturity_cutoff(as_of(world_seed), labels.maturity_days)
    chosen = values or ValueSet(value_model or ValueModel())
    return chosen.evaluate(frame, cutoff).to_numpy().astype(np.float64)


def counterfactual_values(log: pl.DataFrame, truth: pl.DataFrame, world_seed: int = 0,
                          labels: Labels = EXCLUDE, values: ValueSet = DEFAULT_VALUES) -> np.ndarray:
    """(actions, rows, values.names): every row's value columns under each action."""
    when = as_of(world_seed)
    return np.stack([value_matrix(counterfactual_log(log, truth, a, when, censored=not labels.eventual), world_seed,
                                  labels=labels, values=values) for a in ACTIONS])


def policy_means(potential: np.ndarray, fraud_score: np.ndarray) -> dict[str, np.ndarray]:
    """Per-row means of each policy's value columns, by weighting: {policy|weighting: (VALUES,)}."""
    rows = np.arange(fraud_score.shape[0])
    out = {"|allowed": potential[ALLOW].mean(axis=0)}
    for name in POLICIES:
        code = policy_actions(fraud_score, name)
        out[f"{name}|target"] = potential[code, rows].mean(axis=0)
        out[f"{name}|blocked"] = (potential[ALLOW] * (code == BLOCK)[:, None]).mean(axis=0)
    return out


def population_means(log: pl.DataFrame, truth: pl.DataFrame, world_seed: int = 0,
                     labels: Labels = EXCLUDE, values: ValueSet = DEFAULT_VALUES) -> dict[str, np.ndarray]:
    """Per-row means of every policy's value columns over this population (its finite-population truth per row)."""
    return policy_means(counterfactual_values(log, truth, world_seed, labels, values), log["fraud_score"].to_numpy())


def _key(rows: int, world_seed: int, labels: Labels, values: ValueSet) -> str:
    extra = () if labels == EXCLUDE else (labels.maturity_days, labels.eventual)
    if values.model != ValueModel() or values.custom:  # the built-in model keeps the key its truths were cached under
        extra += (repr(values.model), values.custom)
    text = repr((rows, world_seed, sorted(POLICIES.items()), VALUES, MATURITY_DAYS, *extra))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def superpopulation_means(rows: int = 4_000_000, world_seed: int = 0, chunk: int = 500_000,
                          rep_seed: int = 987_654_321, cache: Path | None = Path("/tmp"),
                          labels: Labels = EXCLUDE, values: ValueSet = DEFAULT_VALUES) -> dict[str, np.ndarray]:
    """Per-row means over a large population (cached in `cache`, None: not cached): the superpopulation truth per row."""
    path = None if cache is None else cache / f"policysim_superpop_{_key(rows, world_seed, labels, values)}.npz"
    if path is not None and path.exists():
        return dict(np.load(path))
    sums: dict[str, np.ndarray] = {}
    for lo in range(0, rows, chunk):
        hi = min(lo + chunk, rows)
        log, truth = fresh_population(rows, rep_seed, world_seed=world_seed, lo=lo, hi=hi)
        means = population_means(log, truth, world_seed, labels, values)
        for k, v in means.items():
            sums[k] = sums.get(k, 0.0) + v * (hi - lo)
    out = {k: v / rows for k, v in sums.items()}
    if path is not None:
        np.savez(path, **out)
    return out


def truth_table(means: dict[str, np.ndarray], rows: int,
                values: ValueSet = DEFAULT_VALUES) -> dict[tuple[str, str], float]:
    """Truth of every (policy, metric) for a sample of `rows` rows, and of every candidate's delta
    (policy 'delta:<cand>'), from per-row means of `values`' columns."""
    index = {v: j for j, v in enumerate(values.names)}

    def mean(policy: str, value: str, weighting: str) -> float:
        key = f"|{weighting}" if weighting == "allowed" else f"{policy}|{weighting}"
        return float(means[key][index[value]])

    out: dict[tuple[str, str], float] = {}
    for policy in POLICIES:
        for name, value, weighting, _ in sum_metrics(values):
            out[(policy, name)] = rows * mean(policy, value, weighting)
        for name, (nv, nw), (dv, dw), scale, _ in ratio_metrics(values):
            out[(policy, name)] = scale * mean(policy, nv, nw) / mean(policy, dv, dw)
    for cand in CANDIDATES:
        for (policy, name), value in list(out.items()):
            if policy == cand:
                out[(f"delta:{cand}", name)] = value - out[(BASELINE, name)]
    return out


def metric_names(values: ValueSet = DEFAULT_VALUES) -> list[str]:
    return [s[0] for s in sum_metrics(values)] + [r[0] for r in ratio_metrics(values)]


if __name__ == "__main__":  # build the cache and print the per-30k truth
    import sys
    import time

    start = time.perf_counter()
    big = int(sys.argv[1]) if len(sys.argv) > 1 else 4_000_000
    table = truth_table(superpopulation_means(big), 30_000)
    for key, value in table.items():
        print(key, round(value, 4))
    print(f"{time.perf_counter() - start:.0f} s")
