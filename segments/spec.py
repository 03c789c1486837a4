"""The `[segments]` config table (SPEC §6, §11).

```toml
[segments]
by = [["card_country"], ["card_country", "card_brand"], ["amount"]]
top_k = { merchant_id = 20 }          # keep the 20 largest values, the rest are "other"
max_segments = 5000                   # the most segments one segmentation may make (the default)
time = "week"                         # windows of created_at (UTC): day, week (from Monday) or month
[segments.bands.amount]
edges = [0, 10, 50, 200, 1000]
```

Each `by` entry is one segmentation: a column, or a cross of columns whose
label parts keep the entry's order. A banded or top-k column is named in `by`
like any other; its segment value is then the band or `other`. `time` adds
windows of `created_at` as one more segmentation (`segments.windows`); a `by`
entry may cross that window with columns by naming it (`created_at_week`).

Validation happens here, once, so a built `SegmentSpec` is never invalid:
settings that would silently do nothing (a band or top_k for a column no `by`
entry uses) are errors, as are settings that contradict each other. Every
problem is reported at once (`TableProblems`, paths below `[segments]`). Checks
that need the data (columns exist, banded columns are numeric, how many
segments a segmentation makes) are in `segments.plan`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Annotated, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from segments.labels import PART_SEPARATOR, VALUE_SEPARATOR, format_number
from segments.windows import WINDOW_COLUMNS, TimeUnit, source_columns, window_column
from simulator.errors import TableProblems

DEFAULT_MAX_SEGMENTS = 5_000

# strict: `true` is not the number 1 and "20" is not 20 (TOML has real numbers).
StrictFloat = Annotated[float, Field(strict=True)]
StrictInt = Annotated[int, Field(strict=True)]


class Bands(BaseModel):
    """Edges that cut a numeric column into half-open bands `[low, high)`.

    `len(edges) + 1` bands: below the first edge, between consecutive edges,
    from the last edge on. Edges are checked (at least one, finite, strictly
    increasing) by `SegmentSpec`, which knows the column for the message.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    edges: tuple[StrictFloat, ...]


class SegmentSpec(BaseModel):
    """Which segments every result is broken down by, besides `ALL`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    by: tuple[tuple[str, ...], ...] = ()
    bands: dict[str, Bands] = {}
    top_k: dict[str, StrictInt] = {}
    # A segmentation with more segments is refused before any work (`segments.plan`): a column of ids or
    # timestamps would otherwise make a segment per row, each with too few rows to estimate anything.
    max_segments: StrictInt = Field(default=DEFAULT_MAX_SEGMENTS, ge=1)
    time: TimeUnit | None = None  # windows of created_at (UTC), one more segmentation (segments.windows)

    @property
    def segmentations(self) -> tuple[tuple[str, ...], ...]:
        """Every segmentation besides `ALL`, in label order: the `by` entries, then the time window.

        The window is not listed twice when a `by` entry already names it alone.
        """
        if self.time is None or (window_column(self.time),) in self.by:
            return self.by
        return (*self.by, (window_column(self.time),))

    @model_validator(mode="after")
    def _check(self) -> Self:
        """Reject segmentations, bands and top-k settings that are wrong or would do nothing, all at once."""
        problems = _by_problems(self.by) + _window_problems(self.by, self.time)
        used = frozenset(column for columns in self.by for column in columns)
        for where, column in [*(("bands", c) for c in self.bands), *(("top_k", c) for c in self.top_k)]:
            if column in WINDOW_COLUMNS:
                problems.append((f"{where}.{column}", f"{column!r} is a time window; its windows are its values "
                                                     "(choose their length with segments.time)"))
        for column, bands in _without_windows(self.bands).items():
            problems += _edge_problems(f"bands.{column}.edges", bands.edges)
            problems += _unused(f"bands.{column}", column, used, "its bands")
        for column, k in _without_windows(self.top_k).items():
            problems += _unused(f"top_k.{column}", column, used, "its top_k")
            if k < 1:
                problems.append((f"top_k.{column}", f"must be >= 1, got {k}"))
            if column in self.bands:
                problems.append((f"top_k.{column}", f"column {column!r} is banded (segments.bands.{column}); "
                                                     "a column is either banded or top-k, not both"))
        if problems:
            raise TableProblems(problems)
        return self


Problems = list[tuple[str, str]]  # (TOML path below [segments], message)
T = TypeVar("T")


def required_columns(spec: SegmentSpec) -> frozenset[str]:
    """Every column of the data the segments read (what a loader must read for them); windows read `created_at`."""
    return source_columns(column for columns in spec.segmentations for column in columns)


def _without_windows(settings: dict[str, T]) -> dict[str, T]:
    """Per-column settings of columns other than windows (a window's settings are one problem, reported apart)."""
    return {column: value for column, value in settings.items() if column not in WINDOW_COLUMNS}


def _window_problems(by: Sequence[tuple[str, ...]], time: TimeUnit | None) -> Problems:
    """A `by` entry may name the window of the `time` unit only (and only when `time` is set)."""
    problems: Problems = []
    for index, columns in enumerate(by):
        for column in columns:
            unit = WINDOW_COLUMNS.get(column)
            if unit is None or unit == time:
                continue
            fix = (f'set segments.time = "{unit}" to use it' if time is None
                   else f'segments.time = "{time}" makes {window_column(time)!r}; name that one')
            problems.append((f"by[{index}]", f"{column!r} is the {unit} window of created_at; {fix}"))
    return problems


def _by_problems(by: Sequence[tuple[str, ...]]) -> Problems:
    """Each entry names at least one column, each once, with a usable name; no entry twice."""
    problems: Problems = []
    seen: dict[frozenset[str], int] = {}
    for index, columns in enumerate(by):
        where = f"by[{index}]"
        if not columns:
            problems.append((where, "empty; name at least one column"))
        for column in columns:
            problems += _name_problems(where, column)
            if columns.count(column) > 1:
                problems.append((where, f"column {column!r} named twice in {list(columns)}"))
        # the same columns in another order are the same segments with reordered labels
        earlier = seen.setdefault(frozenset(columns), index)
        if earlier != index and columns:
            problems.append((where, f"{list(columns)} has the same columns as segments.by[{earlier}] "
                                    f"{list(by[earlier])}; list each segmentation once"))
    return list(dict.fromkeys(problems))  # a column named twice is one problem


def _name_problems(where: str, column: str) -> Problems:
    """A column name that labels can carry: not empty, without the label separators."""
    if not column:
        return [(where, "empty column name")]
    if PART_SEPARATOR in column or VALUE_SEPARATOR in column:
        return [(where, f"column name {column!r} cannot contain {PART_SEPARATOR!r} or {VALUE_SEPARATOR!r}, "
                        "which separate the parts of a segment label; rename it in [data.columns]")]
    return []


def _edge_problems(where: str, edges: Sequence[float]) -> Problems:
    """At least one edge, all finite, strictly increasing (so bands are ordered and non-empty)."""
    shown = f"[{', '.join(format_number(edge) for edge in edges)}]"
    if not edges:
        return [(where, "needs at least one edge, got []")]
    if not all(math.isfinite(edge) for edge in edges):
        return [(where, f"edges must be finite, got {shown}")]
    if any(high <= low for low, high in zip(edges, edges[1:])):
        return [(where, f"edges must be strictly increasing, got {shown}")]
    return []


def _unused(where: str, column: str, used: frozenset[str], what: str) -> Problems:
    """A per-column setting must apply to a column some `by` entry names; otherwise it does nothing."""
    if column in used:
        return []
    return [(where, f"column {column!r} is in no segments.by entry, so {what} would do nothing; "
                    f'add ["{column}"] to segments.by or remove this setting')]
