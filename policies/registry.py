"""The registry configs name policy kinds through (SPEC §4, STYLE §2).

A kind is a frozen pydantic model of its parameters and a factory. The
registry validates a `[[policies]]` table against the model and turns pydantic's
errors into `InvalidConfig` lines carrying the TOML path and the offending value
(`policies[1].block_above: must be <= 1, got 1.3`; with the config's formatter,
`simulator.errors.validation_problems`), so a new kind gets config
validation and messages for free. The dict is filled by the imports in
`policies/__init__.py`; nothing is discovered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from policies.base import Actions, Policy, located
from simulator.errors import InvalidConfig, UnknownName, validation_problems


class PolicyParams(BaseModel):
    """Base of every kind's parameters: frozen, no unknown keys, no type coercion.

    `strict` keeps a quoted `"0.5"` from passing as a number; TOML integers are
    still accepted where a float is expected.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """What a factory may check a policy against at config time.

    `actions` is the configured action set in order; `columns` the canonical
    columns available in the data, or None when unknown (then column names are
    checked when a batch arrives); `score_ranges` the declared range of each
    score not on [0, 1] (`[data.score_range]`), in whose units thresholds are written.
    """

    actions: Actions
    columns: frozenset[str] | None
    score_ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def validation(self) -> dict[str, Any]:
        """What a kind's parameter validators may read (pydantic's validation context)."""
        return {"score_ranges": self.score_ranges}


class Factory(Protocol):
    """Builds a policy from validated parameters; `where` is the TOML path for messages."""

    def __call__(self, params: Any, context: PolicyContext, *, where: str) -> Policy: ...


FactoryT = TypeVar("FactoryT", bound=Factory)


@dataclass(frozen=True, slots=True)
class _Kind:
    params: type[BaseModel]
    factory: Factory


_KINDS: dict[str, _Kind] = {}


def register_policy(kind: str, *, params: type[BaseModel]) -> Callable[[FactoryT], FactoryT]:
    """Decorator registering `factory` as policy kind `kind`; registering a kind twice raises.

    The factory gets the validated `params`, a `PolicyContext` (the action set)
    and `where` (the TOML path, for messages). A policy defined in a notebook
    runs on both engines (Ray pickles it by value). Everything it needs is exported by `policies`.

    Example::

        class BigTicketParams(PolicyParams):
            above: float

        @dataclass(frozen=True)
        class BigTicket:                      # challenge every payment above `above`, allow the rest
            above: float
            actions: Actions
            columns: frozenset[str] = frozenset({"amount"})
            deterministic: bool = True
            logging: bool = False

            def coded(self, batch: pl.DataFrame) -> Coded:     # code = chosen action: rows group into cells
                chosen = np.where(batch["amount"].to_numpy() > self.above, self.actions.index("challenge"), 0)
                return one_hot(chosen, len(self.actions))

            def probabilities(self, batch: pl.DataFrame) -> np.ndarray:
                return self.coded(batch).probabilities()

        @register_policy("big_ticket", params=BigTicketParams)
        def big_ticket(params: BigTicketParams, context: PolicyContext, *, where: str) -> BigTicket:
            return BigTicket(above=params.above, actions=context.actions)

        parse_config({"policies": [{"name": "3ds_over_500", "kind": "big_ticket", "above": 500.0}]})
    """

    def register(factory: FactoryT) -> FactoryT:
        if kind in _KINDS:
            raise ValueError(f"policy kind {kind!r} is already registered")
        _KINDS[kind] = _Kind(params=params, factory=factory)
        return factory

    return register


def known_kinds() -> tuple[str, ...]:
    """The registered policy kinds, sorted."""
    return tuple(sorted(_KINDS))


def build_policy(spec: Mapping[str, Any], context: PolicyContext, *, where: str) -> Policy:
    """The policy one `[[policies]]` table (without `name`) describes.

    `spec["kind"]` picks the kind; the rest is validated by the kind's params
    model. Nested policy tables (`rules.fallback`, `epsilon.base`) come through
    here too, with a longer `where`.
    """
    if not isinstance(spec, Mapping):
        raise InvalidConfig(f"{where}: must be a policy table with a 'kind', got {spec!r}")
    kind = spec.get("kind")
    if kind is None:
        raise InvalidConfig(f"{where}: missing 'kind'; known: {', '.join(known_kinds())}")
    if not isinstance(kind, str) or kind not in _KINDS:
        raise located(UnknownName("policy kind", str(kind), known_kinds()), f"{where}.kind")
    entry = _KINDS[kind]
    values = {key: value for key, value in spec.items() if key != "kind"}
    try:
        params = entry.params.model_validate(values, context=context.validation())
    except ValidationError as error:
        lines = validation_problems(error, where, model=entry.params, kind=kind)
        raise InvalidConfig("\n".join(lines)) from error
    return entry.factory(params, context, where=where)
