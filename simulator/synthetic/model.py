"""The per-row generative model of synthetic card payments.

Every row is a payment attempt whose randomness comes from a fixed set of
per-row draws (`RowDraws`: 13 uniforms, 5 standard normals). The draws of row
`i` depend only on (seed, i): they come from a PCG64 generator keyed by
`SeedSequence(seed, spawn_key=(ROW_STREAM, i // BLOCK_ROWS))`, a whole block
at a time. So a row's features and outcomes do not depend on how the rows are
chunked or split into files. The review scenario's extra randomness
(`ReviewDraws`: 2 uniforms) comes from its own stream, `REVIEW_STREAM`, keyed
the same way, so adding it leaves every draw of the default scenario unchanged.

Model, per row (parameters in `ModelParams`, tables in `synthetic_world`):

- features: card country (Zipf-like volume), brand (mix by country), funding,
  MCC, a merchant of that MCC (Zipf volume within the MCC), channel (moto share
  by MCC), amount ~ log-normal(log median_mcc, sigma_mcc), rounded to cents,
  at least `min_amount`.
- fraud: attempt with probability p = sigmoid(alpha + country + mcc + funding +
  channel + merchant + slope * log(amount / reference_amount)); alpha is solved
  per seed so that the mean p over the traffic is `fraud_rate`.
- fraud_score: z = N(0, 1) + separation * is_fraud, turned into the Bayes
  posterior with the *global* prior `fraud_rate`:
  sigmoid(logit(fraud_rate) + separation * z - separation**2 / 2). Calibrated
  over the traffic, miscalibrated within segments (it ignores them), as real
  model scores are.
- issuer approval of a legitimate payment: q = sigmoid(eta + seen + hidden),
  eta from country, funding, brand, channel and amount (larger amounts are
  declined more), seen and hidden per-row normal noise. auth_score =
  E[q | eta + seen], by the probit approximation. A fraud attempt is approved
  with probability `fraud_approval` * q (the issuer catches some).
- allow: authorized ~ Bernoulli(q * fraud factor).
- challenge (3-D Secure): the shopper completes with `completion_legit`
  (fraudsters: `completion_fraud`), then the issuer approves with
  sigmoid(logit q + three_ds_uplift) * fraud factor.
- an authorized fraud attempt is disputed with `dispute_fraud`; a legitimate
  one with a friendly-fraud rate (`friendly_allow`, `friendly_challenge`). The
  merchant loses `lost_fraud` of unauthenticated fraud disputes,
  `lost_friendly` of unauthenticated friendly-fraud ones and
  `lost_authenticated` of disputes on 3-D Secure payments (liability shift).
- review (the `review` scenario only, parameters in `ReviewParams`): the
  payment waits for a human reviewer, who declines a fraud attempt with
  `review_catch` and a legitimate one with `review_false_decline`; while it
  waits a legitimate shopper abandons with `review_abandon`. A payment the
  reviewer passes (and the shopper still wants) goes to the issuer as under
  allow: same approval probability, same `auth` uniform, disputes and lost
  disputes as under allow (no liability shift: the reviewer does not
  authenticate the cardholder).
- block: no outcome.
- a dispute arrives `delay` days after the payment, log-normal with median
  `delay_median_days` and log-sd `delay_sigma` (~7 % beyond 90 days).

Potential outcomes under allow, challenge and review share the same uniforms
(issuer approval, dispute, dispute lost), so they are coupled: a payment the
issuer approves under allow is approved under challenge if the shopper
completes, and under review if the reviewer passes it and the shopper waits.

At the defaults: ~0.75 % of attempts are fraud, fraud_score has an AUC of
~0.95, ~90 % of legitimate payments are approved under allow and ~81 % under
challenge, and with the default logging policy fraud disputes come to ~20
basis points of the authorized count and ~50 of the authorized volume.
Under review, ~85 % of fraud attempts are declined by the reviewer (~6 % of
fraud attempts are authorized, against ~48 % under allow) and ~92 % of
legitimate payments reach the issuer (3 % false declines, 5 % abandonment),
so ~83 % of legitimate payments are approved.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy.special import expit, logit

from simulator import schema
from simulator.synthetic.world import BRANDS, World, build_world

BLOCK_ROWS = 1 << 16  # rows per random block; fixed, so chunking never changes the data
WORLD_STREAM, ROW_STREAM, CALIBRATION_STREAM, REVIEW_STREAM = 0, 1, 2, 3
CALIBRATION_BLOCKS = 4  # rows drawn to solve the fraud intercept: 4 * 65,536


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Every tunable number of the generative model (see the module docstring)."""

    fraud_rate: float = 0.0075
    fraud_amount_slope: float = 0.35
    score_separation: float = 2.3
    reference_amount: float = 50.0
    min_amount: float = 0.50
    auth_base: float = 2.3
    auth_amount_slope: float = -0.3
    auth_seen_sd: float = 0.6
    auth_hidden_sd: float = 0.5
    fraud_approval: float = 0.6
    three_ds_uplift: float = 0.4
    completion_legit: float = 0.88
    completion_fraud: float = 0.12
    dispute_fraud: float = 0.9
    friendly_allow: float = 5e-4
    friendly_challenge: float = 3e-4
    lost_fraud: float = 0.8
    lost_friendly: float = 0.45
    lost_authenticated: float = 0.1
    delay_median_days: float = 35.0
    delay_sigma: float = 0.64


def check_probability(name: str, value: object) -> None:
    """Raise ValueError unless `value` is a finite int or float in [0, 1]."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not 0.0 <= value <= 1.0:  # type: ignore[operator]  # NaN fails the range test too
        raise ValueError(f"{name}: must be a number in [0, 1], got {value!r}")


@dataclass(frozen=True, slots=True)
class ReviewParams:
    """The manual-review action of the `review` scenario: what the reviewer and the wait do.

    Kept apart from `ModelParams` because only the review scenario has the
    action; the default scenario's model (and its generation.json) is untouched.
    """

    review_catch: float = 0.85
    """Probability that the reviewer declines a fraud attempt (the fraud the review catches)."""
    review_false_decline: float = 0.03
    """Probability that the reviewer declines a legitimate payment (a good customer lost)."""
    review_abandon: float = 0.05
    """Probability that a legitimate shopper gives up while the payment waits for review
    (fraudsters wait: they have nothing to lose)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            check_probability(f.name, getattr(self, f.name))


@dataclass(frozen=True, slots=True)
class RowDraws:
    """The per-row randomness: uniforms on [0, 1) (`time` .. `action`), then standard normals.

    A block draws the fields in this order, so the order is part of the
    reproducibility contract: a new normal appended at the end leaves every
    existing draw unchanged; any other change of the list changes every dataset.
    """

    time: np.ndarray
    country: np.ndarray
    brand: np.ndarray
    funding: np.ndarray
    mcc: np.ndarray
    merchant: np.ndarray
    channel: np.ndarray
    fraud: np.ndarray
    auth: np.ndarray
    three_ds: np.ndarray
    dispute: np.ndarray
    lost: np.ndarray
    action: np.ndarray
    amount: np.ndarray
    score: np.ndarray
    auth_seen: np.ndarray
    auth_hidden: np.ndarray
    delay: np.ndarray


_DRAW_NAMES = tuple(f.name for f in fields(RowDraws))
N_UNIFORM = _DRAW_NAMES.index("amount")  # fields before `amount` are uniforms, the rest normals


@dataclass(frozen=True, slots=True)
class ReviewDraws:
    """The review scenario's extra per-row randomness: uniforms on [0, 1), from `REVIEW_STREAM`.

    Like `RowDraws`, the field order is part of the reproducibility contract.
    """

    decision: np.ndarray  # the reviewer declines when below review_catch / review_false_decline
    abandon: np.ndarray  # a legitimate shopper abandons when below review_abandon


def _fill_block(seed: int, stream: int, block: int, out: np.ndarray, n_uniform: int = N_UNIFORM) -> None:
    """Fill `out` (fields, BLOCK_ROWS) with one block's draws, field by field: `n_uniform` uniform
    fields, then standard normals."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream, block))))
    for row in range(n_uniform):
        rng.random(out=out[row])
    for row in range(n_uniform, out.shape[0]):
        rng.standard_normal(out=out[row])


def _draw_table(seed: int, stream: int, lo: int, hi: int, n_fields: int, n_uniform: int) -> np.ndarray:
    """(n_fields, hi - lo) draws of global rows [lo, hi) of `stream`: whole blocks generated in place, then sliced.

    Each field is one contiguous array; a block fills its own column range, so
    nothing is copied after drawing.
    """
    first, last = lo // BLOCK_ROWS, (hi - 1) // BLOCK_ROWS
    table = np.empty((n_fields, (last - first + 1) * BLOCK_ROWS))
    for i, block in enumerate(range(first, last + 1)):
        _fill_block(seed, stream, block, table[:, i * BLOCK_ROWS : (i + 1) * BLOCK_ROWS], n_uniform)
    start = lo - first * BLOCK_ROWS
    return table[:, start : start + hi - lo]


def draw_rows(seed: int, lo: int, hi: int, stream: int = ROW_STREAM) -> RowDraws:
    """Draws of global rows [lo, hi) (`RowDraws`), independent of how the rows are chunked."""
    return RowDraws(*_draw_table(seed, stream, lo, hi, len(_DRAW_NAMES), N_UNIFORM))


_REVIEW_DRAWS = len(fields(ReviewDraws))


def draw_review(seed: int, lo: int, hi: int) -> ReviewDraws:
    """The review scenario's draws of global rows [lo, hi), from their own stream (`REVIEW_STREAM`)."""
    return ReviewDraws(*_draw_table(seed, REVIEW_STREAM, lo, hi, _REVIEW_DRAWS, _REVIEW_DRAWS))


@dataclass(frozen=True, slots=True)
class Features:
    """Observed features: category codes index the `synthetic_world` tables."""

    country: np.ndarray
    brand: np.ndarray
    funding: np.ndarray
    mcc: np.ndarray
    merchant: np.ndarray
    channel: np.ndarray  # 0 ecommerce, 1 moto
    amount: np.ndarray


def draw_features(world: World, draws: RowDraws, params: ModelParams) -> Features:
    """Features of each row from its uniforms and its amount normal."""
    country = world.country.index(draws.country).astype(np.int32)
    mcc = world.mcc.index(draws.mcc).astype(np.int32)
    brand = world.brand.index(2.0 * country + draws.brand) - country * len(BRANDS)
    log_amount = world.mcc_log_median[mcc] + world.mcc_log_sigma[mcc] * draws.amount
    return Features(
        country=country,
        brand=brand.astype(np.int32),
        funding=world.funding.index(draws.funding).astype(np.int32),
        mcc=mcc,
        merchant=world.merchant_order[world.merchant.index(2.0 * mcc + draws.merchant)],
        channel=(draws.channel < world.mcc_moto[mcc]).astype(np.int32),
        amount=np.maximum(np.round(np.exp(log_amount), 2), params.min_amount),
    )


def fraud_log_odds(world: World, x: Features, params: ModelParams) -> np.ndarray:
    """Fraud log-odds of each row without the intercept."""
    return (
        world.country_fraud[x.country]
        + world.mcc_fraud[x.mcc]
        + world.funding_fraud[x.funding]
        + world.channel_fraud[x.channel]
        + world.merchant_fraud[x.merchant]
        + params.fraud_amount_slope * np.log(x.amount / params.reference_amount)
    )


@dataclass(frozen=True, slots=True)
class Model:
    """A world with its fraud intercept solved so the mean fraud probability is `fraud_rate`."""

    seed: int
    world: World
    params: ModelParams
    fraud_intercept: float


def build_model(seed: int, params: ModelParams | None = None) -> Model:
    """Draw the world of `seed` and solve its fraud intercept on a calibration sample."""
    params = params or ModelParams()
    world = build_world(np.random.SeedSequence(seed, spawn_key=(WORLD_STREAM,)))
    sample = draw_rows(seed, 0, CALIBRATION_BLOCKS * BLOCK_ROWS, stream=CALIBRATION_STREAM)
    lin = fraud_log_odds(world, draw_features(world, sample, params), params)
    from scipy.optimize import brentq  # ~0.15 s to import: only the generator needs it, not every command's start-up

    intercept = brentq(lambda a: float(expit(a + lin).mean()) - params.fraud_rate, -30.0, 10.0, xtol=1e-10)
    return Model(seed=seed, world=world, params=params, fraud_intercept=float(intercept))


@dataclass(frozen=True, slots=True)
class Latent:
    """What the log does not show directly: fraud, the scores' sources, delays."""

    fraud_prob: np.ndarray
    is_fraud: np.ndarray
    fraud_score: np.ndarray
    approval_log_odds: np.ndarray  # logit q, legitimate approval under allow
    auth_score: np.ndarray
    dispute_delay_days: np.ndarray


def draw_latent(model: Model, x: Features, draws: RowDraws) -> Latent:
    """Fraud, the two scores and the dispute delay of each row."""
    p, w = model.params, model.world
    fraud_prob = expit(model.fraud_intercept + fraud_log_odds(w, x, p))
    is_fraud = draws.fraud < fraud_prob
    z = draws.score + p.score_separation * is_fraud
    fraud_score = expit(logit(p.fraud_rate) + p.score_separation * z - p.score_separation**2 / 2)
    eta = (
        p.auth_base
        + w.country_auth[x.country]
        + w.funding_auth[x.funding]
        + w.brand_auth[x.brand]
        + w.channel_auth[x.channel]
        + p.auth_amount_slope * np.log(x.amount / p.reference_amount)
    )
    seen = eta + p.auth_seen_sd * draws.auth_seen
    # E[sigmoid(s + sd * N(0,1))] ~ sigmoid(s / sqrt(1 + pi sd^2 / 8)): a calibrated score.
    auth_score = expit(seen / np.sqrt(1.0 + np.pi * p.auth_hidden_sd**2 / 8.0))
    return Latent(
        fraud_prob=fraud_prob,
        is_fraud=is_fraud,
        fraud_score=fraud_score,
        approval_log_odds=seen + p.auth_hidden_sd * draws.auth_hidden,
        auth_score=auth_score,
        dispute_delay_days=np.exp(np.log(p.delay_median_days) + p.delay_sigma * draws.delay),
    )


@dataclass(frozen=True, slots=True)
class Potential:
    """Eventual (uncensored) outcomes of one action for every row.

    `fraud_dispute` is meaningful where `authorized`, `dispute_lost` where
    `fraud_dispute`; elsewhere they are False and written as null.
    """

    auth_prob: np.ndarray
    authorized: np.ndarray
    fraud_dispute: np.ndarray
    dispute_lost: np.ndarray


def potential_outcomes(model: Model, latent: Latent, draws: RowDraws) -> dict[str, Potential]:
    """Outcomes under allow and under challenge, coupled through shared uniforms."""
    p, fraud = model.params, latent.is_fraud
    factor = np.where(fraud, p.fraud_approval, 1.0)
    approve_allow = expit(latent.approval_log_odds) * factor
    approve_3ds = expit(latent.approval_log_odds + p.three_ds_uplift) * factor
    completion = np.where(fraud, p.completion_fraud, p.completion_legit)
    authorized_allow = draws.auth < approve_allow
    authorized_challenge = (draws.three_ds < completion) & (draws.auth < approve_3ds)
    dispute_allow = np.where(fraud, p.dispute_fraud, p.friendly_allow)
    dispute_challenge = np.where(fraud, p.dispute_fraud, p.friendly_challenge)
    lost_allow = np.where(fraud, p.lost_fraud, p.lost_friendly)
    return {
        schema.ALLOW: _disputes(approve_allow, authorized_allow, dispute_allow, lost_allow, draws),
        schema.CHALLENGE: _disputes(
            completion * approve_3ds, authorized_challenge, dispute_challenge, p.lost_authenticated, draws
        ),
    }


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """What happens to each row while it waits for review (whether or not it was sent there)."""

    declined: np.ndarray  # the reviewer would decline it
    abandoned: np.ndarray  # the shopper would give up waiting (legitimate payments only)
    pass_prob: np.ndarray  # probability that it reaches the issuer: neither declined nor abandoned


def review_outcomes(
    model: Model, latent: Latent, draws: RowDraws, review_draws: ReviewDraws, params: ReviewParams
) -> tuple[Potential, ReviewDecision]:
    """Outcomes under review: the reviewer and the wait, then the issuer exactly as under allow.

    The issuer, dispute and lost uniforms are the allow outcome's, so a payment
    authorized under review is authorized under allow (and disputed alike).
    """
    p, fraud = model.params, latent.is_fraud
    factor = np.where(fraud, p.fraud_approval, 1.0)
    approve_allow = expit(latent.approval_log_odds) * factor
    decline_prob = np.where(fraud, params.review_catch, params.review_false_decline)
    abandon_prob = np.where(fraud, 0.0, params.review_abandon)
    declined = review_draws.decision < decline_prob
    abandoned = review_draws.abandon < abandon_prob
    pass_prob = (1.0 - decline_prob) * (1.0 - abandon_prob)
    authorized = ~declined & ~abandoned & (draws.auth < approve_allow)
    outcome = _disputes(
        pass_prob * approve_allow,
        authorized,
        np.where(fraud, p.dispute_fraud, p.friendly_allow),
        np.where(fraud, p.lost_fraud, p.lost_friendly),
        draws,
    )
    return outcome, ReviewDecision(declined=declined, abandoned=abandoned, pass_prob=pass_prob)


def _disputes(
    auth_prob: np.ndarray,
    authorized: np.ndarray,
    dispute_prob: np.ndarray,
    lost_prob: np.ndarray | float,
    draws: RowDraws,
) -> Potential:
    """Dispute and dispute-lost outcomes following an authorization outcome."""
    fraud_dispute = authorized & (draws.dispute < dispute_prob)
    return Potential(
        auth_prob=auth_prob,
        authorized=authorized,
        fraud_dispute=fraud_dispute,
        dispute_lost=fraud_dispute & (draws.lost < lost_prob),
    )
