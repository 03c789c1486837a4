"""Deliberately broken custom policies: the `python` kind must reject each one clearly."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl


class _Returns:
    """Returns `make(n, n_actions)` for a batch of n rows; subclasses break one thing."""

    columns = frozenset({"amount"})

    def __init__(self, *, actions: tuple[str, ...]) -> None:
        self.n_actions = len(actions)

    def make(self, n: int, k: int) -> np.ndarray:
        return np.full((n, k), 1.0 / k)

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        return self.make(batch.height, self.n_actions)


class WrongShape(_Returns):
    def make(self, n: int, k: int) -> np.ndarray:
        return np.full((n, k - 1), 1.0 / (k - 1))


class HasNaN(_Returns):
    def make(self, n: int, k: int) -> np.ndarray:
        probs = super().make(n, k)
        probs[1, 0] = np.nan
        return probs


class Negative(_Returns):
    def make(self, n: int, k: int) -> np.ndarray:
        probs = np.zeros((n, k))
        probs[:, 0], probs[:, 1] = 1.5, -0.5
        return probs


class NotSummingToOne(_Returns):
    def make(self, n: int, k: int) -> np.ndarray:
        return np.full((n, k), 0.3)


class FalselyDeterministic(_Returns):
    deterministic = True


class BadCodes(_Returns):
    def coded(self, batch: pl.DataFrame) -> SimpleNamespace:
        return SimpleNamespace(codes=np.full(batch.height, 5), table=np.full((1, self.n_actions), 1.0 / self.n_actions))


class NoColumns:
    def __init__(self, *, actions: tuple[str, ...]) -> None:
        self.n_actions = len(actions)

    def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
        return np.full((batch.height, self.n_actions), 1.0 / self.n_actions)


class ReadsUnknownColumn(_Returns):
    columns = frozenset({"amount", "device_fingerprint"})


class NoProbabilities:
    columns = frozenset({"amount"})

    def __init__(self, *, actions: tuple[str, ...]) -> None:
        self.actions = actions


class VagueDeterministic(_Returns):
    deterministic = "yes"
