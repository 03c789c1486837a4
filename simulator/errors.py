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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails


class PolicysimError(Exception):
    """Base of every error a user can cause and fix."""

    exit_code: int = 2


class InvalidData(PolicysimError):
    """The logged transactions break the data contract (docs/data.md).

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
        super().__init__(unknown_message(f"unknown {what} {name!r}", name, choices))
        self.name = name
        self.known = tuple(choices)


def unknown_message(head: str, name: str, known: Sequence[str]) -> str:
    """`head; known: a, b (did you mean 'a'?)`: what every unknown-name message says after naming the name."""
    if not known:
        return head
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"{head}; known: {', '.join(sorted(known))}" + (f" (did you mean {close[0]!r}?)" if close else "")


def first_line(error: BaseException) -> str:
    """The first line of an error message: readers append hints about their own arguments that do not apply here."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class TableProblems(ValueError):
    """Raised in a validator with every problem it found, each at the TOML path it is about.

    Paths are relative to the validated table (`by[1]`, `bands.amount.edges`), so a
    table's validator reports all of its problems in one round and the formatter
    puts each on its own line under the table's own path.
    """

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:  # (path below the table, message)
        super().__init__("; ".join(message for _, message in problems))
        self.problems = tuple(problems)


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
_SHOWN_CHARS = 80  # an offending value longer than this is cut: a message never dumps a whole table


def validation_problems(error: ValidationError, where: str = "", *, model: type[BaseModel] | None = None,
                        kind: str | None = None) -> list[str]:
    """One line per problem: the TOML path below `where`, what is wrong, and the offending value.

    `model` (the validated model) lets an unknown key list the keys its table
    accepts with the closest one, and lets a value that fits no form of a union
    (`block_above`: a table, a list or a number) give one line instead of one
    per form. `kind` says the table is a policy of that kind: a missing key says
    the kind requires it.
    """
    located = [_Located.of(detail, model) for detail in error.errors()]
    lines: list[str] = []
    for problem in _one_per_union(located):
        lines.extend(_describe(problem, where, kind))
    return lines


@dataclass(frozen=True, slots=True)
class _Located:
    """A pydantic error with its `loc` split into TOML keys and union-member tags."""

    detail: ErrorDetails
    keys: tuple[int | str, ...]  # the loc without union tags: what the TOML path shows
    union: tuple[int | str, ...] | None  # the keys before the first union tag, if the loc passes through one
    fits: bool  # the union member this error is about has the value's shape (a table for a model, a list...)
    forms: tuple[str, ...]  # the union's member names, for "fits none of"
    known: tuple[str, ...] | None  # the keys the table holding the last key accepts, when it is a model

    @staticmethod
    def of(detail: ErrorDetails, model: type[BaseModel] | None) -> _Located:
        keys: list[int | str] = []
        union: tuple[int | str, ...] | None = None
        fits, forms = False, ()
        annotation: Any = model
        known: tuple[str, ...] | None = None
        for part in detail["loc"]:
            members = _union_members(annotation)
            if len(members) > 1 and isinstance(part, str) and not _is_field(annotation, part):
                if union is None:
                    union, forms = tuple(keys), tuple(_type_name(m) for m in members)
                annotation = next((m for m in members if _type_name(m) in part), None)
                fits = fits or _shape_fits(annotation, detail["input"])
                continue
            if union is not None:
                fits = True  # the loc goes on inside the member: its shape fitted, a key inside it is wrong
            known = _fields(annotation)
            keys.append(part)
            annotation = _inner(annotation, part)
        return _Located(detail, tuple(keys), union, fits, forms, known)


def _one_per_union(located: list[_Located]) -> list[_Located]:
    """Keep the errors of the union member the value was meant as, or one error for a value that fits none.

    A table given for `block_above` fails the list and number forms too; those lines
    are noise next to what is wrong inside the table. When no form has the value's
    shape, the first error stands for all (described as fitting none).
    """
    kept: list[_Located] = []
    seen_unions: set[tuple[int | str, ...]] = set()
    for problem in located:
        if problem.union is None:
            kept.append(problem)
            continue
        siblings = [p for p in located if p.union == problem.union]
        if any(p.fits for p in siblings):
            if problem.fits:
                kept.append(problem)
        elif problem.union not in seen_unions:
            seen_unions.add(problem.union)
            kept.append(problem)
    return kept


def _describe(problem: _Located, where: str, kind: str | None) -> list[str]:
    """The line(s) for one problem; a validator's `TableProblems` gives one line per problem it found."""
    detail = problem.detail
    kind_of_error = detail["type"]
    ctx: dict[str, Any] = detail.get("ctx", {})
    cause = ctx.get("error")
    if isinstance(cause, TableProblems):
        base = toml_path(where, problem.keys)
        return [f"{toml_path(base, _keys(sub)) if sub else base or '(top level)'}: {message}"
                for sub, message in cause.problems]
    path = toml_path(where, problem.keys) or "(top level)"
    got = _got(detail.get("input"))
    if problem.union is not None and not problem.fits:
        return [f"{path}: must be one of: {', '.join(problem.forms)}{got}"]
    if kind_of_error == "missing":
        return [f"{path}: missing; policy kind {kind!r} requires it" if kind else f"{path}: missing; it is required"]
    if kind_of_error == "extra_forbidden":
        name = str(problem.keys[-1])
        if kind is not None:
            return [f"{path}: {_unknown_parameter(name, problem.known or (), kind)}"]
        return [f"{path}: {_unknown_key(name, problem.known)}"]
    if kind_of_error == "value_error":
        message = str(cause)
        return [f"{path}: {message}" if kind or "got " in message else f"{path}: {message}{got}"]
    if kind_of_error in _BOUNDS:
        limit = next(iter(ctx.values()))
        return [f"{path}: must be {_BOUNDS[kind_of_error]} {limit:g}{got}"]
    message = detail["msg"]
    return [f"{path}: {message[:1].lower()}{message[1:]}{got}"]


def _keys(path: str) -> list[int | str]:
    """`bands.amount.edges`, `by[1]` or `[1].name` as loc parts."""
    parts: list[int | str] = []
    for key in path.split("."):
        name, *indexes = key.split("[")
        if name:
            parts.append(name)
        parts.extend(int(index.rstrip("]")) for index in indexes)
    return parts


def _got(value: Any) -> str:
    """`, got <value>` for a scalar or a short value; nothing for a table, which may be the whole config."""
    if isinstance(value, Mapping):
        return ""
    shown = repr(value)
    if len(shown) > _SHOWN_CHARS:
        shown = shown[: _SHOWN_CHARS - 1] + "…"
    return f", got {shown}"


def _unknown_key(name: str, known: Sequence[str] | None) -> str:
    """`unknown key 'x'; known: ... (did you mean ...?)` for any table whose model is known."""
    if known is not None and not known:
        return f"unknown key {name!r} (no keys are allowed here)"
    return unknown_message(f"unknown key {name!r}", name, known or ())


def _unknown_parameter(name: str, known: Sequence[str], kind: str) -> str:
    """`unknown parameter 'x' for policy kind 'k'; known: ... (did you mean ...?)`."""
    return unknown_message(f"unknown parameter {name!r} for policy kind {kind!r}", name, known)


def _fields(annotation: Any) -> tuple[str, ...] | None:
    """The keys a table of this type accepts: a model's field names (None if it is not a model)."""
    model = _model_in(annotation)
    return None if model is None else tuple(model.model_fields)


def _is_field(annotation: Any, name: str) -> bool:
    fields = _fields(annotation)
    return fields is not None and name in fields


def _inner(annotation: Any, part: int | str) -> Any:
    """The type one loc part below `annotation`: a model's field, a list's item, a dict's value."""
    if annotation is None:
        return None
    model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    if model is None and len(_union_members(annotation)) == 1:
        model = _model_in(annotation)  # `Model | None`
    if model is not None:
        field = model.model_fields.get(str(part))
        return None if field is None else field.annotation
    origin = get_origin(annotation)
    arguments = [a for a in get_args(annotation) if a is not Ellipsis]
    if origin in (list, tuple, set, frozenset, dict) and arguments:
        return arguments[-1]  # the item, or the dict's value
    return None


def _shape_fits(member: Any, value: Any) -> bool:
    """Whether `value` has the shape of a union member: a table for a model or a dict, a list for a list."""
    if _model_in(member) is not None and get_origin(member) is None:
        return isinstance(value, Mapping)
    origin = get_origin(member)
    if origin is dict:
        return isinstance(value, Mapping)
    if origin in (list, tuple, set, frozenset):
        return isinstance(value, (list, tuple))
    return member is not None and not isinstance(value, (Mapping, list, tuple))


def _union_members(annotation: Any) -> tuple[Any, ...]:
    """The non-None members of a union annotation (`Range | list[float] | float | None`), else ()."""
    if get_origin(annotation) not in (Union, UnionType):
        return ()
    return tuple(a for a in get_args(annotation) if a is not type(None))


def _type_name(annotation: Any) -> str:
    """A member's name as pydantic tags it in a loc: `Range`, `list[float]`, `float`."""
    if isinstance(annotation, type) and not get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as `Cutoffs`, `list[Rule]` or `Cutoffs | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def problems_message(source: str, lines: Sequence[str]) -> str:
    """Every problem of one source: on one line when there is one, else counted, one per line in TOML-path order."""
    lines = sorted(lines, key=lambda line: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", line)])
    if len(lines) == 1:
        return f"{source}: {lines[0]}"
    return f"{source}: {len(lines)} problems:\n" + "\n".join(f"  - {line}" for line in lines)


def invalid_config(error: ValidationError, source: str, where: str = "", *,
                   model: type[BaseModel] | None = None) -> InvalidConfig:
    """A config's validation problems as one `InvalidConfig`, every problem on its own line."""
    return InvalidConfig(problems_message(source, validation_problems(error, where, model=model)))
