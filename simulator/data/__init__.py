"""Logged transactions in (SPEC §2): where they are, what they must look like, what they hold.

The stages, in the order a run meets them:

- `load` — find the files of a dataset and scan them with canonical column names, timestamps in UTC;
- `validate` — every rule of the data contract, each problem with its column, count and an example id;
- `summary` — what a valid dataset holds (rows, time span, as-of date, label maturity), for messages and outputs.
"""
