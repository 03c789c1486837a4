"""The one exception hierarchy of policysim.

Library code raises these and never prints or exits; the CLI turns them into a
message on stderr and exit code 2 (1 for a failed guardrail). Any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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


class GuardrailFailed(PolicysimError):
    """A pre-launch review found a guardrail that the candidate breaks."""

    exit_code = 1
