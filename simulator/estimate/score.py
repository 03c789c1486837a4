"""Score intervals for estimates that rest on 0/1 outcomes: Wilson per share, combined by MOVER.

A count such as `authorized_count` is, stratum by stratum, N_k times a share p̂
of explored rows (approved or not). The variance of a share moves with the
share itself — p(1 − p)/m — so a symmetric interval ±t·se is too short exactly
on the side where the estimate erred: with approvals near 90 %, a population
whose explored rows happened to approve more shows a higher count *and* a
smaller standard error, and the truth falls below the interval far more often
than the nominal 2.5 % (measured on fresh populations: 0.05–0.08 below, 0.01
above; docs/estimation.md). The score (Wilson 1927) interval evaluates the
variance at the limit instead of at the estimate and holds both tails for a
binomial share. On future traffic (`superpopulation`) a stratum's size is such
a share too: the payments a candidate blocks are N_k of the segment's n rows.

How the estimate's interval is built (the method of variance estimates
recovery, MOVER: Zou & Donner 2008; Newcombe 1998 for a difference of two
shares). Each share j of the estimate — a Hájek part whose value takes two
values (lo, hi) under its action, p̂_j = (ȳ_j − lo)/(hi − lo) on its effective
(Kish) number of explored rows; or, on future traffic, a stratum's rows
N_j/n — enters with a weight w_j (the estimate's derivative with respect to the
share). Its Wilson limits (l_j, u_j) at the confidence's normal quantile z (the
score interval needs no t: it estimates no variance from the data) give one-sided
distances |w_j|·(p̂_j − l_j) and |w_j|·(u_j − p̂_j). Everything else of the
estimate (money parts, shares nested in others, shares of fewer than
`MIN_TRIALS` effective rows, the floor of rare events) keeps its variance
V_rest and the t quantile q:

    low  = L̂ − √(q²·V_rest + Σ_j (distance of j towards a lower L)²)
    high = L̂ + √(q²·V_rest + Σ_j (distance of j towards a higher L)²)

with V_rest = V − Σ_j (what share j puts into the estimate's variance V). MOVER
adds the distances as independent, so only shares whose rows no other share or
part of the estimate reads are scored (a ratio's segment-wide mean and one
stratum's keep the t interval). With no scored share the interval is t·se on
both sides, as before.

A ratio of two shares of the same explored rows, one nested in the other
(`block_precision`: fraud among the payments a block stops that would have been
authorized; a fraud dispute only follows an authorization), is scored through
the conditional share q = p̂_inner / p̂_outer, a binomial proportion on the
outer share's rows: with p̂_inner = p̂_outer·q, the estimate moves with q by
w_inner·p̂_outer and with p̂_outer by what is left, and the two move
independently (given how many rows were authorized, the fraud among them is a
binomial draw), so q takes Wilson limits and p̂_outer stays in V_rest. A
block-precision delta is then a weighted difference of strata's q on disjoint
rows, scored like Newcombe's difference of two proportions. What q puts into
V is read off both parts' own variances: w_inner²·(V_inner − q²·r²·V_outer),
r the ratio of the two values' spans.

A non-negative total of rare events that are not 0/1 (fraud volume, fraud
loss: a few dozen explored frauds of heavy-tailed amounts) has a variance that
grows with the total too: a population whose explored rows missed the large
frauds shows a low estimate and a small spread together. Each of its Hájek
parts on at least FEW explored frauds, whose rows no other rare part reads,
takes the score limits of a variance proportional to its contribution (the
quasi-Poisson score interval, `_event_reach`) in place of ±q·√V; on future
traffic only (`superpopulation`).

Rare fraud is where the score limits matter most: explored rows that show no
fraud give a share of 0, a symmetric interval (even with the rare-event floor's
half event, `simulator.estimate.rare`) reaches only ~1.4·N/m above it, while the
score limit reaches ~q²·N/m, the rule-of-three bound. Measured at 150k rows,
the floor alone left the truth above the interval in 10 % of populations for a
candidate's added blocked fraud, every miss an estimate of 0 events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import NamedTuple, Protocol, TypeVar

import numpy as np
from scipy import special

from simulator.estimate.linearised import Estimate, divide, finite
from simulator.estimate.rare import FEW, PartDiagnostics
from simulator.estimate.strata import HajekPart
from simulator.model.value import ValueSet
from simulator.plan.compiled import Plan
from simulator.plan.moments import Term, stratum_term
from simulator.plan.strata import Stratum, disjoint_rows
from simulator.stats.units import PATTERNS, value_table

MIN_TRIALS = 10.0  # effective rows below which a share is not scored: its limits would rest on a handful of rows
NESTED_MIN = 1.0  # rows from which a nested pair's conditional share is scored (under MIN_TRIALS: flagged few_events)
NEGLIGIBLE = 1e-9  # share of the variance below which a term is rounding noise
SHARES_DECIDE = 0.5  # share of an estimate's variance from scored shares above which they decide its interval
SIZES = ("one", "mature")  # values of a stratum's row counts (a size term)


@dataclass(frozen=True, slots=True)
class Share:
    """One share of an estimate: its value, trials, weight and what it puts into the estimate's variance."""

    rows: Term  # the rows it is read from (for the overlap test)
    share: np.ndarray
    trials: np.ndarray
    weight: np.ndarray
    variance: np.ndarray
    scored: np.ndarray  # bool: where the share takes score limits
    own: frozenset[object]  # the estimate's parts (or size terms) it stands for: they read its rows too
    reach: np.ndarray | None = None  # the most it could put into the variance, where that is not `variance`


@lru_cache(maxsize=256)
def two_values(values: ValueSet, actions: tuple[str, ...], action: int, value: str) -> tuple[float, float] | None:
    """(lo, hi) when a value column under an action takes exactly two values whatever the amount, else None."""
    table = value_table(values, actions)[action, :, values.names.index(value)]  # (patterns, 2): c0, c1 (NaN: a row value)
    if not np.all(table[:, 1] == 0):
        return None
    distinct = np.unique(table[:, 0])
    return (float(distinct[0]), float(distinct[1])) if len(distinct) == 2 else None


def _feasible_patterns() -> np.ndarray:
    """Outcome patterns (`simulator.stats.units.outcome_pattern`) valid data can hold: a fraud dispute only
    follows an authorization and a lost dispute only a fraud dispute (`simulator.data.validate`)."""
    pattern = np.arange(PATTERNS)
    authorized, fraud, lost = pattern & 1, pattern & 2, pattern & 4
    return ((fraud == 0) | (authorized > 0)) & ((lost == 0) | (fraud > 0))


@lru_cache(maxsize=256)
def nested(values: ValueSet, actions: tuple[str, ...], action: int, inner: str, outer: str) -> bool:
    """Whether two two-valued columns under an action are nested: every payment at `inner`'s high level is at
    `outer`'s high level too (fraud within mature authorizations), on every outcome valid data can hold."""
    a, b = two_values(values, actions, action, inner), two_values(values, actions, action, outer)
    if a is None or b is None or inner == outer:
        return False
    table = value_table(values, actions)[action][_feasible_patterns()]  # (patterns, values, 2)
    high_inner = table[:, values.names.index(inner), 0] == a[1]
    high_outer = table[:, values.names.index(outer), 0] == b[1]
    return bool(np.any(high_inner)) and bool(np.all(high_outer[high_inner]))


def wilson(share: np.ndarray, n: np.ndarray, q: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's score limits for a share observed on n (effective) trials, at normal quantile q, modified at the extremes.

    With one to three events the Wilson lower limit sits above small true shares far more
    often than α/2 (one fraud in 30 explored rows puts it at 0.6 % when the rate is 0.3 %):
    there the exact Poisson (Garwood) limit replaces it, as Brown, Cai & DasGupta (2001, §4.1.1)
    recommend; likewise the upper limit one to three non-events from the top.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        z2n = q**2 / n
        centre = (share + z2n / 2) / (1 + z2n)
        half = q / (1 + z2n) * np.sqrt(share * (1 - share) / n + z2n / (4 * n))
        low, high = centre - half, centre + half
        few = np.where(n <= 50, 2.0, 3.0)  # x* of the modification
        tail = special.ndtr(-q)  # α/2 (the normal's upper tail: scipy's norm.sf without its argument checks)
        events, misses = share * n, (1 - share) * n
        few = few * (1 + 1e-9)  # an integer count read off reassociated sums must not flip the choice
        low = _where_few(events, few, tail, n, low, upper=False)
        high = _where_few(misses, few, tail, n, high, upper=True)
    return np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)


def _where_few(count: np.ndarray, few: np.ndarray, tail: np.ndarray, n: np.ndarray, limit: np.ndarray, *,
               upper: bool) -> np.ndarray:
    """`limit`, replaced by Garwood's exact Poisson limit where `count` is one to `few` (only there computed)."""
    count, few, tail, n = np.broadcast_arrays(count, few, tail, n)
    where = (count > 1e-9) & (count <= few)
    if not where.any():
        return limit
    out = np.array(np.broadcast_to(limit, where.shape), dtype=np.float64)
    poisson = _poisson_low(count[where], tail[where]) / n[where]
    out[where] = 1 - poisson if upper else poisson
    return out


def _poisson_low(events: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """Garwood's exact lower limit of a Poisson mean from `events` (non-integer: effective counts)."""
    return special.gammaincinv(np.maximum(events, 1e-12), tail)


class ScoreBounds(NamedTuple):
    """An estimate's MOVER interval and what decided it."""

    low: np.ndarray
    high: np.ndarray
    decides: np.ndarray  # bool: scored shares carry most of the interval (a bootstrap's percentiles cannot see them)
    thin: np.ndarray  # bool: shares of fewer than MIN_TRIALS rows carry most of it (honest, but wide: `few_events`)


def score_bounds(estimate: Estimate, variance: np.ndarray, q: np.ndarray, z: float, total: Callable[[Term], np.ndarray],
                 parts: Callable[[HajekPart], PartDiagnostics], plan: Plan, *, rare: bool = False) -> ScoreBounds:
    """The MOVER interval of the module docstring of `estimate` with variance `variance`.

    The score limits decide where the scored shares carry most of the variance, or shares seen at 0 or 1 (no
    sample variance) or on fewer than MIN_TRIALS rows carry most of the interval: there they stand over a
    bootstrap's percentiles too (resampling a share reproduces the symmetric interval's one-sided miss, and
    cannot move a share seen at 0).

    `rare`: the estimate is a non-negative total of rare events (fraud volume, loss): the part of its
    variance that grows with it is scored too (`_event_reach`).
    """
    value = estimate.value
    shape = np.shape(value)
    variance = finite(variance)
    # What moves the interval: a term whose share of the variance is rounding noise (a delta of exactly 0 read
    # off reassociated sums) neither is scored nor blocks another share, so sharding cannot flip the method.
    tiny = NEGLIGIBLE * variance
    active = _active_parts(estimate, shape)
    explored = []
    for key, f, part in active:
        d = parts(part)
        explored.append((key, part.explored, f**2 * np.maximum(d.within, d.floor) > tiny))
    pairs = _nested_shares(active, total, parts, plan)
    paired = frozenset().union(*(s.own for s in pairs))  # a nested pair's parts are scored through it, not alone
    hajek = [s for s in _part_shares(active, total, parts, plan) if not s.own & paired] + pairs
    sizes = _size_shares(estimate, shape, total, plan)
    replaced, down, up = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    thin, edge = _Reach(shape), _Reach(shape)  # shares on few rows; shares seen at 0 or 1 (no sample variance)
    # A share is scored alone where no other of its kind reads its rows (a stratum's size and its Hájek mean are
    # uncorrelated: the mean is centred within the stratum).
    size_readers = [(term, size.rows, size.variance > tiny) for size in sizes for term in size.own]
    scored_shares = [*_alone(hajek, explored, tiny, plan), *_alone(sizes, size_readers, tiny, plan)]
    for s in scored_shares:
        low, high = wilson(s.share, s.trials, z)
        below = np.where(s.weight > 0, s.share - low, high - s.share) * np.abs(s.weight)  # towards a lower estimate
        above = np.where(s.weight > 0, high - s.share, s.share - low) * np.abs(s.weight)
        replaced = replaced + np.where(s.scored, s.variance, 0.0)
        down, up = down + np.where(s.scored, below**2, 0.0), up + np.where(s.scored, above**2, 0.0)
        thin.add(s.scored & (s.trials < MIN_TRIALS * (1 - 1e-9)), below, above)
        events = s.share * s.trials
        edge.add(s.scored & ((events < 0.5) | (s.trials - events < 0.5)), below, above)
    rest = q**2 * np.maximum(variance - replaced, 0.0)
    rest_down = rest_up = rest
    if rare:
        taken: dict[object, np.ndarray] = {}  # where a part is scored as a share already (element by element)
        for share in scored_shares:
            for key in share.own:
                taken[key] = taken.get(key, False) | share.scored
        rare_parts = _event_parts(active, total, parts, taken)
        # parts of other values on the same rows (a ratio's denominator) keep their variance and covariance in the
        # symmetric rest; two rare parts on shared rows (a policy's total and a pair's change of it) are not scored
        readers = [(key, p.rows, p.variance > tiny) for p in rare_parts for key in p.own]
        rest_down, rest_up = _event_reach(_alone(rare_parts, readers, tiny, plan), q, rest)
    few = thin.carries(rest_down, rest_up, down, up)
    decides = (replaced > SHARES_DECIDE * variance) | few | edge.carries(rest_down, rest_up, down, up)
    return ScoreBounds(value - np.sqrt(rest_down + down), value + np.sqrt(rest_up + up), decides, few)


@dataclass(frozen=True, slots=True)
class EventPart:
    """A Hájek part of a total of rare events whose variance grows with its contribution (see `_event_reach`)."""

    rows: Term  # its explored rows (for the overlap test, as a `Share`'s)
    contribution: np.ndarray  # f·N·ȳ
    variance: np.ndarray  # f²·max(within, floor)
    scored: np.ndarray  # bool: where it rests on FEW explored events or more
    own: frozenset[object]
    reach: np.ndarray | None = None  # (as a `Share`'s: its variance is its reach)


def _event_parts(active: Active, total: Callable[[Term], np.ndarray], parts: Callable[[HajekPart], PartDiagnostics],
                 taken: dict[object, np.ndarray]) -> list[EventPart]:
    """The parts whose value moves with fraud, on FEW explored events or more (where not scored as shares)."""
    out = []
    for key, f, part in active:
        d = parts(part)
        if not np.any(np.isfinite(d.events)):
            continue
        contribution = f * total(part.size) * finite(divide(total(part.main), total(part.norm)))
        variance = f**2 * np.maximum(d.within, d.floor)
        scored = np.isfinite(d.events) & (d.events >= FEW * (1 - 1e-9)) & (contribution != 0) & (variance > 0) \
            & ~taken.get(key, False)
        out.append(EventPart(rows=part.explored, contribution=contribution, variance=variance, scored=scored,
                             own=frozenset({key})))
    return out


def _event_reach(lone: list[EventPart], q: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The squared reach below and above of the unscored rest (`rest` = q²·its variance) of a total of rare events.

    A Hájek part whose value moves with fraud and rests on at least FEW explored events contributes
    θ = f·N·ȳ with a variance V that grows with it (both follow the events its rows showed: a population
    whose explored rows missed the large frauds shows a low θ and a small V together). Its score limits
    for a variance proportional to the contribution, (θ̂ − θ)² = q²·V·θ/θ̂, reach s ± √(q²V + s²) with
    s = q²V/(2|θ̂|) — further above than below for an added part, the reverse for a subtracted one (the
    quasi-Poisson score interval; Wilson's for a count). Parts whose rows no other part reads add in
    quadrature (MOVER); everything else keeps its symmetric q²·V.
    """
    shape = np.shape(rest)
    moved, below, above = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for p in lone:
        spread = np.where(p.scored, q**2 * p.variance, 0.0)
        shift = np.where(p.scored, finite(divide(spread, 2.0 * np.abs(p.contribution))), 0.0)
        reach = np.sqrt(spread + shift**2)
        up = np.where(p.contribution > 0, reach + shift, reach - shift)
        moved, below, above = moved + spread, below + (2.0 * reach - up) ** 2, above + up**2
    other = np.maximum(rest - moved, 0.0)
    some = moved > 0
    return np.where(some, other + below, rest), np.where(some, other + above, rest)


class _Reach:
    """The squared distances some of the scored shares add to each side of an interval."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.down, self.up = np.zeros(shape), np.zeros(shape)

    def add(self, where: np.ndarray, below: np.ndarray, above: np.ndarray) -> None:
        self.down = self.down + np.where(where, below**2, 0.0)
        self.up = self.up + np.where(where, above**2, 0.0)

    def carries(self, rest_down: np.ndarray, rest_up: np.ndarray, down: np.ndarray, up: np.ndarray) -> np.ndarray:
        """Where these shares make most of either side's reach (`down`, `up`: every share's; `rest_*`: the t part's)."""
        return (self.down > SHARES_DECIDE * (rest_down + down)) | (self.up > SHARES_DECIDE * (rest_up + up))


Active = list[tuple[object, np.ndarray, HajekPart]]  # (key, factor, part) of the parts that move an estimate


def _active_parts(estimate: Estimate, shape: tuple[int, ...]) -> Active:
    """The estimate's Hájek parts with a non-zero factor somewhere (those that cancel in a delta do not count)."""
    out: Active = []
    for key, (factor, part) in estimate.parts.items():
        factor = finite(np.broadcast_to(factor, shape))
        if np.any(factor):
            out.append((key, factor, part))  # type: ignore[arg-type]  # parts are HajekParts by construction
    return out


def _level_share(part: HajekPart, levels: tuple[float, float], total: Callable[[Term], np.ndarray]) -> np.ndarray:
    """The part's Hájek mean as the share of its explored rows at the high of its two `levels`."""
    lo, hi = levels
    return np.clip(finite(divide(divide(total(part.main), total(part.norm)) - lo, hi - lo)), 0.0, 1.0)


def _part_shares(active: Active, total: Callable[[Term], np.ndarray], parts: Callable[[HajekPart], PartDiagnostics],
                 plan: Plan) -> list[Share]:
    """The Hájek parts whose value is a scaled 0/1 outcome under their action."""
    out = []
    for key, factor, part in active:
        levels = two_values(plan.values, plan.actions, part.action, part.value)
        if levels is None:
            continue
        d = parts(part)
        lo, hi = levels
        out.append(Share(rows=part.explored, share=_level_share(part, levels, total), trials=d.ess,
                         weight=factor * total(part.size) * (hi - lo), variance=factor**2 * np.maximum(d.within, d.floor),
                         scored=d.ess >= MIN_TRIALS * (1 - 1e-9), own=frozenset({key})))
    return out


def _nested_shares(active: Active, total: Callable[[Term], np.ndarray], parts: Callable[[HajekPart], PartDiagnostics],
                   plan: Plan) -> list[Share]:
    """The conditional shares q = p̂_inner / p̂_outer of pairs of nested parts on the same explored rows
    (see the module docstring)."""
    readers: dict[Term, list[tuple[int, object, np.ndarray, HajekPart]]] = {}  # parts by the rows they read
    for index, (key, factor, part) in enumerate(active):
        readers.setdefault(part.explored, []).append((index, key, factor, part))
    pairs = sorted((i, j, key_in, f_in, inner, key_out, outer)
                   for same in readers.values() if len(same) > 1
                   for i, key_in, f_in, inner in same for j, key_out, _, outer in same
                   if nested(plan.values, plan.actions, inner.action, inner.value, outer.value))
    out = []
    for _, _, key_in, f_in, inner, key_out, outer in pairs:
        levels_in, levels_out = (two_values(plan.values, plan.actions, p.action, p.value) for p in (inner, outer))
        assert levels_in is not None and levels_out is not None  # nested shares are two-valued
        (lo_in, hi_in), (lo_out, hi_out) = levels_in, levels_out
        d_in, d_out = parts(inner), parts(outer)
        size = total(inner.size)
        s_in, s_out = _level_share(inner, levels_in, total), _level_share(outer, levels_out, total)
        q = np.clip(finite(divide(s_in, s_out)), 0.0, 1.0)
        trials = d_out.ess * s_out  # the outer share's (effective) rows
        span = (hi_in - lo_in) / (hi_out - lo_out)
        own = np.maximum(d_in.within, d_in.floor) - (q * span) ** 2 * np.maximum(d_out.within, d_out.floor)
        weight = f_in * size * (hi_in - lo_in) * s_out
        # a share seen at 0 or 1 has no sample variance, yet its score limits reach as far as a binomial's can
        reach = divide(weight**2, 4.0 * trials)
        out.append(Share(rows=inner.explored, share=q, trials=trials, weight=weight,
                         variance=f_in**2 * np.maximum(own, 0.0), scored=trials >= NESTED_MIN * (1 - 1e-9),
                         own=frozenset({key_in, key_out}), reach=finite(reach)))
    return out


def _size_shares(estimate: Estimate, shape: tuple[int, ...], total: Callable[[Term], np.ndarray],
                 plan: Plan) -> list[Share]:
    """On future traffic, the strata's row counts: N_k of the segment's n rows (the segment's own n is fixed)."""
    if plan.finite:
        return []
    rows = total(stratum_term("one", Stratum(())))
    out = []
    for term, g in estimate.grad.items():
        stratum = term.stratum
        if stratum is None or stratum.logged is not None or not stratum.members or term.value not in SIZES:
            continue
        g = finite(np.broadcast_to(g, shape))
        if not np.any(g):
            continue
        size = total(term)
        share = np.clip(finite(divide(size, rows)), 0.0, 1.0)
        out.append(Share(rows=term, share=share, trials=rows, weight=g * rows,
                         variance=g**2 * size * (1.0 - share), scored=rows >= MIN_TRIALS, own=frozenset({term})))
    return out


class _Scored(Protocol):
    """What `_alone` reads of a share (or a rare part): its rows, where it is scored, its variance, its parts."""

    @property
    def rows(self) -> Term: ...
    @property
    def scored(self) -> np.ndarray: ...
    @property
    def variance(self) -> np.ndarray: ...
    @property
    def reach(self) -> np.ndarray | None: ...
    @property
    def own(self) -> frozenset[object]: ...


S = TypeVar("S", bound=_Scored)


def _alone(shares: list[S], readers: list[tuple[object, Term, np.ndarray]], tiny: np.ndarray, plan: Plan) -> list[S]:
    """The shares, scored only where no reader but their own reads their rows.

    `readers`: (key, rows, where it is active) of every part (or size) of the estimate (a sweep's points
    use different strata); a share's own parts (`Share.own`) do not count against it.
    """
    out = []
    for s in shares:
        overlapping = sum((active for key, rows, active in readers if key not in s.own and not disjoint_rows(s.rows, rows, plan)),
                          np.zeros(np.shape(s.scored), dtype=np.int64))
        reach = s.variance if s.reach is None else s.reach
        scored = s.scored & (reach > tiny) & (overlapping == 0)
        if np.any(scored):
            out.append(replace(s, scored=scored))
    return out
