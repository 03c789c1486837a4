"""policysim: counterfactual evaluation of payment action policies on logged transactions."""

__version__ = "0.1.0"
