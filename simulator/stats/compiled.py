"""`njit` that imports numba on the first call instead of at import time.

numba costs ~0.25 s to import, and every command imports the modules that hold compiled loops
(`simulator.stats.kernel`, the threshold ladders), even `policysim --version` or a config error
that never reaches them. Here a decorated function is a plain Python function until one of its
module's compiled functions is first called: then numba compiles (or loads from its cache) every
function of that module and binds them in the module in place of their stand-ins, so compiled
functions calling each other resolve to compiled callees. Callers that imported a stand-in keep
it: it forwards to the module's compiled function (one extra Python call per kernel call).
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_PENDING: dict[str, list[tuple[str, Callable[..., Any], dict[str, Any]]]] = {}  # module -> its functions to compile
_LOCK = threading.Lock()  # shards run on threads: bind a module once


def njit(**options: Any) -> Callable[[F], F]:
    """numba's `njit(**options)`, applied when the function's module first runs compiled code."""

    def decorate(function: F) -> F:
        module, name = function.__module__, function.__name__
        _PENDING.setdefault(module, []).append((name, function, options))

        @functools.wraps(function)
        def stand_in(*args: Any, **kwargs: Any) -> Any:
            if module in _PENDING:  # bound already: no lock on every call of a caller holding the stand-in
                bind(module)
            return getattr(sys.modules[module], name)(*args, **kwargs)

        return stand_in  # type: ignore[return-value]

    return decorate


def bind(module: str) -> None:
    """Replace the module's stand-ins by numba dispatchers (idempotent).

    The module leaves `_PENDING` only once every dispatcher is in place: a stand-in called on another
    thread meanwhile sees it pending and waits here, rather than finding itself still in the module.
    """
    with _LOCK:
        pending = _PENDING.get(module)
        if not pending:
            return
        from numba import njit as numba_njit

        target = sys.modules[module]
        for name, function, options in pending:
            setattr(target, name, numba_njit(**options)(function))
        del _PENDING[module]
