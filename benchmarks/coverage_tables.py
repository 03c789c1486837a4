"""Markdown tables of coverage summaries (shared by coverage_fresh.py and interval_methods.py)."""

from __future__ import annotations

import polars as pl

CLASS = {
    "authorized_count": "counts", "blocked_count": "counts", "challenged_count": "counts",
    "auth_rate": "rates", "block_rate": "rates",
    "authorized_volume": "money", "revenue": "money", "cost": "money", "net_value": "money",
    "fraud_count": "fraud", "fraud_volume": "fraud", "fraud_loss": "fraud", "fraud_rate_bps": "fraud",
    "blocked_fraud_count": "block quality", "blocked_legit_count": "block quality",
    "block_precision": "block quality", "block_recall": "block quality",
}
ORDER = list(CLASS)


def cell(cov: float | None, lo: float | None, hi: float | None, width: float | None) -> str:
    if cov is None:
        return "n/a"
    w = "-" if width is None or width != width else f"{width:.2f}"
    return f"{cov:.2f} ({lo:.2f}/{hi:.2f}) {w}"


def metric_table(part: pl.DataFrame) -> str:
    """Rows = metric; columns = policy x kind; cell = coverage (low miss / high miss) width ratio."""
    cols = [(p, k) for p in ("cand_a", "cand_b") for k in ("estimate", "delta")]
    lines = ["| metric | " + " | ".join(f"{p} {k}" for p, k in cols) + " |",
             "| --- |" + " --- |" * len(cols)]
    index = {(r["metric"], r["policy"], r["kind"]): r for r in part.iter_rows(named=True)}
    own = [m for m in part["metric"].unique(maintain_order=True).to_list() if m not in CLASS]  # a config's metrics
    for metric in [m for m in ORDER if m in part["metric"]] + own:
        cells = []
        for p, k in cols:
            r = index.get((metric, p, k))
            cells.append("n/a" if r is None else cell(r["coverage"], r["miss_low"], r["miss_high"], r["width_ratio"]))
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def class_table(table: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Worst case per metric class: min / median coverage, largest tail miss, median width ratio."""
    return (table.with_columns(cls=pl.col("metric").replace_strict(CLASS, default="other"))
            .filter(pl.col("cls") != "other")
            .group_by(*keys, "kind", "cls", maintain_order=True)
            .agg(cov_min=pl.col("coverage").min(), cov_med=pl.col("coverage").median(),
                 tail_max=pl.max_horizontal("miss_low", "miss_high").max(),
                 # an exact estimate (no spread: e.g. counts of actions on these payments) has no width ratio
                 width_med=pl.col("width_ratio").filter(pl.col("width_ratio") < 1e6).median(),
                 width_max=pl.col("width_ratio").filter(pl.col("width_ratio") < 1e6).max())
            .sort(*keys, "kind", "cls"))


def markdown(frame: pl.DataFrame, digits: int = 2) -> str:
    head = "| " + " | ".join(frame.columns) + " |\n| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = []
    for r in frame.iter_rows():
        rows.append("| " + " | ".join(f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in r) + " |")
    return head + "\n" + "\n".join(rows)
