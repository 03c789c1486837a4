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


UNIT_RANGE: tuple[float, float] = (0.0, 1.0)  # a score's range unless `[data.score_range]` declares another
TIMESTAMP_COLUMNS: tuple[str, ...] = (CREATED_AT, DISPUTED_AT)
RENAMEABLE_COLUMNS: tuple[str, ...] = (*REQUIRED_COLUMNS, DISPUTED_AT)


@dataclass(frozen=True, slots=True)
class LoggingPolicy:
    """A declared logging policy (`[data.logging_policy]`): a policy table of SPEC §4 and its exploration.

    The logging policy took the action of `table` with probability `1 − exploration`
    and an action drawn uniformly from the action set otherwise, so its probability
    of action a is `(1 − exploration) · table(a | x) + exploration / n_actions`.
    """

    table: Mapping[str, object]
    exploration: float


@dataclass(frozen=True, slots=True)
class Schema:
    """What a dataset must look like, and how an export of another shape maps onto it (SPEC §2).

    `actions` is the action set; `score_columns` empty means "every column whose
    name ends in `_score`, and every score of `score_ranges`", which is what
    `policysim validate DATA` checks without a config. The rest describes the
    files as exported (`[data.columns]` and friends):

    - `rename`: canonical name → name in the files;
    - `action_values`: canonical action → value in the files;
    - `score_ranges`: score column → (low, high), its declared range (default [0, 1]);
    - `timestamp_formats`: canonical timestamp column → strftime format of its strings
      (strings without a declared format are read as ISO 8601);
    - `logging_policy`: the declared logging policy, from which `propensity` and
      `logging_prob_<action>` are derived when the files lack them.
    """

    actions: tuple[str, ...] = DEFAULT_ACTIONS
    score_columns: tuple[str, ...] = ()
    rename: Mapping[str, str] = field(default_factory=dict)
    action_values: Mapping[str, str] = field(default_factory=dict)
    score_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    timestamp_formats: Mapping[str, str] = field(default_factory=dict)
    logging_policy: LoggingPolicy | None = None

    def resolved_scores(self, columns: Sequence[str]) -> tuple[str, ...]:
        """Score columns to check, given the (canonical) columns present."""
        if self.score_columns:
            return self.score_columns
        return tuple(c for c in columns if c.endswith(SCORE_SUFFIX) or c in self.score_ranges)

    def score_range(self, score: str) -> tuple[float, float]:
        """The declared range of a score column, [0, 1] unless `[data.score_range]` says otherwise."""
        return self.score_ranges.get(score, UNIT_RANGE)

    def file_name(self, column: str) -> str:
        """The name a canonical column has in the files (`created_at` → `ts`)."""
        return self.rename.get(column, column)

    def label(self, column: str) -> str:
        """A column as messages name it: the user's name first, e.g. `ts (created_at)`, or just `amount`."""
        source = self.file_name(column)
        return column if source == column else f"{source} ({column})"
