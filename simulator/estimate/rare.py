"""Rare-event floor and diagnostics of stratified estimates: when explored rows cannot show the events.

A Hájek mean over a stratum's explored rows has a sample variance that sees
only the events those rows happened to carry. With a handful of explored rows
and a rare outcome (fraud), it is often zero or far below the truth, and an
interval built on it covers far less than it claims. The floor models a
stratum's value as event × size, with the event Bernoulli(p̃) and p̃ shrunk to
(events + ½) / (explored + 1) (Jeffreys), the size's moments taken from every
row of the stratum (the amount is known for all rows):

    floor = N² / m · (p̃ · E[S²] − p̃² · E[S]²)

and each part's variance is raised to at least its floor. It replaces the
Fay–Feuer gamma interval's "one more event at the largest weight" with "half an
event at the stratum's own weight" (docs/research/intervals.md §3).

An estimate is `few_events` when the floor moves its variance by more than
`FLOOR_SHARE` and a part whose floor binds rests on fewer than `FEW` explored
events, or when a stratum it needs has rows but no explored row of the action
(its mean was borrowed from the whole segment): its interval then rests on a
prior, not on the data, and must not decide a launch alone. With many events
the floor still applies (the amounts of every row describe an event's size
better than the few explored ones) but the estimate is not flagged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from simulator.estimate.linearised import Estimate, divide
from simulator.estimate.strata import HajekPart, rare_event_size
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
    for factor, part in estimate.parts.values():
        used = np.nan_to_num(factor) != 0
        if not np.any(used):
            continue
        d = part_diagnostics(part)  # type: ignore[arg-type]  # parts are HajekParts by construction
        gap = np.maximum(d.floor - d.within, 0.0)
        extra = extra + np.where(used, np.nan_to_num(factor) ** 2 * gap, 0.0)
        few = few | (used & d.unseen)
        sparse = sparse | (used & (gap > 0) & (d.events < FEW))
        estimated = estimated | used
        key = (part.explored.stratum, part.action)  # type: ignore[attr-defined]
        seen = (np.where(used, d.explored, 0.0), np.where(used, d.ess, 0.0))
        for table in (every, changed) if _paired(part) else (every,):
            old = table.get(key, (np.zeros(shape), np.zeros(shape)))
            table[key] = (np.maximum(old[0], seen[0]), np.maximum(old[1], seen[1]))
    few = few | (sparse & (extra > FLOOR_SHARE * np.nan_to_num(variance) * (1 + 1e-9)))  # robust to reassociated sums
    explored, ess = (sum((v[i] for v in every.values()), np.zeros(shape)) for i in (0, 1))
    if paired and changed:
        only = [sum((v[i] for v in changed.values()), np.zeros(shape)) for i in (0, 1)]
        has = only[0] > 0
        explored, ess = np.where(has, only[0], explored), np.where(has, only[1], ess)
    return Diagnostics(extra_variance=extra, few_events=few, explored=explored, ess=ess, estimated=estimated)


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
        mean = np.nan_to_num(divide(main, norm))
        scale = np.nan_to_num(divide(size, norm))
        squares = totals.cross(part.main, part.main) - 2 * mean * totals.cross(part.main, part.norm) \
            + mean**2 * totals.cross(part.norm, part.norm)
        within = scale**2 * np.maximum(squares, 0.0)
        explored = totals.total(part.explored)
        floor, events = np.zeros_like(within), np.full_like(within, np.inf)
        if part.events is not None:
            floor, events = _floor(part, size, explored, totals), totals.total(part.events)
        ess = np.nan_to_num(divide(norm**2, totals.cross(part.norm, part.norm)))
        unseen = (size > 0) & (explored <= 0)
        memo[part] = PartDiagnostics(within=within, floor=floor, explored=explored, events=events, ess=ess, unseen=unseen)
        return memo[part]

    def _floor(part: HajekPart, size: np.ndarray, explored: np.ndarray, totals: Totals) -> np.ndarray:
        assert part.events is not None
        rows = totals.total(_rows(part))
        mean_amount = np.nan_to_num(divide(totals.total(part.amount), rows))
        mean_square = np.nan_to_num(divide(totals.cross(part.amount, part.amount), rows))
        c0, c1 = rare_event_size(plan.value_model, plan.actions, part.action, part.value)
        first = c0 + c1 * mean_amount
        second = c0 * c0 + 2 * c0 * c1 * mean_amount + c1 * c1 * mean_square
        rate = (totals.total(part.events) + 0.5) / (explored + 1.0)
        return size**2 / np.maximum(explored, 1.0) * np.maximum(rate * second - rate**2 * first**2, 0.0)

    return compute


def _rows(part: HajekPart) -> Term:
    """Every row of the part's stratum (the amount's moments are over them)."""
    stratum = part.amount.stratum
    assert stratum is not None
    return stratum_term("one", Stratum(stratum.members))
