"""`policysim generate`: realistic synthetic logged card payments with a ground truth.

Writes, under `out_dir`:

- `transactions/part-00000.parquet` ... : the log, columns of SPEC §2 plus
  scores, logging probabilities and segment columns;
- `ground_truth/part-00000.parquet` ... : every action's outcome for the same
  rows in the same order (`synthetic_tables.ground_truth_columns`);
- `generation.json`: the spec, the scenario and its action set, the extract
  time `as_of`, the logging policy, the model parameters, the ground-truth
  column descriptions and the realised rates.

Scenarios (`GenerateSpec.scenario`):

- `cards` (the default): actions allow, challenge (3-D Secure), block;
- `review`: the same payments with a fourth action, `review` (a human reviewer
  catches most fraud, declines a few good payments, and the wait loses a few
  shoppers; `simulator.synthetic.model.ReviewParams`), logged by a ladder on
  fraud_score (allow, challenge from `challenge_above`, review from
  `review_above`, block from `block_above`) with exploration over the four
  actions. Its rows are the default scenario's rows (same features, scores,
  fraud and outcomes under allow and challenge); the reviewer's draws come
  from a stream of their own, so the default scenario's data are unchanged by
  the scenario's existence.

File k holds the k-th of `files` near-equal contiguous slices of the rows,
and rows are in created_at order, so files are consecutive time partitions.
Rows are produced and written `chunk_rows` at a time (one Parquet row group
per chunk), so memory is bounded by `chunk_rows`, not by `rows`: about
170 MB + 0.5 KB per chunk row (two chunks in flight), ~0.65 GB at the
default 1,000,000.

Reproducibility: row i's draws depend only on (seed, i) (see
`synthetic_model`), and its creation time only on (i, rows, start, days). So
the concatenated data are identical whatever `files` and `chunk_rows` are,
and the same spec writes byte-identical files (with the same numpy and
pyarrow versions). The generative model is described in
`simulator.synthetic.model` (features, fraud, scores, outcomes) and
`simulator.synthetic.log` (time, logging policy, censoring at `as_of`).

Output is atomic: everything is built in a temporary directory beside
`out_dir`, then renamed into place; a failure leaves no partial output.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from simulator.report.folders import staged_folder
from simulator.synthetic.log import REVIEW, LoggingPolicy, Timeline, simulate_chunk
from simulator.synthetic.model import BLOCK_ROWS, Model, ReviewParams, build_model, check_probability
from simulator.synthetic.tables import (
    GROUND_TRUTH_NOTE,
    ID_DIGITS,
    Tally,
    ground_truth_columns,
    ground_truth_table,
    realised_rates,
    tally,
    transactions_table,
    writer_options,
)

TRANSACTIONS, GROUND_TRUTH, METADATA = "transactions", "ground_truth", "generation.json"
MAX_FILES = 100_000  # part-00000 .. part-99999
MAX_CHUNK_ROWS = 100_000_000  # string offsets of one chunk stay within int32
CARDS, REVIEW_SCENARIO = "cards", "review"
SCENARIOS = (CARDS, REVIEW_SCENARIO)
DEFAULT_REVIEW_ABOVE = 0.15  # the review scenario's ladder: review in [0.15, block_above)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    """Raise ValueError unless `value` is a Python int (not a bool) in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: must be an integer in [{low}, {high}], got {value!r}")


@dataclass(frozen=True, slots=True)
class GenerateSpec:
    """What to generate. Defaults: a year of data, 5 % exploration, the `cards` scenario.

    The default thresholds on fraud_score (a calibrated fraud probability)
    challenge ~2.5 % and block ~0.25 % of the traffic before exploration.
    `scenario="review"` adds the review action: the logging policy reviews
    [review_above, block_above) (default review_above 0.15, ~0.6 % of the
    traffic) and challenges [challenge_above, review_above); `review` sets the
    reviewer's parameters (default `ReviewParams()`). Both are refused in the
    `cards` scenario, where they would do nothing.
    """

    rows: int
    files: int = 1
    seed: int = 0
    exploration: float = 0.05
    challenge_above: float = 0.05
    block_above: float = 0.4
    start: datetime = datetime(2025, 10, 1, tzinfo=UTC)
    days: int = 365
    chunk_rows: int = 1_000_000
    scenario: str = CARDS
    review_above: float | None = None
    review: ReviewParams | None = None

    def __post_init__(self) -> None:
        _check_int("rows", self.rows, 1, 10**ID_DIGITS)
        _check_int("files", self.files, 1, min(MAX_FILES, self.rows))
        _check_int("seed", self.seed, 0, 2**63 - 1)
        _check_int("days", self.days, 1, 36_500)
        _check_int("chunk_rows", self.chunk_rows, 1, MAX_CHUNK_ROWS)
        for name in ("exploration", "challenge_above", "block_above"):
            check_probability(name, getattr(self, name))
        if self.challenge_above > self.block_above:
            raise ValueError(
                f"challenge_above: must be <= block_above ({self.block_above!r}), got {self.challenge_above!r}"
            )
        if not isinstance(self.start, datetime) or self.start.utcoffset() is None:
            raise ValueError(f"start: must be a timezone-aware datetime, got {self.start!r}")
        self._check_scenario()

    def _check_scenario(self) -> None:
        """The scenario is known, and review settings appear only in (and fit the ladder of) the review scenario."""
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario: must be one of {', '.join(SCENARIOS)}, got {self.scenario!r}")
        if self.scenario == CARDS:
            for name in ("review_above", "review"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: only the {REVIEW_SCENARIO!r} scenario has a review action, "
                                     f"got {getattr(self, name)!r} with scenario {CARDS!r}")
            return
        if self.review_above is not None:
            check_probability("review_above", self.review_above)
        if not self.challenge_above <= self.ladder_review_above <= self.block_above:
            raise ValueError(f"review_above: must be in [challenge_above, block_above] = [{self.challenge_above!r}, "
                             f"{self.block_above!r}], got {self.ladder_review_above!r}")
        if self.review is not None and not isinstance(self.review, ReviewParams):
            raise ValueError(f"review: must be a ReviewParams, got {self.review!r}")

    @property
    def ladder_review_above(self) -> float:
        """The review threshold of the review scenario's ladder (`review_above`, default 0.15)."""
        return DEFAULT_REVIEW_ABOVE if self.review_above is None else self.review_above

    @property
    def review_params(self) -> ReviewParams | None:
        """The reviewer's parameters in the review scenario, None in the cards scenario."""
        if self.scenario != REVIEW_SCENARIO:
            return None
        return self.review or ReviewParams()

    @property
    def actions(self) -> tuple[str, ...]:
        """The scenario's action set, in the logging ladder's order."""
        return self.logging_policy().actions

    @property
    def as_of(self) -> datetime:
        """The extract time of the log: the end of the period, in UTC."""
        return self.start.astimezone(UTC) + timedelta(days=self.days)

    def timeline(self) -> Timeline:
        """Row-to-time mapping of this spec."""
        start_us = (self.start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        return Timeline(start_us=start_us, days=self.days, rows=self.rows)

    def logging_policy(self) -> LoggingPolicy:
        """The logging policy whose decisions the log records."""
        if self.scenario == REVIEW_SCENARIO:
            return LoggingPolicy(self.challenge_above, self.block_above, self.exploration, self.ladder_review_above)
        return LoggingPolicy(self.challenge_above, self.block_above, self.exploration)


@dataclass(frozen=True, slots=True)
class GenerateReport:
    """What `generate` wrote and how long it took."""

    rows: int
    files: int
    transactions_dir: Path
    ground_truth_dir: Path
    as_of: datetime
    seconds: float


def file_slices(rows: int, files: int) -> list[tuple[int, int]]:
    """[lo, hi) global rows of each file: contiguous, sizes differing by at most one."""
    edges = [k * rows // files for k in range(files + 1)]
    return list(itertools.pairwise(edges))


def _chunks(lo: int, hi: int, chunk_rows: int) -> Iterator[tuple[int, int]]:
    """[lo, hi) split into pieces of at most chunk_rows rows."""
    for start in range(lo, hi, chunk_rows):
        yield start, min(start + chunk_rows, hi)


def _part(k: int) -> str:
    """File name of the k-th part."""
    return f"part-{k:05d}.parquet"


def _iso(us: int) -> str:
    """A µs timestamp as ISO 8601 UTC."""
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).isoformat()


def _drain(pending: list[Future[None]], rows: int, on_rows: Callable[[int], None] | None) -> None:
    """Wait for a chunk's writes (re-raising their errors), then report its rows."""
    for future in pending:
        future.result()
    if pending and on_rows is not None:
        on_rows(rows)


def _open_writers(paths: tuple[Path, Path], tables: tuple[pa.Table, pa.Table]) -> list[pq.ParquetWriter]:
    """One Parquet writer per output file, with the schema of its first chunk."""
    return [pq.ParquetWriter(p, t.schema, **writer_options(t.schema)) for p, t in zip(paths, tables, strict=True)]


def _chunk_tables(
    model: Model, spec: GenerateSpec, lo: int, hi: int
) -> tuple[tuple[pa.Table, pa.Table], Tally, tuple[int, int]]:
    """Simulate rows [lo, hi): their two tables, tally and first / last created_at (µs).

    The simulated arrays die on return, so only the tables stay in memory while written.
    """
    timeline = spec.timeline()
    chunk = simulate_chunk(model, spec.logging_policy(), timeline, lo, hi, spec.review_params)
    tx = transactions_table(chunk)
    tables = (tx, ground_truth_table(chunk, tx.column(0)))
    span = (int(chunk.created_at_us[0]), int(chunk.created_at_us[-1]))
    return tables, tally(chunk, timeline.as_of_us), span


def _write_file(
    model: Model,
    spec: GenerateSpec,
    rows: tuple[int, int],
    paths: tuple[Path, Path],
    pool: ThreadPoolExecutor,
    on_rows: Callable[[int], None] | None,
) -> tuple[Tally, dict[str, object]]:
    """Write one transactions file and its ground-truth file, one row group per chunk.

    The Parquet encoding of chunk k runs on `pool` while chunk k + 1 is
    simulated (both release the GIL), so two cores overlap them; each writer
    still receives its chunks in order, and at most two chunks are in memory.
    """
    total, created_at = Tally(), []
    writers: list[pq.ParquetWriter] = []
    pending: list[Future[None]] = []
    pending_rows = 0
    try:
        for lo, hi in _chunks(*rows, spec.chunk_rows):
            tables, chunk_tally, span = _chunk_tables(model, spec, lo, hi)
            total += chunk_tally
            created_at += span
            _drain(pending, pending_rows, on_rows)
            writers = writers or _open_writers(paths, tables)
            pending = [
                pool.submit(w.write_table, t, row_group_size=hi - lo) for w, t in zip(writers, tables, strict=True)
            ]
            pending_rows = hi - lo
        _drain(pending, pending_rows, on_rows)
    finally:
        wait(pending)  # never close a writer in the middle of a write
        for writer in writers:
            writer.close()
    span = [_iso(created_at[0]), _iso(created_at[-1])]
    return total, {"rows": rows[1] - rows[0], "first_row": rows[0], "created_at": span}


def _logging_policy_metadata(policy: LoggingPolicy) -> dict[str, object]:
    """The logging policy as generation.json records it.

    The default scenario's is a `threshold` policy table; the review
    scenario's ladder is also written as the `rules` policy table that
    `[data.logging_policy]` would declare for it.
    """
    n_actions = len(policy.actions)
    probabilities = {
        "exploration": policy.exploration,
        "base_action_prob": 1.0 - (n_actions - 1) * policy.exploration / n_actions,
        "other_action_prob": policy.exploration / n_actions,
    }
    if policy.review_above is None:
        return {
            "kind": "threshold",
            "score": "fraud_score",
            "challenge_above": policy.challenge_above,
            "block_above": policy.block_above,
            **probabilities,
        }
    rungs = list(zip(policy.actions[1:], policy.cuts, strict=True))[::-1]  # strictest first: first match wins
    return {
        "kind": "ladder",
        "score": "fraud_score",
        "actions": list(policy.actions),
        "challenge_above": policy.challenge_above,
        "review_above": policy.review_above,
        "block_above": policy.block_above,
        **probabilities,
        "policy_table": {
            "kind": "rules",
            "rules": [{"when": f"fraud_score >= {cut!r}", "action": action} for action, cut in rungs],
            "fallback": policy.actions[0],
        },
    }


def _metadata(spec: GenerateSpec, model: Model, totals: Tally, files: list[dict[str, object]]) -> dict[str, object]:
    """The content of generation.json: everything needed to interpret the files."""
    policy = spec.logging_policy()
    review = spec.review_params
    return {
        "generator": "policysim generate",
        "spec": {**asdict(spec), "start": spec.start.isoformat()},
        "scenario": spec.scenario,
        "actions": list(policy.actions),
        "as_of": spec.as_of.isoformat(),
        "files": files,
        "logging_policy": _logging_policy_metadata(policy),
        "model": {
            **asdict(model.params),
            "fraud_intercept": model.fraud_intercept,
            "block_rows": BLOCK_ROWS,
            **({} if review is None else {REVIEW: asdict(review)}),
        },
        "ground_truth_columns": ground_truth_columns(policy.actions),
        "ground_truth_note": GROUND_TRUTH_NOTE,
        "realised": realised_rates(totals, policy.actions),
    }


def _build(spec: GenerateSpec, root: Path, on_rows: Callable[[int], None] | None) -> None:
    """Write all files of `spec` under the (temporary) directory `root`."""
    model = build_model(spec.seed)
    (root / TRANSACTIONS).mkdir()
    (root / GROUND_TRUTH).mkdir()
    totals, files = Tally(), []
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="policysim-write") as pool:
        for k, rows in enumerate(file_slices(spec.rows, spec.files)):
            paths = (root / TRANSACTIONS / _part(k), root / GROUND_TRUTH / _part(k))
            file_totals, info = _write_file(model, spec, rows, paths, pool, on_rows)
            totals += file_totals
            files.append(
                {"transactions": f"{TRANSACTIONS}/{_part(k)}", "ground_truth": f"{GROUND_TRUTH}/{_part(k)}", **info}
            )
    text = json.dumps(_metadata(spec, model, totals, files), indent=2, allow_nan=False)
    (root / METADATA).write_text(text + "\n", encoding="utf-8")


def generate(spec: GenerateSpec, out_dir: Path, on_rows: Callable[[int], None] | None = None, *,
             overwrite: bool = False) -> GenerateReport:
    """Generate the synthetic log of `spec` into the folder `out_dir`, written whole.

    `out_dir` must be new or empty unless `overwrite`, which replaces an earlier
    output folder whole (`simulator.report.folders`); a folder that cannot be
    used raises InvalidConfig before any row is generated. `on_rows(n)` is called
    after each chunk with the number of rows just written (for a progress bar).

    Example::

        report = generate(GenerateSpec(rows=200_000, seed=7, exploration=0.05), Path("data"))
        run(config, report.transactions_dir, execution=Execution(engine="local"))
    """
    began = time.perf_counter()
    out_dir = Path(out_dir)
    with staged_folder(out_dir, overwrite=overwrite) as root:
        _build(spec, root, on_rows)
    return GenerateReport(
        rows=spec.rows,
        files=spec.files,
        transactions_dir=out_dir / TRANSACTIONS,
        ground_truth_dir=out_dir / GROUND_TRUTH,
        as_of=spec.as_of,
        seconds=time.perf_counter() - began,
    )
