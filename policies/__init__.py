"""Policies: the protocol, the built-in kinds and the registry configs name them through (SPEC §4).

Importing this package registers every built-in kind; the imports below are
the registry's only source of kinds (nothing is discovered). Adding a kind =
one module, one `@register_policy`, one import here, one example in the
conformance suite (`tests/policies/test_conformance.py`).
"""

# The engine first: importing simulator.errors runs simulator/__init__, which imports the engine,
# which imports this package's modules (never its names); loading it here keeps that order whatever
# is imported first.
import simulator  # noqa: F401
from policies import epsilon, logged, production, python, rules, segment_threshold, threshold
from policies.base import Actions, Coded, Policy, one_hot
from policies.registry import PolicyContext, PolicyParams, build_policy, known_kinds, register_policy

__all__ = [
    "Actions",
    "Coded",
    "Policy",
    "PolicyContext",
    "PolicyParams",
    "build_policy",
    "epsilon",
    "known_kinds",
    "logged",
    "one_hot",
    "production",
    "python",
    "register_policy",
    "rules",
    "segment_threshold",
    "threshold",
]
