"""Variance floor and diagnostics of stratified estimates: when explored rows cannot show the outcomes.

A Hájek mean over a stratum's explored rows has a sample variance that sees
only the outcomes those rows happened to carry. With a handful of explored rows
and a rare outcome (fraud), it is often zero or far below the truth; with
heavy-tailed amounts, a few dozen explored payments understate the tail. An
interval built on either covers far less than it claims (docs/estimation.md).

The floor models a row's value under the stratum's action from the value
model itself: y = base + auth·(a0 + a1·A) + fraud·(f0 + f1·A), with
auth ~ Bernoulli(p_A) and fraud ~ Bernoulli(p_F) (fraud only on authorized
payments: p_F = p_A · q), each shrunk by half an event (Jeffreys:
p_A = (authorized + ½)/(explored + 1), q = (frauds + ½)/(authorized + 1)), and the
amount's moments taken from every row of the stratum (amounts are known for
all rows), its second moment pulled up towards the segment's shape
E[A²]/E[A]² times the stratum's mean squared with the weight of `TAIL_PRIOR`
rows (a few rows understate a heavy tail; thousands do not). Authorisation is
not independent of the amount (issuers decline large payments more): the
authorisation part takes the amounts of approved payments, the stratum's
moments times their ratio among the explored rows (`_approved_amounts`, shrunk
to 1 with `APPROVED_PRIOR` approved rows). Then

    floor = N² / m · Var_model(y)

and each part's variance is raised to at least its floor. For the finite
estimand (these payments, not future traffic) the amounts are the stratum's
own (no borrowed tail), the authorisation part carries the finite-population
correction 1 − m/N (only the unexplored rows' outcomes are unknown), and the
fraud part stays the prior for events the explored rows cannot show. For fraud it
replaces the Fay–Feuer gamma interval's "one more event at the largest weight"
with "half an event at the stratum's own weight" (docs/research/intervals.md §3).

A value written as SQL that has no such table (it reads other columns: cost by
card funding, one brand's volume) gets the same model from its rows instead of
a formula: the shards sum every row's value had it been declined, approved or
lost under each action, and its square (`simulator.stats.units.counterfactual_values`);
Var_model(y) is then the stratum's mean of Σ_o P(o)·v_o² minus the square of its
mean of Σ_o P(o)·v_o, each outcome's moments pulled towards the segment's per
unit of amount with `TAIL_PRIOR` rows (a value only some rows carry is 0 on all
of a small stratum's rows) and the approved ones scaled like approved amounts.
For the built-in cost written that way it reproduces the table's floor within 1 %.

An estimate is `few_events` when the floor moves its variance by more than
`FLOOR_SHARE` and a part whose floor binds rests on fewer than `FEW` explored
fraud events, or when a stratum it needs has rows but no explored row of the
action (its mean was borrowed from the whole segment): its interval then rests
on a prior, not on the data, and must not decide a launch alone. Otherwise the
floor applies without a flag: the amounts of every row describe an outcome's
size better than the few explored ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from simulator.estimate.linearised import Estimate, divide, finite
from simulator.estimate.strata import HajekPart, Outcomes, outcomes
from simulator.model.value import OUTCOMES, counterfactual_column
from simulator.plan.moments import Term, stratum_term
from simulator.plan.strata import Stratum

if TYPE_CHECKING:
    from simulator.estimate.totals import Totals

FLOOR_SHARE = 0.25  # the floor adds more than this share of the variance: the data alone cannot set the interval
FEW = 10  # explored events below which a part's own spread is not trusted (with the floor binding: `few_events`)


@dataclass(frozen=True, slots=True)
class PartDiagnostics:
    """A Hájek part's sample variance (of its contribution N·ȳ), floor, explored rows and effective size."""

    within: np.ndarray
    floor: np.ndarray
    explored: np.ndarray
    events: np.ndarray  # explored rows carrying the rare event (∞ for values that are not rare)
    ess: np.ndarray
    unseen: np.ndarray  # rows in the stratum, none explored with the action


@dataclass(frozen=True, slots=True)
class Diagnostics:
    """What an estimate's Hájek parts say about it."""

    extra_variance: np.ndarray  # Σ factor² · max(0, floor − within)
    few_events: np.ndarray  # bool
    explored: np.ndarray  # explored rows behind the estimate (each part once)
    ess: np.ndarray  # Σ over parts of (Σ s/p)² / Σ (s/p)²
    estimated: np.ndarray  # bool: some Hájek part enters (else the estimate is exact, or not stratified)
    floor_decides: np.ndarray  # bool: the floor adds more than FLOOR_SHARE of the variance


def diagnose(estimate: Estimate, variance: np.ndarray, totals: Totals,
             part_diagnostics: Callable[[HajekPart], PartDiagnostics], *, paired: bool = False) -> Diagnostics:
    """Combine the parts with a non-zero factor (parts that cancel in a delta do not count).

    For a `paired` delta, explored rows and ESS count the strata where the two policies act
    differently wherever it has any (element by element), else every part.
    """
    shape = np.shape(estimate.value)
    extra, few, estimated = np.zeros(shape), np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool)
    sparse = np.zeros(shape, dtype=bool)  # a part whose floor binds rests on few explored events
    every: dict[object, tuple[np.ndarray, np.ndarray]] = {}  # (stratum, action) → (explored, ess): rows count once
    changed: dict[object, tuple[np.ndarray, np.ndarray]] = {}
    groups: dict[object, list[tuple[np.ndarray, HajekPart, PartDiagnostics]]] = {}  # the same rows, several values
    for factor, part in estimate.parts.values():
        used = finite(factor) != 0
        if not np.any(used):
            continue
        d = part_diagnostics(part)  # type: ignore[arg-type]  # parts are HajekParts by construction
        few = few | (used & d.unseen)
        estimated = estimated | used
        key = (part.explored.stratum, part.action)  # type: ignore[attr-defined]
        groups.setdefault(key, []).append((np.where(used, finite(factor), 0.0), part, d))  # type: ignore[arg-type]
        seen = (np.where(used, d.explored, 0.0), np.where(used, d.ess, 0.0))
        for table in (every, changed) if _paired(part) else (every,):
            old = table.get(key, (np.zeros(shape), np.zeros(shape)))
            table[key] = (np.maximum(old[0], seen[0]), np.maximum(old[1], seen[1]))
    gaps, events = _gaps(groups, totals)
    for key, group in groups.items():
        extra = extra + gaps[key]
        for weight, _, d in group:
            sparse = sparse | ((weight != 0) & (gaps[key] > 0) & (events.get(key, d.events) < FEW))
    decides = extra > FLOOR_SHARE * finite(variance) * (1 + 1e-9)  # robust to reassociated sums
    few = few | (sparse & decides)
    explored, ess = (sum((v[i] for v in every.values()), np.zeros(shape)) for i in (0, 1))
    if paired and changed:
        only = [sum((v[i] for v in changed.values()), np.zeros(shape)) for i in (0, 1)]
        has = only[0] > 0
        explored, ess = np.where(has, only[0], explored), np.where(has, only[1], ess)
    return Diagnostics(extra_variance=extra, few_events=few, explored=explored, ess=ess, estimated=estimated,
                       floor_decides=decides)


Group = list[tuple[np.ndarray, HajekPart, PartDiagnostics]]  # (factor, part, diagnostics) of the parts on some rows


def _gaps(groups: dict[object, Group], totals: Totals) -> tuple[dict[object, np.ndarray], dict[object, np.ndarray]]:
    """What the floor adds per group of parts on the same rows, and the explored events a nested one rests on.

    A candidate's estimate is its baseline's total plus the change where they act differently, so a
    baseline's stratum (the rows production allows) and a pair's stratum inside it (the rows production
    allows and the candidate challenges) both enter, with factors f_A and f_B: f_A·A + f_B·B =
    f_A·(A without B) + (f_A + f_B)·B. Their floors then count B's rows once, as A without B's floor
    (A's minus B's: a floor grows with the rows it covers, N·σ²/(explored share)) and B's with
    (f_A + f_B)² — 0 where the candidate's change removes B's rows from the estimate, as their sample
    variances' covariance already does. Adding both floors whole counted the shared rows' floor twice:
    `fraud_loss` for a candidate challenging part of production's allowed band was 1.46× as wide as its
    spread needs (docs/estimation.md). Only single-value groups nest (a ratio's parts keep `_group_gap`).
    """
    gaps = {key: _group_gap(group, totals) for key, group in groups.items()}
    events: dict[object, np.ndarray] = {}
    singles = {key: group[0] for key, group in groups.items() if len(group) == 1}
    for outer, (wa, a, da) in singles.items():
        inner = [(key, singles[key]) for key in singles if _nested_in(key, outer) and singles[key][1].value == a.value]
        if not inner:
            continue
        floor, within, seen = da.floor, da.within, da.events
        for key, (wb, _, db) in inner:
            present = wb != 0
            floor = floor - np.where(present, db.floor, 0.0)
            within = within - np.where(present, db.within, 0.0)
            counted = np.where(present & np.isfinite(db.events), db.events, 0.0)
            seen = np.where(np.isfinite(seen), seen - counted, seen)  # ∞: not rare
            gaps[key] = np.where(present, (wa + wb) ** 2 * np.maximum(db.floor - db.within, 0.0), 0.0)
        gaps[outer] = wa**2 * np.maximum(np.maximum(floor, 0.0) - np.maximum(within, 0.0), 0.0)
        events[outer] = seen
    return gaps, events


def _nested_in(inner: object, outer: object) -> bool:
    """Whether group key `inner` = (stratum, action) covers a part of `outer`'s rows: more members, the same action."""
    (s_in, a_in), (s_out, a_out) = inner, outer  # type: ignore[misc]
    return (a_in == a_out and s_in.logged == s_out.logged and s_in.weighted == s_out.weighted
            and len(s_in.members) > len(s_out.members) and set(s_out.members) <= set(s_in.members))


def _group_gap(group: Group, totals: Totals) -> np.ndarray:
    """What the floor adds to Σ_v f_v·(N·ȳ_v) over Hájek means of one stratum's rows under one action.

    One part: f²·max(0, floor − within). Several (a ratio's numerator and denominator read the same
    rows): the floors' standard deviations combine with the correlation the rows show between the
    values (none where the rows show no spread), so a ratio of values that move together (cost per
    approved volume) is not floored as if its parts were independent — which made such intervals
    3–4× too wide (docs/estimation.md).
    """
    if len(group) == 1:
        weight, _, d = group[0]
        return np.where(weight != 0, weight**2 * np.maximum(d.floor - d.within, 0.0), 0.0)
    within = np.zeros_like(group[0][2].within)
    floor = np.zeros_like(within)
    for i, (wa, a, da) in enumerate(group):
        for j, (wb, b, db) in enumerate(group):
            if j < i:
                continue
            times = 1.0 if i == j else 2.0
            if i == j:
                covariance, rho = da.within, 1.0
            else:
                covariance = _within_covariance(a, b, totals)
                rho = np.clip(finite(divide(covariance, np.sqrt(da.within * db.within))), -1.0, 1.0)
            within = within + times * wa * wb * finite(covariance)
            floor = floor + times * wa * wb * rho * np.sqrt(finite(da.floor) * finite(db.floor))
    return np.maximum(floor - within, 0.0)


def _within_covariance(a: HajekPart, b: HajekPart, totals: Totals) -> np.ndarray:
    """The sample covariance of two Hájek contributions N·ȳ over the same rows (0 where the sums are not kept)."""
    try:
        cross = {(x, y): totals.cross(getattr(a, x), getattr(b, y)) for x in ("main", "norm") for y in ("main", "norm")}
    except pl.exceptions.ColumnNotFoundError:
        return np.zeros_like(totals.total(a.size))
    mean_a, mean_b = (finite(divide(totals.total(p.main), totals.total(p.norm))) for p in (a, b))
    scale_a, scale_b = (finite(divide(totals.total(p.size), totals.total(p.norm))) for p in (a, b))
    centred = cross[("main", "main")] - mean_b * cross[("main", "norm")] - mean_a * cross[("norm", "main")] \
        + mean_a * mean_b * cross[("norm", "norm")]
    return scale_a * scale_b * centred


def _paired(part: object) -> bool:
    """A part of a pair's stratum (rows where baseline and policy act differently), not of one policy's."""
    stratum = part.size.stratum  # type: ignore[attr-defined]  # parts are HajekParts by construction
    return stratum is not None and len(stratum.members) == 2


def part_diagnostics(totals: Totals) -> Callable[[HajekPart], PartDiagnostics]:
    """A memoised function from a Hájek part to its diagnostics over `totals`' segments."""
    memo: dict[HajekPart, PartDiagnostics] = {}
    plan = totals.plan

    def compute(part: HajekPart) -> PartDiagnostics:
        if part in memo:
            return memo[part]
        size, main, norm = totals.total(part.size), totals.total(part.main), totals.total(part.norm)
        mean = finite(divide(main, norm))
        scale = finite(divide(size, norm))
        squares = totals.cross(part.main, part.main) - 2 * mean * totals.cross(part.main, part.norm) \
            + mean**2 * totals.cross(part.norm, part.norm)
        within = scale**2 * np.maximum(squares, 0.0)
        explored = totals.total(part.explored)
        shape = outcomes(plan.values, plan.actions, part.action, part.value)
        floor = _floor(part, shape, size, explored, totals)
        moves = _moves_with_fraud(part, shape)
        events = np.where(moves, totals.total(part.events), np.inf) if np.any(moves) else np.full_like(within, np.inf)
        ess = finite(divide(norm**2, totals.cross(part.norm, part.norm)))
        unseen = (size > 0) & (explored <= 0)
        memo[part] = PartDiagnostics(within=within, floor=floor, explored=explored, events=events, ess=ess, unseen=unseen)
        return memo[part]

    @cache
    def segment_amounts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per segment, once for every part: the amount's tail shape E[A²]/E[A]² (1 on these payments, `finite`,
        whose amounts are known) and the first two moments of the observed frauds' amounts."""
        everyone, amount = stratum_term("one", Stratum(())), stratum_term("amount", Stratum(()))
        n, total_amount = totals.total(everyone), totals.total(amount)
        if plan.finite:
            tail = np.ones_like(n)
        else:  # a stratum's few amounts understate a heavy tail: keep at least the segment's shape
            tail = np.nan_to_num(divide(totals.cross(amount, amount) * n, total_amount**2), nan=1.0)
        # Fraud concentrates on some amounts: a fraud's size is at least as spread as the segment's observed frauds
        frauds = totals.total(stratum_term("fraud", Stratum(())))
        fraud_amount = stratum_term("fraud_volume", Stratum(()))
        return (tail, finite(divide(totals.total(fraud_amount), frauds)),
                finite(divide(totals.cross(amount, fraud_amount), frauds)))

    def _floor(part: HajekPart, shape: Outcomes, size: np.ndarray, explored: np.ndarray, totals: Totals) -> np.ndarray:
        if shape.per_row:
            variance = _per_row_variance(part, totals, explored)
            return size**2 / np.maximum(explored, 1.0) * np.maximum(variance, 0.0)
        if not (shape.fraud or shape.a0 or shape.a1):
            return np.zeros_like(size)
        rows = totals.total(_rows(part))
        mean = finite(divide(totals.total(part.amount), rows))
        square = finite(divide(totals.cross(part.amount, part.amount), rows))
        tail, fraud_mean, fraud_square = segment_amounts()
        # a few rows understate a heavy tail: the segment's shape, weighted as TAIL_PRIOR rows against the stratum's
        square = np.maximum(square, (rows * square + TAIL_PRIOR * mean**2 * tail) / (rows + TAIL_PRIOR))
        p_auth, p_fraud = _rates(part, explored)
        first, second = _approved_amounts(part, totals)
        moments = _Moments(mean * first, square * second)  # the amounts of approved payments
        # ... and, as for any amount, at least the segment's tail shape (a few dozen frauds understate it too)
        fraud = _Moments(np.maximum(mean, fraud_mean), np.maximum(np.maximum(square, fraud_square), fraud_mean**2 * tail))
        authorisation, fraud_part = moments.bernoulli(p_auth, shape.a0, shape.a1), fraud.bernoulli(p_fraud, shape.f0, shape.f1)
        if plan.finite:
            # On these payments only the unexplored rows' outcomes are unknown: the authorisation part takes the
            # finite-population correction; the fraud part stays the prior for events the explored rows cannot show.
            unknown = np.clip(1.0 - finite(divide(explored, size)), 0.0, 1.0)
            variance = unknown * authorisation + fraud_part
        else:
            variance = authorisation + fraud_part + 2 * (
                p_fraud * fraud.product(shape.a0, shape.a1, shape.f0, shape.f1)
                - p_auth * p_fraud * moments.first(shape.a0, shape.a1) * fraud.first(shape.f0, shape.f1))
        return size**2 / np.maximum(explored, 1.0) * np.maximum(variance, 0.0)

    def _rates(part: HajekPart, explored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Approval and fraud rates under the part's action, each shrunk by half an event (Jeffreys)."""
        authorized = totals.total(part.authorized)
        p_auth = (authorized + 0.5) / (explored + 1.0)
        return p_auth, p_auth * (totals.total(part.events) + 0.5) / (authorized + 1.0)  # fraud only on authorized ones

    def _moves_with_fraud(part: HajekPart, shape: Outcomes) -> np.ndarray | bool:
        """Whether the value moves with fraud under the part's action: from its table, or for a value without
        one, whether its rows' values when lost differ from when approved (liability shift: a challenge's do not)."""
        if not shape.per_row or not shape.fraud:
            return shape.fraud
        action, everyone = plan.actions[part.action], Stratum(())
        sums = [totals.total(stratum_term(counterfactual_column(part.value, action, o, squared=q), everyone))
                for q in (False, True) for o in ("approved", "lost")]
        return ~(np.isclose(sums[0], sums[1], rtol=1e-12, atol=0.0) & np.isclose(sums[2], sums[3], rtol=1e-12, atol=0.0))

    def _per_row_variance(part: HajekPart, totals: Totals, explored: np.ndarray) -> np.ndarray:
        """Var(y) of a value without a table over the stratum's rows, each row's value known under every outcome.

        With approval at p_A and fraud at p_F (as for a table's value), a row's value is its
        declined, approved or lost counterpart with probabilities 1 − p_A, p_A − p_F and p_F: the mean over the
        stratum's rows of Σ_o P(o)·v_o² minus the square of the mean of Σ_o P(o)·v_o. For the finite
        estimand only the unexplored rows' outcomes are unknown (the factor 1 − m/N). (Never a block's:
        a row value's total under block is exact, `simulator.estimate.strata.stratum_value`.)

        A few rows understate a heavy tail, and a value that only some rows carry (one brand's volume)
        can be 0 on all of a small stratum's rows: each outcome's moments are pulled towards the
        segment's, per unit of the stratum's amount and squared amount (its second moment pulled towards
        the segment's shape), with the weight of `TAIL_PRIOR` rows, as for a table's amounts.
        """
        stratum, action = Stratum(_rows(part).stratum.members), plan.actions[part.action]  # type: ignore[union-attr]
        rows = totals.total(_rows(part))
        p_auth, p_fraud = _rates(part, explored)
        chance = {"declined": 1.0 - p_auth, "approved": p_auth - p_fraud, "lost": p_fraud}
        tail = segment_amounts()[0]
        everyone = Stratum(())
        amount, segment_amount = part.amount, stratum_term("amount", everyone)
        amount_mean = finite(divide(totals.total(amount), rows))
        amount_square = finite(divide(totals.cross(amount, amount), rows))
        pulled = np.maximum(amount_square, amount_mean**2 * tail)  # the prior's amounts: the segment's shape at least
        weight = rows / (rows + TAIL_PRIOR)

        def moment(outcome: str, squared: bool) -> np.ndarray:
            column = counterfactual_column(part.value, action, outcome, squared=squared)
            own = finite(divide(totals.total(stratum_term(column, stratum)), rows))
            per_amount = finite(divide(totals.total(stratum_term(column, everyone)),
                                              totals.cross(segment_amount, segment_amount) if squared
                                              else totals.total(segment_amount)))
            return weight * own + (1.0 - weight) * per_amount * (pulled if squared else amount_mean)

        # approved payments are lighter-tailed than all (issuers decline large ones more): as for a table's value,
        # the approved and lost outcomes' moments take the explored rows' ratio of approved to all amounts
        ratio = dict(zip((False, True), _approved_amounts(part, totals), strict=True))
        first = sum(chance[o] * moment(o, False) * (1.0 if o == "declined" else ratio[False]) for o in OUTCOMES)
        second = sum(chance[o] * moment(o, True) * (1.0 if o == "declined" else ratio[True]) for o in OUTCOMES)
        variance = second - first**2
        if plan.finite:
            variance = variance * np.clip(1.0 - finite(divide(explored, totals.total(part.size))), 0.0, 1.0)
        return variance

    return compute


TAIL_PRIOR = 100.0  # rows of the stratum at which its own amounts' second moment gets half its weight
APPROVED_PRIOR = 50.0  # approved explored rows at which their amounts' ratio to all amounts gets half its weight


def _approved_amounts(part: HajekPart, totals: Totals) -> tuple[np.ndarray, np.ndarray]:
    """How much larger the first and second moments of the amount are among approved payments than among all.

    Issuers decline large payments more (and fraud-prone ones), so approved amounts are lighter-tailed than the
    stratum's: taking approval independent of the amount overstates the authorisation part by up to 2×
    (docs/estimation.md). Read off the part's explored rows, whose approvals are observed, as ratios of
    authorised-row to all-row moments, shrunk towards 1 (independence) when few approved rows show them.
    """
    counted = part.explored.stratum
    amount, approved = stratum_term("amount", counted), stratum_term("authorized_volume", counted)
    rows, approvals = totals.total(stratum_term("one", counted)), totals.total(stratum_term("authorized", counted))
    weight = approvals / (approvals + APPROVED_PRIOR)
    out = []
    for approved_moment, all_moment in ((totals.total(approved), totals.total(amount)),
                                        (totals.cross(approved, amount), totals.cross(amount, amount))):
        ratio = np.nan_to_num(divide(divide(approved_moment, approvals), divide(all_moment, rows)), nan=1.0,
                              posinf=1.0, neginf=1.0)
        out.append(1.0 + weight * (ratio - 1.0))
    return out[0], out[1]


@dataclass(frozen=True, slots=True)
class _Moments:
    """The first two moments of the amount over a stratum, for sizes c0 + c1·amount."""

    mean: np.ndarray
    square: np.ndarray

    def first(self, c0: float, c1: float) -> np.ndarray:
        return c0 + c1 * self.mean

    def product(self, a0: float, a1: float, b0: float, b1: float) -> np.ndarray:
        """E[(a0 + a1·A)(b0 + b1·A)]."""
        return a0 * b0 + (a0 * b1 + a1 * b0) * self.mean + a1 * b1 * self.square

    def bernoulli(self, p: np.ndarray, c0: float, c1: float) -> np.ndarray:
        """Var(event · size) with event ~ Bernoulli(p) independent of the size."""
        return p * self.product(c0, c1, c0, c1) - p**2 * self.first(c0, c1) ** 2


def _rows(part: HajekPart) -> Term:
    """Every row of the part's stratum (the amount's moments are over them)."""
    stratum = part.amount.stratum
    assert stratum is not None
    return stratum_term("one", Stratum(stratum.members))
