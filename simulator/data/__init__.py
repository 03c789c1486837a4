"""Logged transactions in (SPEC §2): where they are, what shape they come in, what they must look like, what they hold.

The stages, in the order a run meets them:

- `storage` — where the files are: local paths, globs and object storage (`s3://`, `gs://`, `az://`), listed once;
- `readers` — reading Parquet and CSV files, typed by the data contract, read errors naming the file;
- `mapping` — from the export's shape to the canonical one (`[data.columns]`, `[data.action_values]`,
  `[data.timestamp_format]`), applied as rows are read;
- `logging_policy` — a declared `[data.logging_policy]`: propensities derived from it, and the audit of logged ones;
- `load` — a dataset's `Source` (files, format, types), its canonical scan, and one shard's rows;
- `validate` (with `problems`) — every rule of the data contract, each problem with its column, count and an example id;
- `summary` — what a valid dataset holds (rows, time span, as-of date, label maturity, the propensity audit);
- `shard_checks` — the same checks and summary run by each shard on the rows it reads for its statistics,
  merged on the driver (how `run` validates: no pass of its own).
"""
