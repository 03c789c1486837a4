"""policysim: counterfactual evaluation of payment action policies on logged transactions.

The library API (what notebooks import; README "Python API", notebooks/what_if.ipynb):

    from simulator import Execution, load_config, parse_config, run, run_frame, sweep, frontiers, frontier_figure

    config = load_config(Path("configs/thresholds.toml"))
    local = Execution(engine="local")  # the default, Execution(), runs on a new local Ray cluster
    result = run(config, Path("data/transactions"), execution=local)
    result.overall()          # polars DataFrame: one row per (policy, metric) for segment ALL
    diagnostics(result.results)                      # one row per (policy, segment): rows, ess, flag...
    swept = sweep(config, Path("data/transactions"), objective=parse_objective("net_value"), execution=local)
    frontier_figure(swept.table, frontiers(swept.table), recommended=swept.choice.recommendation.point)

The engine's packages, in the order a run's data meets them (docs/architecture.md
draws the whole flow):

- `simulator.data` — find, read and validate the logged transactions;
- `simulator.model` — the value model (money per row) and the DR outcome model;
- `simulator.plan` — the compiled plan every shard shares, threshold grids, the sums needed;
- `simulator.stats` — a shard's mergeable sums: cells, units, bootstrap replicates, binned sums;
- `simulator.estimate` — totals per segment, estimators, intervals, support, the results table;
- `simulator.engine` — shards, and running them locally or on Ray (`Execution` says which and where);
- `simulator.workflows` — `run`, `sweep`, `review`: wiring of the stages above;
- `simulator.decide` — objectives, recommendations, frontiers, per-segment choices;
- `simulator.report` — files, tables, plots, HTML/Markdown reports;
- `simulator.synthetic` — the generator of synthetic payments and their ground truth.

`config` (with `config_tables`: `[sweep]` and `[review]`), `schema`, `errors`
and `cli` sit at the top: every stage uses the first three; the CLI is the only
module that prints.
"""

from __future__ import annotations

__version__ = "0.1.0"  # first: modules imported below read it

from simulator.config import RunConfig, load_config, parse_config
from simulator.config_tables import Constraint, Objective, parse_objective
from simulator.data.validate import check_dataset
from simulator.decide.frontier import frontiers, pareto_frontier
from simulator.decide.objective import Recommendation, choose
from simulator.engine.execution import Execution
from simulator.errors import InvalidConfig, InvalidData, PolicysimError, UnknownName
from simulator.report.calibration import calibrations
from simulator.report.frontier_plots import frontier_figure, frontier_html
from simulator.report.plots import calibration_plot, figure_png, forest_plot
from simulator.report.candidates import write_candidates_review
from simulator.report.review import write_review
from simulator.synthetic.generate import GenerateSpec, generate
from simulator.workflows.frames import diagnostics, sweep_frame
from simulator.workflows.review import CandidatesReview, ReviewResult, review, review_candidates
from simulator.workflows.run import RunResult, run, run_frame
from simulator.workflows.sweep import SweepResult, sweep

__all__ = [
    "CandidatesReview",
    "Constraint",
    "Execution",
    "GenerateSpec",
    "InvalidConfig",
    "InvalidData",
    "Objective",
    "PolicysimError",
    "Recommendation",
    "ReviewResult",
    "RunConfig",
    "RunResult",
    "SweepResult",
    "UnknownName",
    "__version__",
    "calibration_plot",
    "calibrations",
    "check_dataset",
    "choose",
    "diagnostics",
    "figure_png",
    "forest_plot",
    "frontier_figure",
    "frontier_html",
    "frontiers",
    "generate",
    "load_config",
    "parse_config",
    "pareto_frontier",
    "parse_objective",
    "review",
    "review_candidates",
    "run",
    "run_frame",
    "sweep",
    "sweep_frame",
    "write_candidates_review",
    "write_review",
]
