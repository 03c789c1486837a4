"""SQL expressions of the value model: parsed by polars (never `eval`), ordered by what they read, type-checked.

A config's `[value_model.values]` and `[metrics.NAME] sum` are SQL expressions
over a row's columns and the value columns (`simulator.model.value`). They are
parsed once (`parse`), evaluated level by level so that a value can read the
values it names (`dependency_levels`), and checked against the data's schema
before any row is read (`check_against`), so that a misspelt column or a string
where a number belongs is a config error naming the expression, not a failure
halfway through a shard.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

import polars as pl

from simulator.errors import InvalidConfig, unknown_message

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # a value or metric name: an SQL identifier


@lru_cache(maxsize=512)
def parse(text: str) -> pl.Expr:
    """The polars expression of an SQL expression; `ValueError` with polars' reason when it does not parse."""
    try:
        return pl.sql_expr(text)
    except Exception as error:  # polars raises SQLSyntaxError, SQLInterfaceError or ComputeError here
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{text!r} is not an SQL expression polars can parse: {reason}") from None


def reads(expr: pl.Expr) -> frozenset[str]:
    """The column names an expression reads."""
    return frozenset(expr.meta.root_names())


def dependency_levels(reads_of: Mapping[str, frozenset[str]]) -> tuple[tuple[str, ...], ...]:
    """Names grouped so that each reads only names of earlier groups (itself excepted: that is the raw column).

    Within a group, names keep the order of `reads_of`. A cycle raises `ValueError` naming it.
    """
    names = list(reads_of)
    deps = {n: {d for d in reads_of[n] if d in reads_of and d != n} for n in names}
    level: dict[str, int] = {}
    remaining = names
    while remaining:
        ready = [n for n in remaining if deps[n] <= level.keys()]
        if not ready:
            raise ValueError(f"these values read each other in a cycle (or read one that does): {', '.join(remaining)}")
        for name in ready:
            level[name] = 1 + max((level[d] for d in deps[name]), default=-1)
        remaining = [n for n in remaining if n not in level]
    depth = 1 + max(level.values(), default=-1)
    return tuple(tuple(n for n in names if level[n] == d) for d in range(depth))


def check_against(schema: Mapping[str, pl.DataType], exprs: Mapping[str, tuple[str, pl.Expr]],
                  levels: tuple[tuple[str, ...], ...], where: Mapping[str, str]) -> None:
    """Raise `InvalidConfig` naming each expression that reads an unknown column or does not type-check.

    `exprs`: value name → (its SQL text, or "" for a built-in, and its expression); `where`: value
    name → its TOML path. Evaluated on no rows with the data's column types: polars then resolves
    every column and operator without reading the data.
    """
    problems: list[str] = []
    known = set(schema)
    frame = pl.DataFrame(schema=dict(schema)).lazy()
    for level in levels:
        for name in level:
            text, expr = exprs[name]
            missing = sorted(reads(expr) - known)
            if text and missing:
                problems.append(f"{where[name]}: {text!r} reads {unknown_message(f'unknown column {missing[0]!r}', missing[0], sorted(known))}")
                continue
            try:
                dtype = frame.select(expr.alias(name)).collect_schema()[name]
            except Exception as error:  # polars' ComputeError, InvalidOperationError, SchemaError, ...
                if text:
                    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                    problems.append(f"{where[name]}: {text!r} does not type-check against the data: {reason}")
                continue
            if text and not (dtype.is_numeric() or dtype == pl.Boolean or dtype == pl.Null):
                problems.append(f"{where[name]}: {text!r} gives {dtype}, not a number")
        frame = frame.with_columns([exprs[n][1].cast(pl.Float64).alias(n) for n in level])
        known |= set(level)
    if problems:
        raise InvalidConfig("config: " + ("\n  ".join(["the value model's expressions do not fit the data:", *problems])))
