"""Throughput of `policysim generate`, against a plain Parquet write of the same shape.

Generates `--rows` rows (default 10 M) into a temporary directory and prints
rows/s, CPU time, peak RSS and the size written. As same-run baselines it then
writes the same number of rows with the same two schemas (transactions and
ground truth), writer options and chunking, the two files in parallel as the
generator does: once random values (which compress worse: more bytes), once
the generator's first chunk written over and over (the same bytes). That is
the cost of the Parquet encoding and I/O alone; the ratios say what the
simulation itself adds. Peak RSS is read before the baselines run.

    .venv/bin/python benchmarks/bench_generate.py [--rows N] [--files K] [--chunk-rows C]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

# Run as a script from a checkout, whether or not the package is installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.synthetic.generate import GenerateSpec, file_slices, generate
from simulator.synthetic.log import simulate_chunk
from simulator.synthetic.model import build_model
from simulator.synthetic.tables import ground_truth_table, transactions_table, writer_options
from simulator.schema import Schema
from simulator.data.validate import check_dataset


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def size_mb(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 1e6


def random_like(table: pa.Table, rng: np.random.Generator) -> pa.Table:
    """A table of the same schema filled with random values (strings keep their text)."""
    n, columns = table.num_rows, {}
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_floating(field.type):
            columns[field.name] = pa.array(rng.random(n))
        elif pa.types.is_boolean(field.type):
            columns[field.name] = pa.array(rng.random(n) < 0.5)
        elif pa.types.is_timestamp(field.type):
            columns[field.name] = pa.array(np.sort(rng.integers(0, 10**15, n)), type=field.type)
        else:  # strings and dictionaries: the real values, shuffled
            columns[field.name] = column.combine_chunks().take(pa.array(rng.permutation(n)))
    return pa.table(columns)


def sample_tables(spec: GenerateSpec) -> tuple[pa.Table, pa.Table]:
    """The transactions and ground-truth tables of the spec's first chunk."""
    model = build_model(spec.seed)
    chunk = simulate_chunk(model, spec.logging_policy(), spec.timeline(), 0, min(spec.chunk_rows, spec.rows))
    tx = transactions_table(chunk)
    return tx, ground_truth_table(chunk, tx.column(0))


def plain_write(spec: GenerateSpec, tables: tuple[pa.Table, pa.Table], out: Path) -> float:
    """Seconds to write spec.rows rows of `tables` (repeated) in the generator's layout and chunking."""
    out.mkdir()
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for k, (lo, hi) in enumerate(file_slices(spec.rows, spec.files)):
            paths = (out / f"tx-{k:05d}.parquet", out / f"gt-{k:05d}.parquet")
            writers = [
                pq.ParquetWriter(p, t.schema, **writer_options(t.schema)) for p, t in zip(paths, tables, strict=True)
            ]
            for start in range(lo, hi, spec.chunk_rows):
                n = min(spec.chunk_rows, hi - start)
                writes = [
                    pool.submit(w.write_table, t.slice(0, n), row_group_size=n)
                    for w, t in zip(writers, tables, strict=True)
                ]
                for write in writes:
                    write.result()
            for writer in writers:
                writer.close()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--chunk-rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    spec = GenerateSpec(rows=args.rows, files=args.files, seed=args.seed, chunk_rows=args.chunk_rows)
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        cpu_before, began = cpu_seconds(), time.perf_counter()
        report = generate(spec, Path(tmp) / "out")
        wall, cpu, rss = time.perf_counter() - began, cpu_seconds() - cpu_before, peak_rss_mib()
        written = size_mb(Path(tmp) / "out")
        began = time.perf_counter()
        check_dataset(report.transactions_dir, Schema())
        validate_s = time.perf_counter() - began
        began = time.perf_counter()
        pl.read_parquet(report.transactions_dir)
        read_s = time.perf_counter() - began
        tables = sample_tables(spec)
        rng = np.random.default_rng(0)
        random_tables = (random_like(tables[0], rng), random_like(tables[1], rng))
        baselines = {
            "random values": plain_write(spec, random_tables, Path(tmp) / "random"),
            "generated values": plain_write(spec, tables, Path(tmp) / "same"),
        }
        sizes = {"random values": size_mb(Path(tmp) / "random"), "generated values": size_mb(Path(tmp) / "same")}
    print(f"rows {spec.rows:,}  files {spec.files}  chunk_rows {spec.chunk_rows:,}")
    print(
        f"generate     {wall:6.2f} s wall  {spec.rows / wall / 1e6:5.2f} M rows/s  {cpu:6.2f} s CPU  "
        f"peak RSS {rss:,.0f} MiB  {written:,.0f} MB written  (report: {report.seconds:.2f} s)"
    )
    for name, seconds in baselines.items():
        print(
            f"plain write  {seconds:6.2f} s wall  {spec.rows / seconds / 1e6:5.2f} M rows/s  "
            f"{sizes[name]:,.0f} MB written  ({name}: same schemas, writer options and chunking)"
        )
        print(f"  ratio generate / plain write of {name}: {wall / seconds:.2f}")
    print(
        f"validate     {validate_s:6.2f} s wall  {spec.rows / validate_s / 1e6:5.2f} M rows/s  "
        f"(polars reading every column: {read_s:.2f} s; ratio {validate_s / read_s:.1f})"
    )


if __name__ == "__main__":
    main()
