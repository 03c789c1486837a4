"""What people read: files, tables, plots and reports (SPEC §9). Nothing here computes an estimate.

- `numbers` — how numbers read: compact, in tables, and per metric (money, %, bps) in reports;
- `files` — atomic writes of Parquet, JSON and text, and the data fingerprint;
- `folders` — output folders: checked before any work, written whole and swapped in;
- `tables` — rich renderables for the CLI and notebooks;
- `plots` — matplotlib figures of results (forest plots, calibration);
- `forest_svg` — the run report's forest plots, a panel per candidate, written directly as SVG;
- `frontier_plots` — the sweep frontier as a PNG and a self-contained interactive page;
- `calibration` — reliability curves of the logged scores, for the review report;
- `review_page` — the review report as HTML and Markdown;
- `review` — what the review report says, section by section, and writing it;
- `sweep` — what `policysim sweep` writes;
- `plan` — what `policysim plan` writes and prints (the sizing table, plan.md, plan.png).
"""
