"""The column contract of logged transactions (SPEC §2).

One place names every column the engine knows, so the loader, the validator,
the generator and the estimators cannot disagree about spelling or meaning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

TRANSACTION_ID = "transaction_id"
CREATED_AT = "created_at"
AMOUNT = "amount"
ACTION = "action"
PROPENSITY = "propensity"
AUTHORIZED = "authorized"
FRAUD_DISPUTE = "fraud_dispute"
DISPUTE_LOST = "dispute_lost"
DISPUTED_AT = "disputed_at"
LOGGING_PROB_PREFIX = "logging_prob_"

REQUIRED_COLUMNS: tuple[str, ...] = (
    TRANSACTION_ID,
    CREATED_AT,
    AMOUNT,
    ACTION,
    PROPENSITY,
    AUTHORIZED,
    FRAUD_DISPUTE,
    DISPUTE_LOST,
)
OUTCOME_COLUMNS: tuple[str, ...] = (AUTHORIZED, FRAUD_DISPUTE, DISPUTE_LOST)

DEFAULT_ACTIONS: tuple[str, ...] = ("allow", "challenge", "block")
BLOCK = "block"
CHALLENGE = "challenge"
ALLOW = "allow"

SCORE_SUFFIX = "_score"

LOGGED = "logged"  # the logging policy: its name in plans and results, and its policy kind
PRODUCTION = "production"  # the logging policy without its exploration (policies.production)


def logging_prob_column(action: str) -> str:
    """Name of the column holding the logging policy's probability of `action`."""
    return f"{LOGGING_PROB_PREFIX}{action}"


@dataclass(frozen=True, slots=True)
class Schema:
    """What a dataset must look like: the action set and the score columns.

    `score_columns` empty means "every column whose name ends in `_score`",
    which is what `policysim validate DATA` checks without a config.
    `rename` maps canonical names (SPEC §2) to the names used in the files
    (`[data.columns]`).
    """

    actions: tuple[str, ...] = DEFAULT_ACTIONS
    score_columns: tuple[str, ...] = ()
    rename: Mapping[str, str] = field(default_factory=dict)

    def resolved_scores(self, columns: Sequence[str]) -> tuple[str, ...]:
        """Score columns to check, given the (canonical) columns present."""
        if self.score_columns:
            return self.score_columns
        return tuple(c for c in columns if c.endswith(SCORE_SUFFIX))
