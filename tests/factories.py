"""Seeded builders of valid logged transactions (SPEC §2) for tests.

`make_transactions()` is the fixture every test starts from: a small frame
that passes validation, with every SPEC §2 column and outcomes that behave
like real traffic, so tests of estimators and policies see realistic shapes:

- a latent fraud flag drives `fraud_score` (informative: fraud scores high),
  the issuer's approval, 3-D Secure completion and the dispute outcome;
- the logging policy is a fraud-score threshold policy (challenge above 0.5,
  block above 0.8) mixed with 10 % uniform exploration, so every action has
  positive propensity everywhere and `logging_prob_<action>` is exact;
- outcomes have the SPEC null pattern: `authorized` null when blocked,
  `fraud_dispute` null when not authorized, `dispute_lost` and `disputed_at`
  null when there is no fraud dispute;
- disputes arrive 15 to 110 days after the payment and only those arrived by
  `EXTRACTED_AT` are in the data, so the last months' fraud labels are immature.

Tests break one thing at a time with `overrides`, e.g.
`make_transactions(amount=lambda f: f["amount"].scatter(3, -1.0))`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

ACTIONS: tuple[str, ...] = ("allow", "challenge", "block")
COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "created_at",
    "amount",
    "action",
    "propensity",
    "authorized",
    "fraud_dispute",
    "dispute_lost",
    "fraud_score",
    "auth_score",
    "card_country",
    "card_brand",
    "card_funding",
    "mcc",
    "channel",
    "merchant_id",
    *(f"logging_prob_{action}" for action in ACTIONS),
    "disputed_at",
)
EXPLORATION = 0.10  # uniform share of the logging policy
CHALLENGE_ABOVE = 0.5
BLOCK_ABOVE = 0.8
START = datetime(2025, 7, 1, tzinfo=UTC)
PERIOD_DAYS = 180
EXTRACTED_AT = START + timedelta(days=PERIOD_DAYS + 30)  # when the data was pulled

Values = Sequence[object] | np.ndarray | pl.Series | pl.Expr
Override = Values | Callable[[pl.DataFrame], Values]

SEGMENT_VALUES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "card_country": (("FR", "DE", "GB", "US", "NL", "BR"), (0.30, 0.20, 0.20, 0.15, 0.10, 0.05)),
    "card_brand": (("visa", "mastercard", "amex"), (0.55, 0.35, 0.10)),
    "card_funding": (("credit", "debit", "prepaid"), (0.45, 0.45, 0.10)),
    "mcc": (("5411", "5732", "5999", "7995", "4722"), (0.35, 0.20, 0.25, 0.05, 0.15)),
    "channel": (("web", "app", "moto"), (0.60, 0.35, 0.05)),
}
# Extra log-odds of fraud per segment value; unlisted values add 0.
FRAUD_LOG_ODDS: dict[str, dict[str, float]] = {
    "card_country": {"US": 0.5, "BR": 1.0},
    "card_funding": {"prepaid": 1.2},
    "mcc": {"7995": 1.0, "5732": 0.5},
    "channel": {"moto": 0.8},
}


def make_transactions(n: int = 500, seed: int = 3, **overrides: Override) -> pl.DataFrame:
    """A valid frame of `n` logged transactions, identical for the same `seed`.

    Each override replaces an existing column, in the order given: a sequence,
    array or Series of length `n`, a polars expression, or a callable taking
    the frame built so far and returning one of those. Dependent columns are
    not recomputed (overriding `action` leaves `propensity` as it was), which
    is how tests build inconsistent data on purpose. An unknown name raises,
    so a misspelt override cannot pass silently.
    """
    rng = np.random.default_rng(seed)
    frame = _columns(n, rng)
    for name, value in overrides.items():
        frame = _override(frame, name, value)
    return frame


def write_parquet(frame: pl.DataFrame, path: Path) -> Path:
    """Write `frame` to `path` (creating parent directories) and return `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    return path


def in_row_groups(transactions: Path, out: Path, rows: int) -> Path:
    """A copy of a generated log's Parquet files with `rows`-row groups, so that the files split into several shards."""
    for i, file in enumerate(sorted(transactions.glob("*.parquet"))):
        pl.read_parquet(file).write_parquet(out / f"part-{i}.parquet", row_group_size=rows)
    return out


def _columns(n: int, rng: np.random.Generator) -> pl.DataFrame:
    """Every SPEC §2 column, built from numpy draws; `_`-prefixed helpers are dropped."""
    segments = {name: _choice(values, probs, n, rng) for name, (values, probs) in SEGMENT_VALUES.items()}
    amount = np.round(np.maximum(rng.lognormal(mean=3.6, sigma=1.0, size=n), 0.5), 2)
    fraud_logit = -3.2 + 0.4 * np.log(amount / 40.0) + _segment_log_odds(segments)
    is_fraud = rng.random(n) < _sigmoid(fraud_logit)
    # The score sees the latent fraud through noise: informative, not perfect.
    fraud_score = _sigmoid(fraud_logit + 1.5 + 3.0 * is_fraud + rng.normal(0.0, 1.2, n))
    auth_score = _sigmoid(2.2 - 1.5 * is_fraud + rng.normal(0.0, 0.8, n))
    logging_probs = _logging_probs(fraud_score)
    action_index = _sample_rows(logging_probs, rng)
    draws = pl.DataFrame(
        {
            "_seconds": np.sort(rng.uniform(0, PERIOD_DAYS * 86_400, n)),
            "amount": amount,
            "action": pl.Series(ACTIONS).gather(action_index),
            "propensity": logging_probs[np.arange(n), action_index],
            "_fraud": is_fraud,
            "_issuer_approves": rng.random(n) < auth_score,
            "_completes_3ds": rng.random(n) < np.where(is_fraud, 0.35, 0.88),
            "_disputed": rng.random(n) < 0.85,
            "_lost_unless_authenticated": rng.random(n) < 0.9,
            "_lost_if_authenticated": rng.random(n) < 0.1,
            "_dispute_delay_days": rng.uniform(15, 110, n),
            "fraud_score": fraud_score,
            "auth_score": auth_score,
            **segments,
            "_merchant": rng.integers(0, 40, n),
            **{f"logging_prob_{action}": logging_probs[:, i] for i, action in enumerate(ACTIONS)},
        }
    )
    return (
        draws.with_columns(
            transaction_id=pl.format("tx_{}", pl.int_range(pl.len()).cast(pl.String).str.zfill(6)),
            merchant_id=pl.format("m_{}", pl.col("_merchant").cast(pl.String).str.zfill(3)),
            created_at=pl.lit(START) + pl.duration(microseconds=(pl.col("_seconds") * 1e6).cast(pl.Int64)),
        )
        .with_columns(**_outcomes())
        .select(COLUMNS)
    )


def _outcomes() -> dict[str, pl.Expr]:
    """Outcome expressions with the SPEC null pattern, from the `_` draws.

    A challenge is authorized only when the shopper completes 3-D Secure (fraudsters
    rarely do); an authenticated payment shifts liability, so its disputes are rarely lost.
    """
    action = pl.col("action")
    authorized = (
        pl.when(action == "block")
        .then(None)
        .when(action == "challenge")
        .then(pl.col("_completes_3ds") & pl.col("_issuer_approves"))
        .otherwise(pl.col("_issuer_approves"))
    )
    delay = pl.duration(microseconds=(pl.col("_dispute_delay_days") * 86_400e6).cast(pl.Int64))
    arrives = pl.col("created_at") + delay
    # A dispute arriving after the extract is not in the data yet: recent labels are immature.
    fraud_dispute = pl.when(authorized).then(pl.col("_fraud") & pl.col("_disputed") & (arrives <= pl.lit(EXTRACTED_AT)))
    dispute_lost = pl.when(fraud_dispute.fill_null(False)).then(
        pl.when(action == "challenge")
        .then(pl.col("_lost_if_authenticated"))
        .otherwise(pl.col("_lost_unless_authenticated"))
    )
    disputed_at = pl.when(fraud_dispute.fill_null(False)).then(arrives)
    return {
        "authorized": authorized,
        "fraud_dispute": fraud_dispute,
        "dispute_lost": dispute_lost,
        "disputed_at": disputed_at,
    }


def _choice(values: tuple[str, ...], probs: tuple[float, ...], n: int, rng: np.random.Generator) -> pl.Series:
    """`n` draws of `values` with probabilities `probs` (indices drawn in numpy, strings gathered in polars)."""
    return pl.Series(values).gather(rng.choice(len(values), size=n, p=probs))


def _segment_log_odds(segments: dict[str, pl.Series]) -> np.ndarray:
    """Extra log-odds of fraud from the segment values of each row."""
    total = np.zeros(len(next(iter(segments.values()))))
    for column, odds in FRAUD_LOG_ODDS.items():
        for value, log_odds in odds.items():
            total += log_odds * (segments[column] == value).to_numpy()
    return total


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, for scores and probabilities in (0, 1)."""
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def _logging_probs(fraud_score: np.ndarray) -> np.ndarray:
    """The logging policy's `(n, 3)` distribution over ACTIONS: threshold plus exploration."""
    chosen = np.where(fraud_score > BLOCK_ABOVE, 2, np.where(fraud_score > CHALLENGE_ABOVE, 1, 0))
    probs = np.full((len(fraud_score), len(ACTIONS)), EXPLORATION / len(ACTIONS))
    probs[np.arange(len(fraud_score)), chosen] += 1.0 - EXPLORATION
    return probs


def _sample_rows(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One action index per row, drawn from that row's distribution."""
    cumulative = np.cumsum(probs, axis=1)
    draws = rng.random(len(probs))[:, None]
    return np.asarray(np.minimum((draws > cumulative).sum(axis=1), probs.shape[1] - 1), dtype=np.int64)


def _override(frame: pl.DataFrame, name: str, value: Override) -> pl.DataFrame:
    """`frame` with column `name` replaced by `value` (see `make_transactions`)."""
    if name not in frame.columns:
        raise KeyError(f"no column {name!r} to override; columns: {', '.join(frame.columns)}")
    values = value(frame) if callable(value) and not isinstance(value, pl.Expr) else value
    if isinstance(values, pl.Expr):
        return frame.with_columns(values.alias(name))
    return frame.with_columns(pl.Series(name, values))
