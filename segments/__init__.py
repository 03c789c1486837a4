"""Segments (SPEC §6, §9): columns, bands of numeric columns, crosses, top-k with `other`.

The stages, in the order a run meets them:

- `SegmentSpec` — the `[segments]` config table, validated once;
- `plan_segments(spec, data)` — on the driver: checks the columns against the
  data and fixes the data-dependent choices (kept top-k values) in a `SegmentPlan`;
- `segment_codes(frame, plan)` — on each shard: every row's segment per
  segmentation, as shard-local codes with their labels (`SegmentCodes`);
- `segment_sort_key(label, plan)` — the order reports list segments in.

Time windows of `created_at` (`[segments] time`) are derived segment columns
(`segments.windows`), planned and coded like any other.
"""

# The engine first: importing simulator.errors runs simulator/__init__, which imports the engine,
# which imports this package's modules (never its names); loading it here keeps that order whatever
# is imported first.
import simulator  # noqa: F401
from segments.codes import SegmentCodes, segment_codes
from segments.labels import ALL, NULL, OTHER, band_label, band_value, format_value, segment_sort_key
from segments.plan import SegmentPlan, plan_segments
from segments.spec import Bands, SegmentSpec, required_columns
from segments.windows import TIME_UNITS, TimeUnit, window_column

__all__ = [
    "ALL",
    "NULL",
    "OTHER",
    "Bands",
    "SegmentCodes",
    "SegmentPlan",
    "SegmentSpec",
    "TIME_UNITS",
    "TimeUnit",
    "band_label",
    "band_value",
    "format_value",
    "plan_segments",
    "required_columns",
    "segment_codes",
    "segment_sort_key",
    "window_column",
]
