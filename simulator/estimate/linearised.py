"""A linearised estimate: its value per segment and its gradient with respect to weighted totals.

Every estimator here is a smooth function of weighted totals (`simulator.plan.moments.Term`);
its delta-method variance needs only the gradient and the totals' cross sums.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from simulator.plan.moments import Term

Gradient = dict[Term, np.ndarray]


class Estimate:
    """An estimate per segment and its gradient with respect to the totals it uses.

    The gradient is computed on first use: bootstrap replicates need only the
    values, and on a sweep's (segments × points × replicates) arrays the
    gradient would cost more than the estimate itself. `parts` lists the
    stratified Hájek means it is made of (`simulator.estimate.strata`), each
    with the estimate's derivative with respect to it: their explored rows and
    events decide the rare-event floor and the `few_events` flag.
    """

    __slots__ = ("value", "_grad", "_make_grad", "parts")

    def __init__(self, value: np.ndarray, grad: Gradient | Callable[[], Gradient],
                 parts: dict[object, tuple[np.ndarray, object]] | None = None) -> None:
        self.value = value
        self._grad: Gradient | None = None if callable(grad) else grad
        self._make_grad = grad if callable(grad) else None
        self.parts = parts or {}

    @property
    def grad(self) -> Gradient:
        if self._grad is None:
            assert self._make_grad is not None
            self._grad = self._make_grad()
        return self._grad

    def combine(self, other: Estimate, sign: float) -> Estimate:
        """self + sign · other: gradients (and Hájek parts) of shared terms add, so shared rows cancel."""

        def grad() -> Gradient:
            out = dict(self.grad)
            for term, g in other.grad.items():
                out[term] = out[term] + sign * g if term in out else sign * g
            return out

        parts = dict(self.parts)
        for key, (factor, part) in other.parts.items():
            parts[key] = (parts[key][0] + sign * factor, part) if key in parts else (sign * factor, part)
        return Estimate(value=self.value + sign * other.value, grad=grad, parts=parts)

    def minus(self, other: Estimate) -> Estimate:
        """The paired difference: gradients of shared terms cancel."""
        return self.combine(other, -1.0)

    def plus(self, other: Estimate) -> Estimate:
        """The sum of two estimates over the same segments."""
        return self.combine(other, 1.0)


def finite(x: np.ndarray | float) -> np.ndarray:
    """`np.nan_to_num(x)`: NaN as 0, ±∞ as the largest finite float, in a new array.

    Finalize calls it ~20 k times on per-segment arrays that are nearly always finite already, where
    numpy's version spends ~20 µs a call on its general path (~10 % of finalize); this one checks first.
    """
    a = np.asarray(x)
    if a.ndim and a.dtype.kind == "f" and np.isfinite(a).all():
        return a.copy()
    return np.nan_to_num(x)


def divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, NaN where b is 0 (an estimate over no rows is undefined, not infinite)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.true_divide(a, b)
    zero = np.asarray(b) == 0
    if zero.any():
        out = np.where(zero, np.nan, out)
    return out


