"""numba on first use (`simulator.stats.compiled`): start-up without it, compiled callees after it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

MODULE = '''
import numpy as np
from simulator.stats.compiled import njit


@njit(nogil=True)
def double(x):
    return 2.0 * x


@njit(nogil=True)
def total_doubled(values):
    out = 0.0
    for i in range(values.shape[0]):
        out += double(values[i])  # a compiled callee: bound before this compiles
    return out
'''


def test_a_command_starts_without_numba_or_the_heavy_scipy_modules() -> None:
    code = ("import sys, simulator.cli; heavy = [m for m in ('numba', 'scipy.stats', 'scipy.optimize') "
            "if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_compiled_functions_call_each_other_and_replace_their_stand_ins(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lazy_kernel_example.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import lazy_kernel_example as module
    from numba.core.registry import CPUDispatcher

    stand_in = module.total_doubled
    assert not isinstance(stand_in, CPUDispatcher)
    assert stand_in(np.arange(4.0)) == 12.0
    assert isinstance(module.total_doubled, CPUDispatcher) and isinstance(module.double, CPUDispatcher)
    assert stand_in(np.arange(5.0)) == 20.0  # a caller holding the stand-in is forwarded


def test_threads_calling_stand_ins_while_the_module_binds_reach_compiled_code(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Shards run on threads (the local engine): a stand-in called while another thread binds its module waits for
    the binding, instead of finding itself in the module and calling itself (a RecursionError, once)."""
    (tmp_path / "lazy_kernel_threads.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import lazy_kernel_threads as module
    from numba import njit as numba_njit

    binding = threading.Event()

    def slow_njit(**options: object):  # the first thread is inside `bind`, between two dispatchers, for a while
        def decorate(function):
            binding.set()
            time.sleep(0.05)
            return numba_njit(**options)(function)
        return decorate

    monkeypatch.setattr("numba.njit", slow_njit)
    stand_ins = (module.total_doubled, module.double)
    first = threading.Thread(target=stand_ins[0], args=(np.arange(4.0),))
    first.start()
    assert binding.wait(timeout=60)
    with ThreadPoolExecutor(max_workers=4) as pool:
        doubled = list(pool.map(stand_ins[1], [1.0, 2.0, 3.0, 4.0]))
        totals = list(pool.map(stand_ins[0], [np.arange(n, dtype=np.float64) for n in range(4)]))
    first.join()
    assert doubled == [2.0, 4.0, 6.0, 8.0] and totals == [0.0, 0.0, 2.0, 6.0]
