"""`python`: a custom policy class named by import path (SPEC §4).

`object = "package.module:ClassName"` is imported with importlib (no `eval`) and
instantiated with keyword arguments `actions=<the configured action set>,
**params`. The instance must have:

- `columns`: the canonical columns it reads (required; loaders read only these),
- `probabilities(batch) -> array-like (n, n_actions)`,

and may have `deterministic: bool` (default False) and `coded(batch)` returning
an object with `codes` and `table` (see `policies.base.Coded`: the table must be
the same for every batch, and `table[codes]` must equal `probabilities(batch)`)
or None. Without `coded`, the engine weights its rows one by one.

Its output is checked on every call (shape, finite, non-negative, rows summing
to 1 within 1e-9, one-hot when declared deterministic), because a broken custom
policy must fail with its name rather than produce weights. The instance must
be picklable to run on Ray, and safe to call from several threads at once: the local
engine runs shards on a thread per CPU (no state changed by a call). See
`tests/policies/example_user_policy.py`.

Example::

    [[policies]]
    name = "challenge_big_tickets"
    kind = "python"
    object = "tests.policies.example_user_policy:ChallengeHighAmounts"
    params = { above = 500.0 }
"""

from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import polars as pl
from pydantic import field_validator

from policies.base import Coded, check_probabilities, require_columns
from policies.registry import PolicyContext, PolicyParams, register_policy
from simulator.errors import InvalidConfig, PolicysimError

_OBJECT_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


class UserPolicy(Protocol):
    """The part of the user's object we call on every batch."""

    def probabilities(self, batch: pl.DataFrame) -> object: ...


class PythonParams(PolicyParams):
    """Parameters of `python`: the import path and the keyword arguments of the class."""

    object: str
    params: dict[str, Any] = {}

    @field_validator("object")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if not _OBJECT_PATH.fullmatch(value):
            raise ValueError(f"must be 'package.module:ClassName', got {value!r}")
        return value


@dataclass(frozen=True, slots=True)
class PythonPolicy:
    """The user's object behind the policy protocol, its output checked on every call."""

    instance: UserPolicy
    columns: frozenset[str]
    deterministic: bool
    n_actions: int
    who: str
    logging: ClassVar[bool] = False

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        """The object's probabilities, checked."""
        return check_probabilities(
            self.instance.probabilities(batch),
            n_rows=batch.height,
            n_actions=self.n_actions,
            deterministic=self.deterministic,
            who=f"{self.who}.probabilities",
        )

    def coded(self, batch: pl.DataFrame) -> Coded | None:
        """The object's own coding, checked, or None when it has no `coded` method."""
        method = getattr(self.instance, "coded", None)
        coded = method(batch) if method is not None else None
        return None if coded is None else self._checked(coded, batch.height)

    def _checked(self, coded: Any, n_rows: int) -> Coded:
        """A `Coded` from the object's `codes` and `table`, if they are valid."""
        who = f"{self.who}.coded"
        table = np.asarray(coded.table, dtype=np.float64)
        check_probabilities(
            table, n_rows=len(table), n_actions=self.n_actions, deterministic=self.deterministic, who=who
        )
        codes = np.asarray(coded.codes)
        if codes.shape != (n_rows,) or codes.dtype.kind not in "iu":
            raise PolicysimError(f"{who}: codes must be ({n_rows},) integers, got shape {codes.shape} of {codes.dtype}")
        if n_rows and (codes.min() < 0 or codes.max() >= len(table)):
            raise PolicysimError(f"{who}: codes must be in [0, {len(table)}), got {codes.min()}..{codes.max()}")
        return Coded(codes=codes.astype(np.int32), table=table)


@register_policy("python", params=PythonParams)
def python_policy(params: PythonParams, context: PolicyContext, *, where: str) -> PythonPolicy:
    """Import and instantiate the class, then read and check its declared columns and capabilities."""
    factory = _import(params.object, where=f"{where}.object")
    if "actions" in params.params:
        raise InvalidConfig(f"{where}.params.actions: set from the configured action set, not here")
    try:
        instance = factory(actions=context.actions, **params.params)
    except (TypeError, ValueError) as error:
        raise InvalidConfig(f"{where}.params: {params.object} rejected its parameters: {error}") from error
    who = f"{where}.object: {params.object}"
    columns = _declared_columns(instance, who=who)
    deterministic = _declared_deterministic(instance, who=who)
    require_columns(columns, context.columns, where=f"{where}.object")
    return PythonPolicy(
        instance=instance,
        columns=columns,
        deterministic=deterministic,
        n_actions=len(context.actions),
        who=f"{where} ({params.object})",
    )


def _import(path: str, *, where: str) -> Any:
    """The attribute `Name` of module `package.module` for `package.module:Name`."""
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise InvalidConfig(f"{where}: cannot import module {module_name!r} ({error})") from error
    if not hasattr(module, name):
        public = [attribute for attribute in dir(module) if not attribute.startswith("_")]
        close = difflib.get_close_matches(name, public, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidConfig(f"{where}: module {module_name!r} has no attribute {name!r}{hint}")
    return getattr(module, name)


def _declared_deterministic(instance: object, *, who: str) -> bool:
    """The object's optional `deterministic` flag; also checks it has `probabilities`."""
    if not callable(getattr(instance, "probabilities", None)):
        raise InvalidConfig(f"{who} must have a probabilities(batch) method")
    deterministic = getattr(instance, "deterministic", False)
    if not isinstance(deterministic, bool):
        raise InvalidConfig(f"{who}: `deterministic` must be true or false, got {deterministic!r}")
    return deterministic


def _declared_columns(instance: object, *, who: str) -> frozenset[str]:
    """The object's `columns` as a frozenset of names; required, so loaders know what to read."""
    columns = getattr(instance, "columns", None)
    collection = isinstance(columns, (list, tuple, set, frozenset))
    if not collection or not all(isinstance(c, str) for c in columns):
        raise InvalidConfig(f"{who} must have `columns`, a collection of the column names it reads, got {columns!r}")
    return frozenset(columns)
