"""Splitting a log into the rows a sweep chooses on and the rows it reports on.

Picking the best of a thousand grid points on the same rows that then report
its value overstates that value: the winner is partly the luckiest point. A
sweep therefore chooses on one part of the log and reports the chosen point's
estimate, delta, interval and constraint checks from the other (SPEC §9).

- `time` (the default): choose on the earlier rows, report on the latest
  `share` of them by `created_at`. This is also what launching does: a policy
  chosen on the past runs on what comes next.
- `hash`: a share of rows chosen by a hash of `transaction_id` and the seed,
  when the log's time order should not matter (e.g. a short log).

The split is two row filters (`Plan.rows`) over the same compiled plan, so the
segments, the as-of date and the policies are those of the whole log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import polars as pl

from simulator.errors import InvalidData
from simulator.schema import CREATED_AT, TRANSACTION_ID

Method = Literal["time", "hash"]
_BUCKETS = 10_000


@dataclass(frozen=True)
class Holdout:
    """The rows a sweep chooses on (`select`) and reports on (`report`), with how they were drawn."""

    method: Method
    share: float  # of rows that report
    select: pl.Expr
    report: pl.Expr
    cutoff: datetime | None = None  # time: reporting rows were created at or after it
    seed: int | None = None  # hash: the seed of the row hash

    def describe(self, selected: int, reported: int) -> dict[str, Any]:
        """What recommendation.json says about the split: method, rule and row counts."""
        rule = (f"created_at < {self.cutoff.isoformat()}", f"created_at >= {self.cutoff.isoformat()}") \
            if self.cutoff is not None else \
            (f"hash(transaction_id, seed={self.seed}) % {_BUCKETS} >= {self._bound()}",
             f"hash(transaction_id, seed={self.seed}) % {_BUCKETS} < {self._bound()}")
        return {"method": self.method, "report_share": self.share,
                "selected_on": {"rows": selected, "rule": rule[0]},
                "reported_on": {"rows": reported, "rule": rule[1]}}

    def _bound(self) -> int:
        return round(self.share * _BUCKETS)


def holdout(method: Method, share: float, data: pl.LazyFrame, *, seed: int) -> Holdout:
    """The split of `data` (canonical columns); `share` of the rows report, the rest choose."""
    if method == "time":
        cutoff = data.select(pl.col(CREATED_AT).quantile(1.0 - share, interpolation="nearest")).collect().item()
        if cutoff is None:
            raise InvalidData("created_at: no timestamps to split the log on (is it empty?)")
        later = pl.col(CREATED_AT) >= pl.lit(cutoff)
        return Holdout(method=method, share=share, select=~later, report=later, cutoff=cutoff)
    bucket = pl.col(TRANSACTION_ID).cast(pl.String).hash(seed=seed) % _BUCKETS
    report = bucket < round(share * _BUCKETS)
    return Holdout(method=method, share=share, select=~report, report=report, seed=seed)
