"""policysim: counterfactual evaluation of payment action policies on logged transactions.

The library API (what notebooks import):

    from simulator import load_config, parse_config, run, run_frame

    config = load_config(Path("configs/thresholds.toml"))
    result = run(config, Path("data/transactions"), engine="local")
    result.overall()          # polars DataFrame: one row per (policy, metric) for segment ALL

Names are resolved lazily, so that `policies` and `segments`, which import
`simulator.errors`, do not pull in the whole engine.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_API = {
    "load_config": "simulator.config",
    "parse_config": "simulator.config",
    "RunConfig": "simulator.config",
    "run": "simulator.runner",
    "run_frame": "simulator.runner",
    "RunResult": "simulator.runner",
    "review": "simulator.review",
    "ReviewResult": "simulator.review",
    "write_review": "simulator.review_report",
    "generate": "simulator.generate",
    "GenerateSpec": "simulator.generate",
    "check_dataset": "simulator.validate",
    "PolicysimError": "simulator.errors",
    "InvalidData": "simulator.errors",
    "InvalidConfig": "simulator.errors",
}
__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
