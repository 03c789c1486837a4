"""The generator's log as another system would export it: the worked example of docs/bring-your-own-data.md.

Real logs rarely arrive in the canonical shape of SPEC §2. `foreign_export`
turns a generated log into the example export of SPEC §2 and
`configs/foreign/foreign.toml`: columns `txn_id`, `ts`, `amount_usd`,
`decision` ∈ {approve, 3ds, decline}, `risk_score` on 0–100, `p_logged`,
`chargeback_at`, timestamps as text without time zone, and no
`logging_prob_<action>`. `exported` is the same log in canonical form, carrying
exactly what the export carries (timestamps to the second, the score to the
precision of the export), so the two must give identical estimates.

    python -m simulator.synthetic.foreign data/transactions data/foreign/transactions.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from simulator.schema import (
    ACTION,
    AMOUNT,
    CREATED_AT,
    DISPUTED_AT,
    LOGGING_PROB_PREFIX,
    PROPENSITY,
    TRANSACTION_ID,
)

COLUMNS = {  # canonical name = name in the export ([data.columns])
    TRANSACTION_ID: "txn_id",
    CREATED_AT: "ts",
    AMOUNT: "amount_usd",
    ACTION: "decision",
    PROPENSITY: "p_logged",
    DISPUTED_AT: "chargeback_at",
}
ACTION_VALUES = {"allow": "approve", "challenge": "3ds", "block": "decline"}  # [data.action_values]
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"  # [data.timestamp_format]
SCORE = "fraud_score"
RISK_SCORE = "risk_score"  # fraud_score × 100, declared as [data.score_range] risk_score = [0, 100]
RISK_DECIMALS = 4


def exported(log: pl.DataFrame) -> pl.DataFrame:
    """The canonical log with only what the export keeps: timestamps to the second, `fraud_score` = `risk_score` / 100.

    Rounding `risk_score` to a few decimals makes `fraud_score >= t` and
    `risk_score >= 100 t` choose alike for thresholds written with fewer
    decimals (division by 100 is correctly rounded and monotone), so policies
    in either unit give the same decisions.
    """
    risk = (pl.col(SCORE) * 100).round(RISK_DECIMALS)
    return log.select(pl.exclude(f"^{LOGGING_PROB_PREFIX}.*$")).with_columns(
        pl.col(CREATED_AT, DISPUTED_AT).dt.truncate("1s"),
        (risk / 100).alias(SCORE),
    )


def foreign_export(log: pl.DataFrame) -> pl.DataFrame:
    """`exported(log)` in the export's shape: renamed columns, its action values, text timestamps, a 0–100 score."""
    same = exported(log)
    return same.with_columns(
        pl.col(CREATED_AT, DISPUTED_AT).dt.replace_time_zone(None).dt.strftime(TIMESTAMP_FORMAT),
        pl.col(ACTION).replace_strict(ACTION_VALUES),
        (pl.col(SCORE) * 100).round(RISK_DECIMALS).alias(SCORE),
    ).rename({**COLUMNS, SCORE: RISK_SCORE})


def main(argv: list[str]) -> int:
    """`python -m simulator.synthetic.foreign LOG OUT.csv`: write the foreign export of a generated log."""
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    source, target = Path(argv[0]), Path(argv[1])
    target.parent.mkdir(parents=True, exist_ok=True)
    foreign_export(pl.read_parquet(source)).write_csv(target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
