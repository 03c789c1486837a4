"""policysim: counterfactual evaluation of payment action policies on logged transactions.

The library API (what notebooks import; README "Python API", notebooks/what_if.ipynb):

    from simulator import load_config, parse_config, run, run_frame, sweep, frontiers, frontier_figure

    config = load_config(Path("configs/thresholds.toml"))
    result = run(config, Path("data/transactions"), engine="local")
    result.overall()          # polars DataFrame: one row per (policy, metric) for segment ALL
    diagnostics(result.results)                      # one row per (policy, segment): rows, ess, flag...
    swept = sweep(config, Path("data/transactions"), objective=parse_objective("net_value"), engine="local")
    frontier_figure(swept.table, frontiers(swept.table), recommended=swept.choice.recommendation.point)

Names are resolved lazily, so that `policies` and `segments`, which import
`simulator.errors`, do not pull in the whole engine.

Three API functions share their name with the submodule that defines them
(`sweep`, `review`, `generate`). Importing such a submodule, from anywhere,
makes Python set `simulator.<name>` to the submodule, which would make
`from simulator import sweep` return a module instead of the function. The
package therefore keeps the function under that name (`_Package.__setattr__`);
the submodules stay importable as usual (`from simulator.sweep import SweepResult`),
but `simulator.sweep.SweepResult` (attribute access through the package) does not work.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_config": "simulator.config",
    "parse_config": "simulator.config",
    "RunConfig": "simulator.config",
    "run": "simulator.runner",
    "run_frame": "simulator.runner",
    "RunResult": "simulator.runner",
    "sweep": "simulator.sweep",
    "SweepResult": "simulator.sweep",
    "sweep_frame": "simulator.api",
    "diagnostics": "simulator.api",
    "frontiers": "simulator.frontier",
    "pareto_frontier": "simulator.frontier",
    "frontier_figure": "simulator.frontier_plots",
    "frontier_html": "simulator.frontier_plots",
    "parse_objective": "simulator.objective",
    "Objective": "simulator.objective",
    "Constraint": "simulator.objective",
    "Recommendation": "simulator.objective",
    "choose": "simulator.objective",
    "forest_plot": "simulator.plots",
    "calibration_plot": "simulator.plots",
    "figure_png": "simulator.plots",
    "calibrations": "simulator.calibration",
    "review": "simulator.review",
    "ReviewResult": "simulator.review",
    "write_review": "simulator.review_report",
    "generate": "simulator.generate",
    "GenerateSpec": "simulator.generate",
    "check_dataset": "simulator.validate",
    "PolicysimError": "simulator.errors",
    "InvalidData": "simulator.errors",
    "InvalidConfig": "simulator.errors",
    "UnknownName": "simulator.errors",
}
__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    if name in _API:
        value = getattr(import_module(_API[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")


class _Package(ModuleType):
    """The `simulator` package: an API function keeps its name over its same-named submodule."""

    def __setattr__(self, name: str, value: Any) -> None:
        # The import system runs `setattr(simulator, "sweep", <module simulator.sweep>)` once the
        # submodule is loaded; without this, `from simulator import sweep` returns the module.
        if isinstance(value, ModuleType) and value.__name__ == f"{__name__}.{name}" and _API.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
