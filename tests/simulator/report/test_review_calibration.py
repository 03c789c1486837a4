"""Reliability curves of the logged scores: which rows count, bins by edges, known answers."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from simulator.report.calibration import CALIBRATION_SCHEMA, calibration, calibration_error, calibrations, TARGETS

CUTOFF = datetime(2025, 6, 1, tzinfo=UTC)
OLD, NEW = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)
FRAUD, AUTH = TARGETS


def frame() -> pl.LazyFrame:
    """Eight rows; the comment on each says whether the fraud curve uses it."""
    return pl.DataFrame({
        "action": ["allow", "allow", "challenge", "allow", "block", "allow", "challenge", "allow"],
        "created_at": [OLD, OLD, OLD, OLD, OLD, NEW, OLD, OLD],
        "fraud_score": [0.1, 0.1, 0.2, 0.9, 0.95, 0.5, 0.3, 0.8],
        "auth_score": [0.9, 0.8, 0.9, 0.3, 0.5, 0.9, 0.7, 0.6],
        # used: yes, yes, yes, yes, no (blocked), no (immature), no (not authorized), yes
        "authorized": [True, True, True, True, None, True, False, True],
        "fraud_dispute": [False, False, True, True, None, True, None, False],
    }).lazy()


def test_fraud_curve_uses_mature_authorized_allowed_or_challenged_rows() -> None:
    curve = calibration(frame(), FRAUD, cutoff=CUTOFF, bins=2)
    # used scores 0.1, 0.1, 0.2, 0.9, 0.8 (fraud 0, 0, 1, 1, 0). Lower quantiles of the sorted scores
    # [0.1, 0.1, 0.2, 0.8, 0.9]: 0.5 -> index 2 -> 0.2; 0.95, 0.99, 0.999 -> index 3 -> 0.8 (deduplicated)
    assert curve.schema == pl.Schema(CALIBRATION_SCHEMA)
    assert curve["score_high"].to_list() == [0.2, 0.8, 1.0]
    assert curve["rows"].to_list() == [3, 1, 1]  # (0, 0.2]: 0.1, 0.1, 0.2; (0.2, 0.8]: 0.8; (0.8, 1]: 0.9
    first = curve.row(0, named=True)
    assert first["mean_score"] == pytest.approx((0.1 + 0.1 + 0.2) / 3)
    assert first["observed_rate"] == pytest.approx(1 / 3)  # 0.2 sits on the edge and stays in the lower bin
    assert curve["rows"].sum() == 5


def test_auth_curve_uses_allowed_rows_whatever_their_age() -> None:
    curve = calibration(frame(), AUTH, cutoff=CUTOFF, bins=2)
    # allowed rows: auth_score 0.9, 0.8, 0.3, 0.9 (new), 0.6, all authorized
    assert curve["rows"].sum() == 5
    assert curve["observed_rate"].to_list() == [1.0] * curve.height


def test_calibrations_skip_missing_scores_and_measure_the_error() -> None:
    curves = calibrations(frame().drop("auth_score"), cutoff=CUTOFF, bins=2)
    assert curves["score"].unique().to_list() == ["fraud_score"]
    error = calibration_error(curves).row(0, named=True)
    expected = sum(r["rows"] * abs(r["mean_score"] - r["observed_rate"]) for r in curves.iter_rows(named=True)) / 5
    assert error["rows"] == 5 and error["calibration_error"] == pytest.approx(expected)
