"""Arrow tables of a simulated chunk: the logged transactions, the ground truth, the tallies.

The transactions table follows SPEC §2 column for column; the ground truth
has one row per transaction in the same order. Categorical columns are
Arrow dictionary arrays, written without the Arrow schema (`writer_options`),
so every reader sees plain `string` columns, dictionary-encoded on disk.
Both follow the chunk's action set: the review scenario adds
`logging_prob_review` to the log and the review outcomes (`*_review`,
`review_declined`, `review_abandoned`) to the ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa

from simulator import schema
from simulator.synthetic.log import DAY_US, REVIEW, REVIEW_ACTIONS, Chunk
from simulator.synthetic.model import Potential
from simulator.synthetic.world import BRANDS, CHANNELS, COUNTRIES, FUNDINGS, MCCS, MERCHANTS

TIMESTAMP = pa.timestamp("us", tz="UTC")
ID_DIGITS = 10  # transaction_id = "tx_" + 10 digits: at most 10**10 rows
MERCHANT_DIGITS = 5
OUTCOME_ACTIONS = (schema.ALLOW, schema.CHALLENGE)  # block has no outcome


def outcome_actions(actions: tuple[str, ...]) -> tuple[str, ...]:
    """The actions of a set that have potential outcomes (all but block), in the set's order."""
    return tuple(a for a in actions if a != schema.BLOCK)


def ground_truth_columns(actions: tuple[str, ...] = schema.DEFAULT_ACTIONS) -> dict[str, str]:
    """Name and meaning of every ground-truth column of a scenario with this action set."""
    columns = {
        schema.TRANSACTION_ID: "the transaction_id of the logged row",
        "is_fraud": "the payment was a fraud attempt (latent)",
        "fraud_prob": "true probability that the payment was a fraud attempt",
        "dispute_delay_days": (
            "days from created_at to the arrival of a dispute on this payment, under any action; "
            "disputed_at = created_at + floor(dispute_delay_days * 86400e6) microseconds"
        ),
        **{
            column: text.format(a=a)
            for a in outcome_actions(actions)
            for column, text in (
                (f"auth_prob_{a}", "true probability that the payment is authorized under {a}"),
                (f"authorized_{a}", "the payment would be authorized under {a}"),
                (
                    f"fraud_dispute_{a}",
                    "a fraud dispute would eventually be filed under {a} (no censoring); null when not authorized",
                ),
                (f"dispute_lost_{a}", "the merchant would lose that dispute under {a}; null when no dispute"),
            )
        },
    }
    if REVIEW in actions:
        columns["review_declined"] = "the reviewer would decline the payment under review (fraud caught or a false decline)"
        columns["review_abandoned"] = "the shopper would abandon while the payment waits for review (legitimate only)"
    return columns


GROUND_TRUTH_COLUMNS: dict[str, str] = ground_truth_columns()  # the default scenario's
GROUND_TRUTH_NOTE = "block has no outcome: a blocked payment is never authorized, disputed or lost."


_GROUP_DIGITS = 5
# The text of 00000 .. 99999 as 5-byte items: ids are assembled from these.
_GROUP_TEXT = (
    (np.arange(10**_GROUP_DIGITS)[:, None] // 10 ** np.arange(_GROUP_DIGITS - 1, -1, -1) % 10 + ord("0"))
    .astype(np.uint8)
    .view(f"V{_GROUP_DIGITS}")
    .ravel()
)


def fixed_width_ids(prefix: str, index: np.ndarray, digits: int) -> pa.StringArray:
    """prefix + zero-padded index as an Arrow string array, assembled in numpy.

    `digits` must be a multiple of 5. Each id is a record of the prefix and
    five-digit groups copied from a table, ~10x faster than formatting strings.
    """
    if digits % _GROUP_DIGITS:
        raise ValueError(f"digits: must be a multiple of {_GROUP_DIGITS}, got {digits}")
    groups = digits // _GROUP_DIGITS
    head = prefix.encode()
    head_field = [("head", f"V{len(head)}")] if head else []  # numpy has no zero-width items
    record = np.dtype(head_field + [(f"g{k}", f"V{_GROUP_DIGITS}") for k in range(groups)])
    text = np.empty(len(index), dtype=record)
    if head:
        text["head"] = np.frombuffer(head, dtype=f"V{len(head)}")[0]
    for k in range(groups):
        power = 10 ** (_GROUP_DIGITS * (groups - 1 - k))
        text[f"g{k}"] = _GROUP_TEXT[index // power % 10**_GROUP_DIGITS]
    width = record.itemsize
    offsets = np.arange(0, (len(index) + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(len(index), pa.py_buffer(offsets), pa.py_buffer(text.view(np.uint8)))


_NAMES = {
    "action": pa.array(schema.DEFAULT_ACTIONS),
    "card_country": pa.array([c[0] for c in COUNTRIES]),
    "card_brand": pa.array([b[0] for b in BRANDS]),
    "card_funding": pa.array([f[0] for f in FUNDINGS]),
    "mcc": pa.array([m[0] for m in MCCS]),
    "channel": pa.array([c[0] for c in CHANNELS]),
    "merchant_id": fixed_width_ids("m_", np.arange(MERCHANTS), MERCHANT_DIGITS),
}

CATEGORICAL_COLUMNS = tuple(_NAMES)
_ACTION_NAMES = {schema.DEFAULT_ACTIONS: _NAMES["action"], REVIEW_ACTIONS: pa.array(REVIEW_ACTIONS)}
_REPEATED_FLOATS = (schema.PROPENSITY, *(schema.logging_prob_column(a) for a in REVIEW_ACTIONS))


def writer_options(table_schema: pa.Schema) -> dict[str, object]:
    """Parquet writer options for a table of this module.

    No Arrow schema in the file: the categorical dictionary arrays read back as
    plain strings, and UTC timestamps keep their zone through the Parquet
    logical type. Dictionary pages only for columns whose values repeat;
    statistics only for non-string columns (string min/max cost a third of
    the write time and prune nothing useful).
    """
    names = table_schema.names
    return {
        "compression": "snappy",
        "store_schema": False,
        "use_dictionary": [c for c in names if c in CATEGORICAL_COLUMNS or c in _REPEATED_FLOATS],
        "write_statistics": [
            f.name for f in table_schema if not (pa.types.is_string(f.type) or pa.types.is_dictionary(f.type))
        ],
    }


def _names(column: str, codes: np.ndarray, dictionary: pa.Array | None = None) -> pa.DictionaryArray:
    """Category codes as a dictionary array of their names (`dictionary`, default the column's catalogue).

    Written with `store_schema=False`, so readers see plain strings while the
    Parquet writer skips hashing millions of strings.
    """
    names = _NAMES[column] if dictionary is None else dictionary
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32, copy=False)), names)


def _action_names(actions: tuple[str, ...]) -> pa.Array:
    """The dictionary of the action column for an action set (built once per known set)."""
    return _ACTION_NAMES[actions] if actions in _ACTION_NAMES else pa.array(actions)


def _outcomes(blocked: np.ndarray, authorized: np.ndarray, dispute: np.ndarray, lost: np.ndarray) -> list[pa.Array]:
    """authorized, fraud_dispute, dispute_lost with the nulls of SPEC §2."""
    return [
        pa.array(authorized, mask=blocked),
        pa.array(dispute, mask=~authorized),
        pa.array(lost, mask=~dispute),
    ]


def transactions_table(chunk: Chunk) -> pa.Table:
    """The logged transactions of a chunk (SPEC §2)."""
    x, log, n = chunk.features, chunk.logged, len(chunk.propensity)
    ids = fixed_width_ids("tx_", np.arange(chunk.lo, chunk.lo + n), ID_DIGITS)
    blocked = log.action == chunk.code(schema.BLOCK)
    authorized, dispute, lost = _outcomes(blocked, log.authorized, log.fraud_dispute, log.dispute_lost)
    columns = {
        schema.TRANSACTION_ID: ids,
        schema.CREATED_AT: pa.array(chunk.created_at_us, type=TIMESTAMP),
        schema.AMOUNT: pa.array(x.amount),
        schema.ACTION: _names("action", log.action, _action_names(chunk.actions)),
        schema.PROPENSITY: pa.array(chunk.propensity),
        schema.AUTHORIZED: authorized,
        schema.FRAUD_DISPUTE: dispute,
        schema.DISPUTE_LOST: lost,
        schema.DISPUTED_AT: pa.array(log.disputed_at_us, type=TIMESTAMP, mask=~log.fraud_dispute),
        "fraud_score": pa.array(chunk.latent.fraud_score),
        "auth_score": pa.array(chunk.latent.auth_score),
        **{
            schema.logging_prob_column(a): pa.array(np.ascontiguousarray(chunk.logging_probs[:, k]))
            for k, a in enumerate(chunk.actions)
        },
        "card_country": _names("card_country", x.country),
        "card_brand": _names("card_brand", x.brand),
        "card_funding": _names("card_funding", x.funding),
        "mcc": _names("mcc", x.mcc),
        "channel": _names("channel", x.channel),
        "merchant_id": _names("merchant_id", x.merchant),
    }
    return pa.table(columns)


def _potential_columns(action: str, outcome: Potential) -> dict[str, pa.Array]:
    """The four ground-truth columns of one action."""
    no_block = np.zeros(len(outcome.authorized), dtype=bool)
    authorized, dispute, lost = _outcomes(no_block, outcome.authorized, outcome.fraud_dispute, outcome.dispute_lost)
    return {
        f"auth_prob_{action}": pa.array(outcome.auth_prob),
        f"authorized_{action}": authorized,
        f"fraud_dispute_{action}": dispute,
        f"dispute_lost_{action}": lost,
    }


def ground_truth_table(chunk: Chunk, transaction_id: pa.Array) -> pa.Table:
    """Every action's outcome for the rows of a chunk, in the same order (see GROUND_TRUTH_COLUMNS)."""
    columns = {
        schema.TRANSACTION_ID: transaction_id,
        "is_fraud": pa.array(chunk.latent.is_fraud),
        "fraud_prob": pa.array(chunk.latent.fraud_prob),
        "dispute_delay_days": pa.array(chunk.latent.dispute_delay_days),
    }
    for action in outcome_actions(chunk.actions):
        columns.update(_potential_columns(action, chunk.potential[action]))
    if chunk.review is not None:
        columns["review_declined"] = pa.array(chunk.review.declined)
        columns["review_abandoned"] = pa.array(chunk.review.abandoned)
    return pa.table(columns)


@dataclass(frozen=True, slots=True)
class Tally:
    """Mergeable sums behind the realised rates of generation.json."""

    rows: int = 0
    fraud_attempts: int = 0
    fraud_prob: float = 0.0
    base_challenge: int = 0
    base_block: int = 0
    challenged: int = 0
    blocked: int = 0
    authorized: int = 0
    authorized_challenge: int = 0
    authorized_volume: float = 0.0
    fraud_disputes: int = 0
    fraud_dispute_volume: float = 0.0
    eventual_disputes: int = 0
    eventual_dispute_volume: float = 0.0
    disputes_lost: int = 0
    recent_rows: int = 0  # created within 90 days of as_of
    # the review scenario (zero elsewhere): logged reviews, their outcomes and the fraud they met
    base_review: int = 0
    reviewed: int = 0
    authorized_review: int = 0
    reviewed_legit: int = 0
    reviewed_legit_authorized: int = 0
    reviewed_fraud: int = 0
    reviewed_fraud_declined: int = 0
    reviewed_legit_declined: int = 0
    reviewed_legit_abandoned: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Tally)))


def _review_tally(chunk: Chunk) -> dict[str, int]:
    """The review scenario's sums: logged reviews, and what the reviewer and the wait did to them."""
    if chunk.review is None:
        return {}
    log, fraud = chunk.logged, chunk.latent.is_fraud
    code = chunk.code(REVIEW)
    reviewed = log.action == code
    legit = reviewed & ~fraud
    return {
        "base_review": int((chunk.base_action == code).sum()),
        "reviewed": int(reviewed.sum()),
        "authorized_review": int((log.authorized & reviewed).sum()),
        "reviewed_legit": int(legit.sum()),
        "reviewed_legit_authorized": int((log.authorized & legit).sum()),
        "reviewed_fraud": int((reviewed & fraud).sum()),
        "reviewed_fraud_declined": int((reviewed & fraud & chunk.review.declined).sum()),
        "reviewed_legit_declined": int((legit & chunk.review.declined).sum()),
        "reviewed_legit_abandoned": int((legit & chunk.review.abandoned).sum()),
    }


def tally(chunk: Chunk, as_of_us: int, maturity_days: int = 90) -> Tally:
    """The sums of one chunk."""
    log, amount = chunk.logged, chunk.features.amount
    challenge, block = chunk.code(schema.CHALLENGE), chunk.code(schema.BLOCK)
    return Tally(
        rows=len(amount),
        fraud_attempts=int(chunk.latent.is_fraud.sum()),
        fraud_prob=float(chunk.latent.fraud_prob.sum()),
        base_challenge=int((chunk.base_action == challenge).sum()),
        base_block=int((chunk.base_action == block).sum()),
        challenged=int((log.action == challenge).sum()),
        blocked=int((log.action == block).sum()),
        authorized=int(log.authorized.sum()),
        authorized_challenge=int((log.authorized & (log.action == challenge)).sum()),
        authorized_volume=float(amount[log.authorized].sum()),
        fraud_disputes=int(log.fraud_dispute.sum()),
        fraud_dispute_volume=float(amount[log.fraud_dispute].sum()),
        eventual_disputes=int(log.eventual_dispute.sum()),
        eventual_dispute_volume=float(amount[log.eventual_dispute].sum()),
        disputes_lost=int(log.dispute_lost.sum()),
        recent_rows=int((chunk.created_at_us > as_of_us - maturity_days * DAY_US).sum()),
        **_review_tally(chunk),
    )


def realised_rates(t: Tally, actions: tuple[str, ...] = schema.DEFAULT_ACTIONS) -> dict[str, float | None]:
    """Overall rates of the generated log (and of its latent fraud), for generation.json.

    Names follow SPEC §3 where they exist: `auth_rate` = authorized / attempts,
    `block_rate` = blocked / attempts, `fraud_count` = observed fraud disputes,
    `fraud_rate_bps` = their volume / authorized volume * 10,000 (`eventual_*`:
    counting disputes not yet arrived at as_of). `unobserved_dispute_share` is
    the share of eventual disputes not yet known at as_of. A rate whose
    denominator is zero (e.g. no disputes in a tiny dataset) is None.

    With review in `actions`, also the review rates of the logged reviews:
    `review_rate`, `base_review_rate`, `auth_rate_reviewed`,
    `auth_rate_reviewed_legit`, `review_fraud_share` (fraud attempts among
    them), `review_fraud_caught` (share of those the reviewer declined),
    `review_false_decline_rate` and `review_abandon_rate` (of the legitimate).
    """

    def ratio(a: float, b: float, scale: float = 1.0) -> float | None:
        return scale * a / b if b else None

    rates: dict[str, float | None] = {
        "fraud_attempt_rate": ratio(t.fraud_attempts, t.rows),
        "mean_fraud_prob": ratio(t.fraud_prob, t.rows),
        "base_challenge_rate": ratio(t.base_challenge, t.rows),
        "base_block_rate": ratio(t.base_block, t.rows),
        "challenge_rate": ratio(t.challenged, t.rows),
        "block_rate": ratio(t.blocked, t.rows),
        "auth_rate": ratio(t.authorized, t.rows),
        "auth_rate_not_blocked": ratio(t.authorized, t.rows - t.blocked),
        "auth_rate_challenged": ratio(t.authorized_challenge, t.challenged),
        "fraud_count": t.fraud_disputes,
        "fraud_count_bps": ratio(t.fraud_disputes, t.authorized, 1e4),
        "fraud_rate_bps": ratio(t.fraud_dispute_volume, t.authorized_volume, 1e4),
        "eventual_fraud_rate_bps": ratio(t.eventual_dispute_volume, t.authorized_volume, 1e4),
        "unobserved_dispute_share": ratio(t.eventual_disputes - t.fraud_disputes, t.eventual_disputes),
        "dispute_lost_rate": ratio(t.disputes_lost, t.fraud_disputes),
        "rows_within_90_days_share": ratio(t.recent_rows, t.rows),
    }
    if REVIEW in actions:
        rates |= {
            "base_review_rate": ratio(t.base_review, t.rows),
            "review_rate": ratio(t.reviewed, t.rows),
            "auth_rate_reviewed": ratio(t.authorized_review, t.reviewed),
            "auth_rate_reviewed_legit": ratio(t.reviewed_legit_authorized, t.reviewed_legit),
            "review_fraud_share": ratio(t.reviewed_fraud, t.reviewed),
            "review_fraud_caught": ratio(t.reviewed_fraud_declined, t.reviewed_fraud),
            "review_false_decline_rate": ratio(t.reviewed_legit_declined, t.reviewed_legit),
            "review_abandon_rate": ratio(t.reviewed_legit_abandoned, t.reviewed_legit),
        }
    return rates
