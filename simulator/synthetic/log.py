"""From potential outcomes to the logged transactions: time, logging policy, censoring.

- Time: global row i (of n) is created at fraction (i + u_i) / n of the period,
  a jittered grid, so rows are in time order by construction and any
  contiguous slice of rows is a contiguous slice of time; the time of day is
  then warped to a daily cycle (peak at `PEAK_HOUR` UTC, trough twelve hours
  later, peak/trough rate ~3.4). Timestamps are integer microseconds UTC.
- Logging policy: the base action from a ladder of thresholds on fraud_score
  (allow below `challenge_above`, challenge in [challenge_above, block_above),
  block at or above `block_above`; in the `review` scenario, review in
  [review_above, block_above) and challenge only up to `review_above`); with
  probability `exploration` an action drawn uniformly among the scenario's
  actions (three, or four with review) instead. The logged action is drawn
  from the full distribution with one uniform, and `propensity` is that
  distribution's entry for the logged action, so they agree exactly.
- Censoring: a dispute arrives at created_at + delay (truncated to the
  microsecond). The log is extracted at `as_of`; a dispute arriving later is
  not yet known: fraud_dispute False, dispute_lost and disputed_at null.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator import schema
from simulator.synthetic.model import (
    Features,
    Latent,
    Model,
    Potential,
    ReviewDecision,
    ReviewParams,
    draw_features,
    draw_latent,
    draw_review,
    draw_rows,
    potential_outcomes,
    review_outcomes,
)

DAY_US = 86_400_000_000
PEAK_HOUR = 16.0
DAILY_AMPLITUDE = 0.55  # rate(h) = 1 + A cos(2 pi (h - PEAK_HOUR) / 24)
_GRID = np.linspace(0.0, 1.0, 24 * 60 + 1)  # inverse daily CDF by linear interpolation per minute
# Action codes are positions in the scenario's action set, which lists the
# actions in the order of the ladder (allow < challenge [< review] < block):
# base_action and draw_action rely on it. ALLOW, CHALLENGE, BLOCK are the codes
# of the default set; a chunk's own codes come from `Chunk.code`.
ALLOW, CHALLENGE, BLOCK = (schema.DEFAULT_ACTIONS.index(a) for a in (schema.ALLOW, schema.CHALLENGE, schema.BLOCK))
REVIEW = "review"
REVIEW_ACTIONS: tuple[str, ...] = (schema.ALLOW, schema.CHALLENGE, REVIEW, schema.BLOCK)


def _daily_cdf() -> np.ndarray:
    """Share of a day's payments before each grid point of the day."""
    x0 = PEAK_HOUR / 24.0
    cdf = _GRID + DAILY_AMPLITUDE / (2 * np.pi) * (np.sin(2 * np.pi * (_GRID - x0)) + np.sin(2 * np.pi * x0))
    cdf[0], cdf[-1] = 0.0, 1.0
    return cdf


_DAILY_CDF = _daily_cdf()


@dataclass(frozen=True, slots=True)
class Timeline:
    """`rows` payments over `days` days from `start_us`; extracted at `as_of_us`."""

    start_us: int
    days: int
    rows: int

    @property
    def as_of_us(self) -> int:
        """The extract time: the end of the period."""
        return self.start_us + self.days * DAY_US

    def created_at_us(self, lo: int, u: np.ndarray) -> np.ndarray:
        """Creation times (int64 µs) of global rows lo, lo+1, ... from their uniforms."""
        index = np.arange(lo, lo + len(u), dtype=np.float64)
        t = (index + u) / self.rows * self.days  # in days, increasing in the row index
        day = np.floor(t)
        time_of_day = np.interp(t - day, _DAILY_CDF, _GRID)
        return self.start_us + np.floor((day + time_of_day) * DAY_US).astype(np.int64)


@dataclass(frozen=True, slots=True)
class LoggingPolicy:
    """A ladder of inclusive thresholds on fraud_score with uniform exploration over the actions.

    Without `review_above` the actions are allow, challenge, block (the default
    scenario); with it, allow, challenge, review, block, review taking
    [review_above, block_above).
    """

    challenge_above: float
    block_above: float
    exploration: float
    review_above: float | None = None

    @property
    def actions(self) -> tuple[str, ...]:
        """The action set, in ladder order (action codes are positions in it)."""
        return schema.DEFAULT_ACTIONS if self.review_above is None else REVIEW_ACTIONS

    @property
    def cuts(self) -> tuple[float, ...]:
        """The ladder's thresholds: from the k-th on, the (k + 1)-th action is taken."""
        middle = () if self.review_above is None else (self.review_above,)
        return (self.challenge_above, *middle, self.block_above)

    def base_action(self, fraud_score: np.ndarray) -> np.ndarray:
        """Action code of the thresholds alone: the number of thresholds the score reaches."""
        first, *rest = self.cuts
        code = (fraud_score >= first).astype(np.int8)
        for cut in rest:
            code = code + (fraud_score >= cut)
        return code

    def probabilities(self, base: np.ndarray) -> np.ndarray:
        """(n, k) logging probabilities over k actions: base action 1 - (k - 1)e/k, the others e/k."""
        n_actions = len(self.actions)
        other = self.exploration / n_actions
        probs = np.full((len(base), n_actions), other)
        probs[np.arange(len(base)), base] = 1.0 - (n_actions - 1) * other
        return probs


def draw_action(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Logged action code from the (n, k) probabilities and one uniform per row (inverse CDF)."""
    cumulative = np.cumsum(probs[:, :-1], axis=1)  # sequential sums: p0, p0 + p1, ... as before for 3 actions
    return (u[:, None] >= cumulative).sum(axis=1).astype(np.int8)


@dataclass(frozen=True, slots=True)
class Logged:
    """The logged outcome of each row; null where the SPEC §2 rules say so.

    authorized is null where blocked, fraud_dispute where not authorized,
    dispute_lost and disputed_at where fraud_dispute is not true; the value
    arrays hold False / 0 there.
    """

    action: np.ndarray
    authorized: np.ndarray
    fraud_dispute: np.ndarray
    dispute_lost: np.ndarray
    disputed_at_us: np.ndarray
    eventual_dispute: np.ndarray  # the dispute will arrive, known at as_of or not


def observe(
    action: np.ndarray,
    potential: dict[str, Potential],
    latent: Latent,
    created_at_us: np.ndarray,
    as_of_us: int,
    actions: tuple[str, ...] = schema.DEFAULT_ACTIONS,
) -> Logged:
    """What the log shows at `as_of_us` for the logged action (a code into `actions`) of each row.

    Actions without potential outcomes (block) show none: False here, null in the tables.
    """
    taken = [(action == actions.index(a), outcome) for a, outcome in potential.items()]

    def logged(name: str) -> np.ndarray:
        shown = np.zeros(len(action), dtype=bool)
        for is_action, outcome in taken:
            shown = np.where(is_action, getattr(outcome, name), shown)
        return shown

    eventual = logged("fraud_dispute")
    disputed_at = created_at_us + np.floor(latent.dispute_delay_days * DAY_US).astype(np.int64)
    fraud_dispute = eventual & (disputed_at <= as_of_us)
    return Logged(
        action=action,
        authorized=logged("authorized"),
        fraud_dispute=fraud_dispute,
        dispute_lost=fraud_dispute & logged("dispute_lost"),
        disputed_at_us=np.where(fraud_dispute, disputed_at, 0),
        eventual_dispute=eventual,
    )


@dataclass(frozen=True, slots=True)
class Chunk:
    """Everything simulated for global rows [lo, lo + n): the log and its ground truth."""

    lo: int
    features: Features
    latent: Latent
    potential: dict[str, Potential]
    created_at_us: np.ndarray
    base_action: np.ndarray
    logging_probs: np.ndarray  # (n, k) in `actions` order
    propensity: np.ndarray
    logged: Logged
    actions: tuple[str, ...] = schema.DEFAULT_ACTIONS  # the scenario's action set; codes index it
    review: ReviewDecision | None = None  # the reviewer and the wait (review scenario only)

    def code(self, action: str) -> int:
        """The code of `action` in this chunk's action set, -1 when the set lacks it."""
        return self.actions.index(action) if action in self.actions else -1


def simulate_chunk(
    model: Model,
    policy: LoggingPolicy,
    timeline: Timeline,
    lo: int,
    hi: int,
    review: ReviewParams | None = None,
) -> Chunk:
    """Simulate global rows [lo, hi); a pure function of its arguments.

    When the policy's action set has review, its outcomes follow `review`
    (default `ReviewParams()`), drawn from the review stream: the rows' other
    draws, and so every outcome of the other actions, are those of the default
    scenario.
    """
    draws = draw_rows(model.seed, lo, hi)
    features = draw_features(model.world, draws, model.params)
    latent = draw_latent(model, features, draws)
    potential = potential_outcomes(model, latent, draws)
    decision = None
    if REVIEW in policy.actions:
        review_draws = draw_review(model.seed, lo, hi)
        potential[REVIEW], decision = review_outcomes(model, latent, draws, review_draws, review or ReviewParams())
    created_at_us = timeline.created_at_us(lo, draws.time)
    base = policy.base_action(latent.fraud_score)
    probs = policy.probabilities(base)
    action = draw_action(probs, draws.action)
    return Chunk(
        lo=lo,
        features=features,
        latent=latent,
        potential=potential,
        created_at_us=created_at_us,
        base_action=base,
        logging_probs=probs,
        propensity=probs[np.arange(len(action)), action],
        logged=observe(action, potential, latent, created_at_us, timeline.as_of_us, policy.actions),
        actions=policy.actions,
        review=decision,
    )
