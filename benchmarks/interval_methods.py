"""Candidate estimators and intervals for issue #12, measured on fresh populations.

A standalone prototype: the estimators and intervals below use numpy/scipy on
per-row arrays only (logged action, logging probabilities, the engine's value
columns at the logged action, policy actions); the rows come from
`simulator/synthetic/fresh.py` (same replications as `coverage_fresh.py`: row seed
1_000_000 + k), the truth from its cached 4 M-row superpopulation.

Estimators (every one returns the estimate T and per-row influence values psi
with sum(psi) == T, the linearisation the intervals use):

- `ipw`     Horvitz-Thompson, sum w y. Deltas sum (w_c - w_b) y: rows both policies treat alike cancel exactly.
- `snipw`   the engine's global self-normalised form N * sum w y / sum w s. Deltas do NOT cancel on agreeing rows.
- `strat`   post-stratified SNIPW (Hajek within strata): strata = rows with the same counterfactual action and the
            same propensity for it; the delta is computed only over rows where candidate and baseline differ,
            strata = (candidate action, its propensity, baseline action, its propensity). A candidate that only
            blocks more then cannot show more fraud, approvals or revenue, and agreeing rows cancel exactly.
- `greg`    `strat` with amount as an auxiliary variable in each stratum (generalised regression / calibration
            estimator, Deville & Saerndal 1992): y ~ b0 + b1 * amount fitted on the stratum's rows logged with its
            action, extended to every row of the stratum (amount is known for all rows); residuals are weighted.

Intervals (on psi): `normal` (CLT, superpopulation variance n * var(psi)); `t_eff` (t with Kish-effective rows of
the squared deviations - 1 degrees of freedom); `hall` (Hall 1992 skewness-removing transform of the studentised
sum); `el` (Owen's empirical likelihood for the mean of psi, chi2_1 calibration); `el_f` (EL calibrated with
F(1, df_eff)); Poisson bootstrap of the linearised sum: `boot_pct` (percentile), `boot_t` (studentised), `boot_bca`
(BCa, acceleration from psi).

    nice -n 10 .venv/bin/python benchmarks/interval_methods.py run --rows 30000 --reps 200 --out /tmp/im/m30k.parquet
    nice -n 10 .venv/bin/python benchmarks/interval_methods.py run --rows 150000 --reps 100 --out /tmp/im/m150k_0.parquet
    .venv/bin/python benchmarks/interval_methods.py summary /tmp/im/m30k.parquet
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parent))

from coverage_tables import class_table, markdown, metric_table  # noqa: E402

# Data only (the engine internals it needs are imported in ONE block in simulator/synthetic/fresh.py).
from simulator.synthetic.fresh import (  # noqa: E402
    BASELINE, BLOCK, CANDIDATES, RATIOS, SUMS, VALUE_INDEX, fresh_population, policy_actions,
    superpopulation_means, truth_table, value_matrix,
)

REP_SEED_BASE = 1_000_000
CONF = 0.95
Z = float(sps.norm.ppf(0.975))
ALLOW_CODE = 0
ESTIMATORS = ("ipw", "snipw", "strat", "greg")
ANALYTIC = ("normal", "t_eff", "hall", "el", "el_f", "floor_normal", "floor_t", "floor_hall")
BOOT = ("boot_pct", "boot_t", "boot_bca", "boot_t_floor")
METHODS = ANALYTIC + BOOT + ("hybrid", "boot_hybrid")


# ---------------------------------------------------------------- rows


class Rows:
    """Per-row arrays of one replication."""

    def __init__(self, action: np.ndarray, probs: np.ndarray, y: np.ndarray, score: np.ndarray) -> None:
        self.a, self.P, self.Y, self.score = action, probs, y, score
        self.n = action.shape[0]
        self.amount = y[:, VALUE_INDEX["amount"]]
        self.codes = {name: policy_actions(score, name) for name in (BASELINE, *CANDIDATES)}

    def alpha(self, policy: str, weighting: str) -> np.ndarray:
        """The action whose outcome a row contributes (-1: none) for a policy and weighting."""
        if weighting == "allowed":
            return np.zeros(self.n, dtype=np.int8)
        code = self.codes[policy]
        if weighting == "target":
            return code
        return np.where(code == BLOCK, ALLOW_CODE, -1).astype(np.int8)  # blocked: allow outcomes where it blocks

    def weight(self, alpha: np.ndarray) -> np.ndarray:
        ok = alpha >= 0
        p = self.P[np.arange(self.n), np.where(ok, alpha, 0)]
        return np.where(ok & (self.a == alpha), 1.0 / p, 0.0)

    def prop(self, alpha: np.ndarray) -> np.ndarray:
        return np.where(alpha >= 0, self.P[np.arange(self.n), np.maximum(alpha, 0)], 0.0)


# ---------------------------------------------------------------- estimators of totals: (T, psi)


def ipw_total(rows: Rows, alpha: np.ndarray, value: str) -> tuple[float, np.ndarray]:
    z = rows.weight(alpha) * rows.Y[:, VALUE_INDEX[value]]
    return float(z.sum()), z


def snipw_total(rows: Rows, policy: str, value: str, weighting: str, population: str) -> tuple[float, np.ndarray]:
    """The engine's SNIPW: N * A / S, N = sum s, S = sum w~ s (w~ the policy's target weight, or allowed)."""
    alpha = rows.alpha(policy, weighting)
    wy = rows.weight(alpha) * rows.Y[:, VALUE_INDEX[value]]
    s = rows.Y[:, VALUE_INDEX[population]]
    norm_alpha = alpha if weighting == "target" else rows.alpha(policy, "allowed")
    ws = rows.weight(norm_alpha) * s
    big_n, a_tot, s_tot = s.sum(), wy.sum(), ws.sum()
    if s_tot == 0:
        return 0.0, np.zeros(rows.n)
    ratio = a_tot / s_tot
    return float(big_n * ratio), s * ratio + (big_n / s_tot) * (wy - ratio * ws)


def _strata(keys: list[np.ndarray], mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Stratum code per row (-1 outside `mask`) from equal (action, propensity) key pairs."""
    combined = np.zeros(mask.shape[0])
    for j in range(0, len(keys), 2):  # action in -1..2 and propensity in [0, 1]: (action + 1) * 10 + p in [0, 31]
        combined = combined + 100.0 ** (j // 2) * ((keys[j] + 1.0) * 10.0 + keys[j + 1])
    _, inverse = np.unique(combined[mask], return_inverse=True)
    code = np.full(mask.shape[0], -1, dtype=np.int64)
    code[mask] = inverse.ravel()
    return code, int(inverse.max()) + 1 if inverse.size else 0


def strat_side(rows: Rows, alpha: np.ndarray, value: str, code: np.ndarray, k: int, greg: bool,
               min_greg: int = 10) -> tuple[np.ndarray, int, float, np.ndarray]:
    """Stratified Hajek (or GREG on amount) influence values of the total of `value` at actions `alpha`.

    Rows outside every stratum (code -1) and strata where alpha is -1 contribute 0. Returns psi and the number
    of strata with rows but no row logged with the stratum's action (left at 0: unsupported).
    """
    y, x = rows.Y[:, VALUE_INDEX[value]], rows.amount
    inside = code >= 0
    c = np.where(inside, code, k)  # k: the outside bin
    logged = inside & (alpha >= 0) & (rows.a == alpha)
    n_s = np.bincount(c, minlength=k + 1)[:k].astype(float)
    n_l = np.bincount(c, weights=logged, minlength=k + 1)[:k]
    sy = np.bincount(c, weights=logged * y, minlength=k + 1)[:k]
    safe = np.maximum(n_l, 1.0)
    ybar = sy / safe
    b1 = np.zeros(k)
    if greg:
        sx = np.bincount(c, weights=logged * x, minlength=k + 1)[:k]
        sxx = np.bincount(c, weights=logged * x * x, minlength=k + 1)[:k]
        sxy = np.bincount(c, weights=logged * x * y, minlength=k + 1)[:k]
        xbar = sx / safe
        vx = sxx / safe - xbar**2
        cxy = sxy / safe - xbar * ybar
        ok = (n_l >= min_greg) & (vx > 1e-12 * np.maximum(xbar**2, 1.0))
        b1 = np.where(ok, cxy / np.where(ok, vx, 1.0), 0.0)
        b0 = ybar - b1 * xbar
    else:
        b0 = ybar
    active = np.zeros(k + 1, dtype=bool)
    active[:k] = n_s > 0
    # a stratum whose alpha is -1 (no outcome: e.g. the blocked weighting where the policy does not block)
    alpha_of = np.full(k + 1, -1)
    alpha_of[c[inside]] = alpha[inside]
    has_action = alpha_of[:k] >= 0
    b0 = np.where(has_action, b0, 0.0)
    b1 = np.where(has_action, b1, 0.0)
    b0x, b1x = np.append(b0, 0.0), np.append(b1, 0.0)
    scale = np.append(np.where(n_l > 0, n_s / safe, 0.0), 0.0)
    e = y - b0x[c] - b1x[c] * x
    psi = np.where(inside, b0x[c] + b1x[c] * x, 0.0) + np.where(logged, scale[c] * e, 0.0)
    known, known_value = known_values(rows, value, alpha)
    psi = np.where(inside & known, known_value, psi)  # values fixed by the action need no logged row
    known_stratum = np.zeros(k + 1, dtype=bool)
    known_stratum[c[inside & known]] = True
    unsupported = int(np.sum(has_action & (n_s > 0) & (n_l == 0) & ~known_stratum[:k]))
    resid = np.where(logged & ~(inside & known), scale[c] * e, 0.0)  # the part only sampled rows carry
    return psi, unsupported, _rare_floor(rows, alpha, value, y, c, k, logged, n_s, n_l, e, has_action), resid


def known_values(rows: Rows, value: str, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose value under their counterfactual action is known without observing an outcome, and that value.

    Action-independent columns (one, mature, amount), the action indicators (blocked, challenged), every
    outcome under block (nothing happens), and fraud loss under challenge (liability shift).
    """
    n = rows.n
    if value in ("one", "mature", "amount"):
        return np.ones(n, dtype=bool), rows.Y[:, VALUE_INDEX[value]]
    if value == "blocked":
        return np.ones(n, dtype=bool), (alpha == BLOCK).astype(float)
    if value == "challenged":
        return np.ones(n, dtype=bool), (alpha == 1).astype(float)
    known = alpha == BLOCK
    if value == "fraud_loss":
        known = known | (alpha == 1)
    return known, np.zeros(n)


def _rare_floor(rows: Rows, alpha: np.ndarray, value: str, y: np.ndarray, c: np.ndarray, k: int, logged: np.ndarray,
                n_s: np.ndarray, n_l: np.ndarray, e: np.ndarray, has_action: np.ndarray) -> float:
    """Variance a stratum side must at least have under a compound-Bernoulli model (rare events).

    y = event x size with event ~ Bernoulli(p) and size a known function of the amount (observed on every
    row of the stratum). p is shrunk as (events + 1/2) / (logged rows + 1) (Jeffreys), so that a stratum whose
    logged rows show no event still allows about half an event. Returns sum over strata of
    max(0, model variance - sample variance) of the Hajek total N_s * mean(y). Signed values: 0.
    """
    if value not in EVENT_SIZE:
        return 0.0
    inside = c < k
    alpha_of = np.full(k + 1, -1)
    alpha_of[c[inside]] = alpha[inside]
    # structural zeros: no outcome under block; no fraud loss on a challenged (liability-shifted) payment
    structural = (alpha_of[:k] == BLOCK) | ((alpha_of[:k] == 1) & (value == "fraud_loss"))
    has_action = has_action & ~structural
    size = EVENT_SIZE[value](rows.amount)
    events = np.bincount(c, weights=logged * (y != 0), minlength=k + 1)[:k]
    es = np.bincount(c, weights=size, minlength=k + 1)[:k] / np.maximum(n_s, 1.0)
    es2 = np.bincount(c, weights=size * size, minlength=k + 1)[:k] / np.maximum(n_s, 1.0)
    p = (events + 0.5) / (n_l + 1.0)
    ok = has_action & (n_l > 0)
    model = np.where(ok, n_s**2 / np.maximum(n_l, 1.0) * (p * es2 - p**2 * es**2), 0.0)
    sample = np.where(ok, (n_s / np.maximum(n_l, 1.0)) ** 2
                      * np.bincount(c, weights=logged * e * e, minlength=k + 1)[:k], 0.0)
    return float(np.maximum(model - sample, 0.0).sum())


# A single event's size per outcome-dependent value column (engine defaults: margin 0.30, fee 2.9 %,
# dispute fee 15): what one more event would add. Values fixed by the action (attempts, blocked, challenged,
# the fixed fees) need no floor; net_value is signed: no floor.
EVENT_SIZE = {
    "authorized": lambda a: np.ones_like(a), "fraud": lambda a: np.ones_like(a),
    "legit_authorized": lambda a: np.ones_like(a), "mature_authorized": lambda a: np.ones_like(a),
    "authorized_volume": lambda a: a, "fraud_volume": lambda a: a, "mature_authorized_volume": lambda a: a,
    "revenue": lambda a: 0.30 * a, "cost": lambda a: 0.029 * a,
    "fraud_loss": lambda a: a + 15.0,
}


def strat_total(rows: Rows, policy: str, value: str, weighting: str, greg: bool) -> tuple[float, np.ndarray, int, float]:
    alpha = rows.alpha(policy, weighting)
    code, k = _strata([alpha, rows.prop(alpha)], np.ones(rows.n, dtype=bool))
    psi, unsupported, extra, resid = strat_side(rows, alpha, value, code, k, greg)
    return float(psi.sum()), psi, unsupported, extra, resid


def strat_delta(rows: Rows, cand: str, value: str, weighting: str, greg: bool) -> tuple[float, np.ndarray, int, float]:
    """Delta over the rows where candidate and baseline contribute different actions only."""
    ac, ab = rows.alpha(cand, weighting), rows.alpha(BASELINE, weighting)
    differ = ac != ab
    code, k = _strata([ac, rows.prop(ac), ab, rows.prop(ab)], differ)
    if k == 0:
        return 0.0, np.zeros(rows.n), 0, 0.0, np.zeros(rows.n)
    pc, uc, ec, rc = strat_side(rows, ac, value, code, k, greg)
    pb, ub, eb, rb = strat_side(rows, ab, value, code, k, greg)
    psi = pc - pb
    return float(psi.sum()), psi, uc + ub, ec + eb, rc - rb


# ---------------------------------------------------------------- every metric of every estimator


def ratio_psi(n: int, scale: float, num: tuple[float, np.ndarray], den: tuple[float, np.ndarray]) -> tuple[float, np.ndarray]:
    a, pa = num
    b, pb = den
    if b == 0:
        return float("nan"), np.full(n, np.nan)
    r = a / b
    return scale * r, scale * (r / n + (pa - r * pb) / b)


def estimates(rows: Rows, estimator: str) -> dict[tuple[str, str, str], tuple[float, np.ndarray, int, float]]:
    """{(policy, metric, kind): (value, psi, unsupported strata, rare-event variance floor)}, candidates only."""
    out: dict[tuple[str, str, str], tuple[float, np.ndarray, int, float]] = {}
    sums: dict[tuple[str, str, str], tuple[float, np.ndarray, int, float]] = {}  # (policy, value, weighting)

    def total(policy: str, value: str, weighting: str, population: str) -> tuple[float, np.ndarray, int, float]:
        key = (policy, value, weighting)
        if key not in sums:
            if estimator == "ipw":
                t, z = ipw_total(rows, rows.alpha(policy, weighting), value)
                sums[key] = (t, z, 0, 0.0, z - t / rows.n)
            elif estimator == "snipw":
                t, z = snipw_total(rows, policy, value, weighting, population)
                sums[key] = (t, z, 0, 0.0, z - t / rows.n)
            else:
                sums[key] = strat_total(rows, policy, value, weighting, estimator == "greg")
        return sums[key]

    for cand in CANDIDATES:
        for name, value, weighting, population in SUMS:
            if name == "attempts":
                continue
            tc, tb = total(cand, value, weighting, population), total(BASELINE, value, weighting, population)
            out[(cand, name, "estimate")] = tc
            if estimator in ("strat", "greg"):
                out[(cand, name, "delta")] = strat_delta(rows, cand, value, weighting, estimator == "greg")
            else:
                out[(cand, name, "delta")] = (tc[0] - tb[0], tc[1] - tb[1], 0, tc[3] + tb[3], tc[4] - tb[4])
        for name, (nv, nw), (dv, dw), scale, population in RATIOS:
            # ratios: IPW totals for ipw/snipw (self-normalisation cancels), stratified totals otherwise
            base = "ipw" if estimator == "snipw" else estimator

            def rtot(policy: str, value: str, weighting: str) -> tuple[float, np.ndarray, int, float]:
                if base == "ipw":
                    t, z = ipw_total(rows, rows.alpha(policy, weighting), value)
                    return (t, z, 0, 0.0, z - t / rows.n)
                return strat_total(rows, policy, value, weighting, base == "greg")

            per = {}
            for policy in (cand, BASELINE):
                num, den = rtot(policy, nv, nw), rtot(policy, dv, dw)
                extra = (scale / den[0]) ** 2 * (num[3] + (num[0] / den[0]) ** 2 * den[3]) if den[0] else 0.0
                r = num[0] / den[0] if den[0] else 0.0
                resid = scale * (num[4] - r * den[4]) / den[0] if den[0] else np.zeros(rows.n)
                per[policy] = (*ratio_psi(rows.n, scale, num[:2], den[:2]), num[2] + den[2], extra, resid)
            out[(cand, name, "estimate")] = per[cand]
            out[(cand, name, "delta")] = (per[cand][0] - per[BASELINE][0], per[cand][1] - per[BASELINE][1],
                                          per[cand][2] + per[BASELINE][2], per[cand][3] + per[BASELINE][3],
                                          per[cand][4] - per[BASELINE][4])
    return out


# ---------------------------------------------------------------- intervals on psi (columns of a matrix)


def moments(psi: np.ndarray) -> dict[str, np.ndarray]:
    """Per column of psi (n, K): total, se, skewness, Kish effective rows of the squared deviations."""
    n = psi.shape[0]
    total = psi.sum(axis=0)
    d = psi - total / n
    m2 = (d**2).sum(axis=0)
    m3 = (d**3).sum(axis=0)
    m4 = (d**4).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(m2 * n / (n - 1))
        skew = np.where(m2 > 0, (m3 / n) / (m2 / n) ** 1.5, 0.0)
        kish = np.where(m4 > 0, m2**2 / m4, 0.0)
    return {"total": total, "se": se, "skew": skew, "kish": kish, "n": n}


def interval_normal(m: dict) -> tuple[np.ndarray, np.ndarray]:
    return m["total"] - Z * m["se"], m["total"] + Z * m["se"]


def interval_t(m: dict) -> tuple[np.ndarray, np.ndarray]:
    df = np.maximum(m["kish"] - 1.0, 1.0)
    q = sps.t.ppf(0.975, df)
    return m["total"] - q * m["se"], m["total"] + q * m["se"]


def interval_hall(m: dict) -> tuple[np.ndarray, np.ndarray]:
    """Hall (1992): g(T) = T + a T^2 + a^2 T^3 / 3 + a / 2, a = skew / (3 sqrt(n)), T = (S - T0) / se."""
    n = m["n"]
    a = m["skew"] / (3.0 * np.sqrt(n))
    b = a / 2.0

    def ginv(u: float) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (np.cbrt(1.0 + 3.0 * a * (u - b)) - 1.0) / a
        return np.where(np.abs(a) < 1e-12, u - b, t)

    # T = (mean_hat - mu) / (s / sqrt n): mu in [S - se * ginv(z_hi), S - se * ginv(z_lo)]
    return m["total"] - m["se"] * ginv(Z), m["total"] - m["se"] * ginv(-Z)


def _el_upper(x: np.ndarray, c: np.ndarray, crit: float, iters: int = 50) -> float:
    """Largest mean of the values x (with multiplicities c) with -2 log EL ratio <= crit.

    The maximiser has p_i proportional to 1 / (alpha - x_i), alpha > max x: a bisection on log(alpha - max x).
    """
    n = c.sum()
    top = x.max()
    spread = max(top - x.min(), 1e-300)
    lo, hi = np.log(spread * 1e-10), np.log(spread * 1e8)
    for _ in range(iters):
        mid = (lo + hi) / 2
        inv = 1.0 / (top + np.exp(mid) - x)
        stat = -2.0 * (c * np.log(n * inv / (c * inv).sum())).sum()
        if stat > crit:  # alpha too close to the largest value
            lo = mid
        else:
            hi = mid
    inv = c / (top + np.exp(hi) - x)
    return float((inv * x).sum() / inv.sum())


def interval_el(psi: np.ndarray, m: dict, f_df: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Owen's EL for the mean of psi, times n; chi2_1 calibration or F(1, f_df) when given."""
    n, k = psi.shape
    crit = np.full(k, sps.chi2.ppf(CONF, 1)) if f_df is None else sps.f.ppf(CONF, 1, np.maximum(f_df, 1.0))
    low, high = m["total"].copy(), m["total"].copy()
    for j in range(k):
        if not m["se"][j] > 0:
            continue
        mean, sd = m["total"][j] / n, m["se"][j] / np.sqrt(n)
        values, counts = np.unique(np.round((psi[:, j] - mean) / sd, 9), return_counts=True)
        if values.size < 2:
            continue
        counts = counts.astype(np.float64)
        high[j] = n * (mean + sd * _el_upper(values, counts, crit[j]))
        low[j] = n * (mean - sd * _el_upper(-values[::-1], counts[::-1], crit[j]))
    return low, high


def intervals_boot(psi: np.ndarray, m: dict, rng: np.random.Generator, b: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Poisson bootstrap of the linearised sum: percentile, studentised and BCa intervals."""
    n, k = psi.shape
    d = psi - m["total"] / n
    w = rng.poisson(1.0, size=(b, n)).astype(np.float32)
    d32 = d.astype(np.float32)
    s1 = (w @ d32).astype(np.float64)  # (b, k)
    s2 = (w @ (d32 * d32)).astype(np.float64)
    nb = w.sum(axis=1, dtype=np.float64)[:, None]
    reps = m["total"] + s1
    with np.errstate(divide="ignore", invalid="ignore"):
        se_b = np.sqrt(np.maximum(s2 - s1**2 / nb, 0.0) * nb / (nb - 1))
        t = s1 / se_b
    out = {"boot_pct": tuple(np.quantile(reps, [0.025, 0.975], axis=0))}
    t = np.where(np.isfinite(t), t, 0.0)
    tq = np.quantile(t, [0.025, 0.975], axis=0)
    out["boot_t"] = (m["total"] - tq[1] * m["se"], m["total"] - tq[0] * m["se"])
    if "se_floor" in m:
        extra = m["se_floor"] ** 2 - m["se"] ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            tf = s1 / np.sqrt(se_b**2 + extra)
        tf = np.quantile(np.where(np.isfinite(tf), tf, 0.0), [0.025, 0.975], axis=0)
        out["boot_t_floor"] = (m["total"] - tf[1] * m["se_floor"], m["total"] - tf[0] * m["se_floor"])
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = ((reps < m["total"]).sum(axis=0) + 0.5 * (reps == m["total"]).sum(axis=0)) / b
        z0 = sps.norm.ppf(np.clip(frac, 1.0 / b, 1 - 1.0 / b))
        acc = np.where(m["se"] > 0, (d**3).sum(axis=0) / (6.0 * ((d**2).sum(axis=0)) ** 1.5), 0.0)
        ordered = np.sort(reps, axis=0)
        bounds = []
        for zq in (-Z, Z):
            adj = np.nan_to_num(sps.norm.cdf(z0 + (z0 + zq) / (1 - acc * (z0 + zq))), nan=0.5)
            index = np.clip(np.round(adj * (b - 1)).astype(int), 0, b - 1)
            bounds.append(ordered[index, np.arange(k)])
    out["boot_bca"] = (bounds[0], bounds[1])
    return out


def _kish(r: np.ndarray) -> float:
    """Effective number of rows carrying the sampled part of the variance: (sum r^2)^2 / sum r^4."""
    r2 = r * r
    m4 = float((r2 * r2).sum())
    return float(r2.sum() ** 2 / m4) if m4 > 0 else 0.0


def all_intervals(psi: np.ndarray, rng: np.random.Generator, b: int, el: bool,
                  extra: np.ndarray | None = None) -> tuple[dict, dict]:
    m = moments(psi)
    out = {"normal": interval_normal(m), "t_eff": interval_t(m), "hall": interval_hall(m)}
    if extra is not None and np.any(extra > 0):  # rare-event floor: se^2 + max(0, model - sample) per stratum
        floored = dict(m, se=np.sqrt(m["se"] ** 2 + extra))
        out["floor_normal"] = interval_normal(floored)
        out["floor_t"] = interval_t(floored)
        out["floor_hall"] = interval_hall(floored)
    if extra is not None:
        m["se_floor"] = np.sqrt(m["se"] ** 2 + extra)
    if el:
        out["el"] = interval_el(psi, m)
        out["el_f"] = interval_el(psi, m, f_df=np.maximum(m["kish"] - 1.0, 1.0))
    if b:
        out |= intervals_boot(psi, m, rng, b)
    return out, m


# ---------------------------------------------------------------- replications


def replication(rows_n: int, k: int, exploration: float, truth: dict, b: int, el: bool,
                estimators: tuple[str, ...]) -> pl.DataFrame:
    log, _ = fresh_population(rows_n, REP_SEED_BASE + k, exploration=exploration)
    probs = log.select("logging_prob_allow", "logging_prob_challenge", "logging_prob_block").to_numpy()
    action = log["action"].replace_strict({"allow": 0, "challenge": 1, "block": 2}, return_dtype=pl.Int8).to_numpy()
    rows = Rows(action, probs, value_matrix(log), log["fraud_score"].to_numpy())
    rng = np.random.default_rng(k)
    differ = {c: rows.codes[c] != rows.codes[BASELINE] for c in CANDIDATES}
    frames = []
    for estimator in estimators:
        est = estimates(rows, estimator)
        keys = list(est)
        psi = np.stack([est[key][1] for key in keys], axis=1)
        psi = np.nan_to_num(psi)
        ints, m = all_intervals(psi, rng, b, el, np.array([est[key][3] for key in keys]))
        # cancellation: the delta's influence outside the rows where the policies act differently
        leak = [float(np.abs(est[key][1][~differ[key[0]]]).sum()) if key[2] == "delta" else 0.0 for key in keys]
        frame = {
            "rep": [k] * len(keys), "rows": [rows_n] * len(keys), "estimator": [estimator] * len(keys),
            "policy": [key[0] for key in keys], "metric": [key[1] for key in keys], "kind": [key[2] for key in keys],
            "value": [est[key][0] for key in keys],
            "truth": [truth[(key[0], key[1])] if key[2] == "estimate" else truth[(f"delta:{key[0]}", key[1])]
                      for key in keys],
            "unsupported": [est[key][2] for key in keys], "leak": leak,
            "floor_var": [est[key][3] for key in keys],
            "kish_res": [_kish(est[key][4]) for key in keys],
            "skew": m["skew"], "kish": m["kish"], "se": m["se"],
        }
        for method, (lo, hi) in ints.items():
            frame[f"{method}_low"], frame[f"{method}_high"] = lo, hi
        frames.append(pl.DataFrame(frame))
    return pl.concat(frames, how="diagonal")


def run(args: argparse.Namespace) -> None:
    truth = truth_table(superpopulation_means(args.big), args.rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frames, start = [], time.perf_counter()
    for k in range(args.first_seed, args.first_seed + args.reps):
        frames.append(replication(args.rows, k, args.exploration, truth, args.bootstrap, not args.no_el,
                                  tuple(args.estimators.split(","))))
        if (k - args.first_seed) % 10 == 9:
            pl.concat(frames).write_parquet(out)
            print(f"  {k - args.first_seed + 1} reps, {time.perf_counter() - start:.0f} s", flush=True)
    pl.concat(frames).write_parquet(out)
    print(f"{args.reps} reps of {args.rows:,} rows in {time.perf_counter() - start:.0f} s -> {out}")


# ---------------------------------------------------------------- summaries


def summarise(draws: pl.DataFrame, flag: pl.Expr | None = None) -> pl.DataFrame:
    """Per (rows, estimator, policy, metric, kind, method): coverage, tail misses, width ratio, bias."""
    methods = [m for m in METHODS if f"{m}_low" in draws.columns]
    slack = 1e-9 * (pl.col("truth").abs() + 1.0)
    long = pl.concat([
        draws.select("rep", "rows", "estimator", "policy", "metric", "kind", "value", "truth", "kish", "skew",
                     "unsupported", low=f"{m}_low", high=f"{m}_high", method=pl.lit(m))
        for m in methods
    ])
    if flag is not None:
        long = long.with_columns(flagged=flag)
    return long.group_by("rows", "estimator", "policy", "metric", "kind", "method", maintain_order=True).agg(
        reps=pl.len(),
        coverage=((pl.col("low") - slack <= pl.col("truth")) & (pl.col("truth") <= pl.col("high") + slack)).mean(),
        miss_low=(pl.col("truth") < pl.col("low") - slack).mean(),
        miss_high=(pl.col("truth") > pl.col("high") + slack).mean(),
        width_ratio=(pl.col("high") - pl.col("low")).median() / (2 * Z * pl.col("value").std()),
        bias_sd=(pl.col("value").mean() - pl.col("truth").first()) / pl.col("value").std(),
        kish_med=pl.col("kish").median(),
        **({"flag_rate": pl.col("flagged").mean()} if flag is not None else {}),
    )


def passes() -> pl.Expr:
    return ((pl.col("coverage") >= 0.93) & (pl.col("coverage") <= 0.975) & (pl.col("miss_low") <= 0.035)
            & (pl.col("miss_high") <= 0.035) & (pl.col("width_ratio") <= 1.3))


def summary(args: argparse.Namespace) -> None:
    draws = with_hybrid(pl.concat([pl.read_parquet(p) for p in args.files], how="diagonal_relaxed"))
    if args.unflagged:  # keep only the cells the recommended flag rule lets through
        draws = draws.filter(~few_events())
    table = summarise(draws).with_columns(ok=passes())
    if args.csv:
        table.write_csv(args.csv)
    keys = ["rows", "estimator", "method"]
    print("## worst case per metric class over both candidates (cov = coverage, tail = largest one-sided miss,"
          " width = median width / (2 * 1.96 * sd))\n")
    worst = class_table(table, keys).filter(pl.col("method").is_in(args.methods.split(",")))
    print(markdown(worst))
    if args.compact:
        print("\n## compact: min coverage / largest one-sided miss / median width ratio per class\n")
        combos = args.compact.split(",")
        cells = class_table(table, keys).with_columns(
            combo=pl.format("{}:{}", pl.col("estimator"), pl.col("method")),
            cell=pl.format("{} / {} / {}", pl.col("cov_min").round(2), pl.col("tail_max").round(2),
                           pl.col("width_med").round(2))).filter(pl.col("combo").is_in(combos))
        pivot = cells.pivot(on="combo", index=["rows", "kind", "cls"], values="cell").sort("rows", "kind", "cls")
        print(markdown(pivot.select("rows", "kind", "cls", *[c for c in combos if c in pivot.columns])))
    for pair in (args.detail or "").split(","):
        if not pair:
            continue
        estimator, method = pair.split(":")
        for rows, part in table.filter(pl.col("estimator") == estimator, pl.col("method") == method).group_by(
                "rows", maintain_order=True):
            print(f"\n### {rows[0]:,} rows, estimator {estimator}, interval {method}, {part['reps'].max()} populations\n")
            print(metric_table(part))
    print("\n## 'only blocks more' (cand_b): share of populations whose delta shows an INCREASE, and leak"
          " (sum |psi| of the delta outside the rows where the policies differ, median)\n")
    increase = draws.filter(pl.col("policy") == "cand_b", pl.col("kind") == "delta",
                            pl.col("metric").is_in(["fraud_count", "fraud_volume", "fraud_loss", "authorized_count",
                                                    "revenue", "blocked_count"])).group_by(
        "rows", "estimator", "metric").agg(
        increase=(pl.col("value") > 1e-9 * (pl.col("truth").abs() + 1)).mean(),
        leak_median=pl.col("leak").median()).sort("rows", "metric", "estimator")
    print(markdown(increase, 3))
    print("\n## flag rules: share of (population, metric) cells flagged; coverage and worst one-sided miss of the"
          " unflagged cells (pooled over metrics; tail = worst metric with >= 10 unflagged populations); coverage of"
          " the flagged ones\n")
    combos = (args.compact or "strat:floor_hall").split(",")
    rows_out = []
    for name, rule in flag_rules().items():
        for combo in combos:
            estimator, method = combo.split(":")
            part = draws.filter(pl.col("estimator") == estimator)
            if f"{method}_low" not in part.columns:
                continue
            for (rows,), sub in part.group_by("rows", maintain_order=True):
                rows_out.append((rows, combo, name, *flag_stats(sub, method, rule)))
    frame = pl.DataFrame(rows_out, orient="row", schema=["rows", "interval", "rule", "flag_rate", "cov_unflagged",
                                                         "tail_unflagged", "cov_flagged"])
    print(markdown(frame.sort("rows", "interval", "rule")))


def few_events() -> pl.Expr:
    """The recommended flag: a stratum without support, or the rare-event floor exceeds the sample variance
    (the explored rows cannot show the events the interval must allow for)."""
    return (pl.col("unsupported") > 0) | (pl.col("floor_var").fill_null(0.0) > pl.col("se") ** 2)


def with_hybrid(draws: pl.DataFrame) -> pl.DataFrame:
    """`hybrid` (analytic) = Hall where the flag is off, floored normal where it is on; `boot_hybrid` = bootstrap-t
    where it is off, floored bootstrap-t joined with the floored normal where it is on."""
    if "floor_normal_low" not in draws.columns:
        return draws
    flag = few_events()
    out = draws.with_columns(
        hybrid_low=pl.when(flag).then(pl.col("floor_normal_low")).otherwise(pl.col("hall_low")),
        hybrid_high=pl.when(flag).then(pl.col("floor_normal_high")).otherwise(pl.col("hall_high")))
    if "boot_t_floor_low" in draws.columns:
        # flagged: the floored bootstrap-t joined with the floored normal interval (replicates of rows that show
        # no event have no spread at all, whatever the studentisation)
        out = out.with_columns(
            boot_hybrid_low=pl.when(flag).then(pl.min_horizontal("boot_t_floor_low", "floor_normal_low"))
            .otherwise(pl.col("boot_t_low")),
            boot_hybrid_high=pl.when(flag).then(pl.max_horizontal("boot_t_floor_high", "floor_normal_high"))
            .otherwise(pl.col("boot_t_high")))
    return out


def flag_rules() -> dict[str, pl.Expr]:
    """Candidate rules that say an interval is unreliable, from what a run knows."""
    floor_dominates = pl.col("floor_var").fill_null(0.0) > pl.col("se") ** 2
    return {
        "none": pl.lit(False),
        "unsupported": pl.col("unsupported") > 0,
        "kish_res<5": pl.col("kish_res") < 5,
        "kish_res<10": pl.col("kish_res") < 10,
        "kish_res<20": pl.col("kish_res") < 20,
        "floor>sample": floor_dominates,
        "kish_res<10 or floor>sample": (pl.col("kish_res") < 10) | floor_dominates,
        "kish<10 or floor>sample": (pl.col("kish") < 10) | floor_dominates,
    }


def flag_stats(part: pl.DataFrame, method: str, rule: pl.Expr) -> tuple[float, float, float, float]:
    slack = 1e-9 * (pl.col("truth").abs() + 1.0)
    low, high = pl.col(f"{method}_low"), pl.col(f"{method}_high")
    t = part.with_columns(
        flagged=rule | (pl.col("unsupported") > 0),
        cover=(low - slack <= pl.col("truth")) & (pl.col("truth") <= high + slack),
        lo_miss=pl.col("truth") < low - slack, hi_miss=pl.col("truth") > high + slack)
    un = t.filter(~pl.col("flagged"))
    per_cell = un.group_by("policy", "metric", "kind").agg(lo=pl.col("lo_miss").mean(), hi=pl.col("hi_miss").mean(),
                                                           n=pl.len()).filter(pl.col("n") >= 10)
    tail = float(per_cell.select(pl.max_horizontal("lo", "hi").max()).item() or 0.0) if per_cell.height else float("nan")
    fl = t.filter(pl.col("flagged"))
    return (float(t["flagged"].mean()), float(un["cover"].mean()) if un.height else float("nan"), tail,
            float(fl["cover"].mean()) if fl.height else float("nan"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--rows", type=int, default=30_000)
    r.add_argument("--reps", type=int, default=200)
    r.add_argument("--first-seed", type=int, default=0)
    r.add_argument("--estimators", default=",".join(ESTIMATORS))
    r.add_argument("--bootstrap", type=int, default=200)
    r.add_argument("--no-el", action="store_true")
    r.add_argument("--exploration", type=float, default=0.1)
    r.add_argument("--big", type=int, default=4_000_000)
    r.add_argument("--out", required=True)
    s = sub.add_parser("summary")
    s.add_argument("files", nargs="+")
    s.add_argument("--csv")
    s.add_argument("--detail", help="comma-separated estimator:method pairs to print per metric")
    s.add_argument("--methods", default=",".join(METHODS), help="methods in the class table")
    s.add_argument("--compact", help="estimator:method pairs for one compact per-class table")
    s.add_argument("--unflagged", action="store_true", help="only the cells the recommended flag rule lets through")
    args = parser.parse_args()
    run(args) if args.command == "run" else summary(args)


if __name__ == "__main__":
    main()
