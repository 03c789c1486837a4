"""The one exception hierarchy of policysim.

Library code raises these and never prints or exits; the CLI turns them into a
message on stderr and exit code 2. Any other exception is a bug: the CLI prints
its traceback and exits 70 (EX_SOFTWARE).

`validation_problems` is the one place pydantic's errors become messages with
the TOML path and the offending value, for the config and the policy registry alike.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails


class PolicysimError(Exception):
    """Base of every error a user can cause and fix."""

    exit_code: int = 2


class InvalidData(PolicysimError):
    """The logged transactions break the data contract (SPEC §2).

    `problems` holds every problem found, so a user fixes them in one round.
    """

    def __init__(self, message: str, problems: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class InvalidConfig(PolicysimError):
    """A config value is missing, mistyped or inconsistent."""


class UnknownName(PolicysimError):
    """A name (policy kind, estimator, column, metric) that is not known."""

    def __init__(self, what: str, name: str, known: Iterable[str]) -> None:
        choices = sorted(known)
        message = f"unknown {what} {name!r}; known: {', '.join(choices)}"
        close = difflib.get_close_matches(name, choices, n=1)
        if close:
            message += f" (did you mean {close[0]!r}?)"
        super().__init__(message)
        self.name = name
        self.known = tuple(choices)


class TablePath(ValueError):
    """Raised in a validator that checks one table against another: names the TOML path it is about.

    A model validator's error otherwise sits at the model's own path; this one
    says which key is wrong (`review.candidate: 'x' is the baseline`).
    """

    def __init__(self, path: str, message: str) -> None:  # path: a key of the validated table
        super().__init__(message)
        self.path = path


def toml_path(where: str, loc: Sequence[int | str]) -> str:
    """The TOML path of a pydantic `loc` below `where`: `policies[1].rules[0].when`."""
    parts = [where]
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif re.fullmatch(r"[A-Za-z0-9_-]+", part):
            parts.append(f".{part}" if any(parts) else part)
        else:
            parts.append(f".{json.dumps(part)}" if any(parts) else json.dumps(part))
    return "".join(parts)


_BOUNDS = {"less_than_equal": "<=", "less_than": "<", "greater_than_equal": ">=", "greater_than": ">"}


def validation_problems(error: ValidationError, where: str = "", *, model: type[BaseModel] | None = None,
                        kind: str | None = None) -> list[str]:
    """One line per problem: the TOML path below `where`, what is wrong, and the offending value.

    `kind` (with its parameters' `model`) says the table is a policy of that
    kind: a missing key says the kind requires it, and an unknown key lists the
    kind's parameters and the closest one.
    """
    return [_describe(detail, where, model, kind) for detail in error.errors()]


def _describe(detail: ErrorDetails, where: str, model: type[BaseModel] | None, kind: str | None) -> str:
    loc = detail["loc"]
    kind_of_error = detail["type"]
    ctx: dict[str, Any] = detail.get("ctx", {})
    cause = ctx.get("error")
    if isinstance(cause, TablePath):
        return f"{toml_path(toml_path(where, loc), cause.path.split('.'))}: {cause}"
    path = toml_path(where, loc) or "(top level)"
    got = f", got {detail.get('input')!r}"
    if kind_of_error == "missing":
        return f"{path}: missing; policy kind {kind!r} requires it" if kind else f"{path}: {detail['msg']}"
    if kind_of_error == "extra_forbidden":
        if kind is None:
            return f"{path}: {detail['msg']}{got}"
        known = () if model is None else _fields_at(model, loc[:-1])
        return f"{path}: {_unknown_parameter(str(loc[-1]), known, kind)}"
    if kind_of_error == "value_error":
        message = str(cause)
        return f"{path}: {message}" if kind or "got " in message else f"{path}: {message}{got}"
    if kind_of_error in _BOUNDS:
        limit = next(iter(ctx.values()))
        return f"{path}: must be {_BOUNDS[kind_of_error]} {limit:g}{got}"
    message = detail["msg"]
    return f"{path}: {message[:1].lower()}{message[1:]}{got}"


def _unknown_parameter(name: str, known: Sequence[str], kind: str) -> str:
    """`unknown parameter 'x' for policy kind 'k'; known: ... (did you mean ...?)`."""
    message = f"unknown parameter {name!r} for policy kind {kind!r}"
    if known:
        message += f"; known: {', '.join(sorted(known))}"
    close = difflib.get_close_matches(name, known, n=1)
    return message + (f" (did you mean {close[0]!r}?)" if close else "")


def _fields_at(model: type[BaseModel], loc: Sequence[int | str]) -> tuple[str, ...]:
    """Field names of the (nested) model at `loc`, for "did you mean" on an unknown parameter."""
    current = model
    parts = list(loc)
    while parts:
        field = current.model_fields.get(str(parts.pop(0)))
        if field is None:
            return ()
        if get_origin(field.annotation) in (list, dict) and parts:
            parts.pop(0)  # the list index or the dict key
        nested = _model_in(field.annotation)
        if nested is None:
            return ()
        current = nested
    return tuple(current.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `Cutoffs`, `list[Rule]` or `Cutoffs | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def invalid_config(error: ValidationError, source: str, where: str = "") -> InvalidConfig:
    """A config's validation problems as one `InvalidConfig`: `source: path: problem; path: problem`."""
    return InvalidConfig(f"{source}: " + "; ".join(validation_problems(error, where)))
