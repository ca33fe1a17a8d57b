"""Which route serves a ``model``, and which models ``GET /v1/models`` lists.

A model is served by its exact route, else by the longest matching prefix
route, else by the default backend (a route of that one backend). A
backend's own name is no model: a backend such as Ollama would send it
upstream as a model name, which the upstream does not know. Route a name to a
backend to make it one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from .._backend import BackendSettings
from ..errors import ModelNotFoundError
from .settings import Route

__all__ = ["RouteTable", "listed_models"]


class RouteTable:
    """Routes compiled once: exact names, then the longest matching prefix, then the default."""

    __slots__ = ("_default", "_exact", "_prefixes", "backends")

    def __init__(
        self, routes: Sequence[Route], backends: Iterable[str], default: str | None = None
    ) -> None:
        self.backends = tuple(backends)
        self._exact = {r.model: r for r in routes if not r.is_prefix}
        prefixes = [(r.model[:-1], r) for r in routes if r.is_prefix]
        # Longest first, so the most specific prefix wins; stable for equal lengths.
        self._prefixes = tuple(sorted(prefixes, key=lambda p: -len(p[0])))
        self._default = None if default is None else Route("*", default)

    def route_for(self, model: str) -> Route:
        """The route for ``model``; :class:`ModelNotFoundError` (404) when none."""
        route = self._exact.get(model)
        if route is not None:
            return route
        for prefix, route in self._prefixes:
            if model.startswith(prefix):
                return route
        if self._default is not None:
            return self._default
        raise ModelNotFoundError(
            f"The model '{model}' does not exist or is not served here.", param="model"
        )

    def backend_for(self, model: str) -> str:
        """The first backend of the route for ``model`` (404 when none)."""
        return self.route_for(model).candidates[0]

    def routes_to(self, model: str, backend: str) -> bool:
        """Whether a request for ``model`` may go to ``backend``."""
        try:
            return backend in self.route_for(model).candidates
        except ModelNotFoundError:
            return False

    def routes(self) -> list[Route]:
        """Every route, the default's last."""
        routes = [*self._exact.values(), *(r for _, r in self._prefixes)]
        return routes + ([self._default] if self._default is not None else [])

    def unreached(self) -> list[str]:
        """The backends no route and no default leads to."""
        reached = {b for r in self.routes() for b in r.candidates}
        return [b for b in self.backends if b not in reached]

    def exact(self) -> list[tuple[str, str]]:
        """``(model, first backend)`` for every model a route names exactly."""
        return [(m, r.candidates[0]) for m, r in self._exact.items()]


def listed_models(
    backends: Mapping[str, BackendSettings], table: RouteTable
) -> list[tuple[str, str]]:
    """``(model, backend)`` for each model a client can name, in configuration order.

    Every exact route's model; then each name a backend's ``options.models``
    table maps (``options.model``, when it is a table, for ``openai-compatible``),
    when a request for that name is routed to that backend. A prefix route
    adds no name of its own, nor does a default backend: they take any name.
    """
    listed = dict(table.exact())
    served = set(table.backends)
    for name, settings in backends.items():
        if name not in served:
            continue
        for key in ("models", "model"):
            mapped = settings.options.get(key)
            if not isinstance(mapped, dict):
                continue
            for model in mapped:
                if isinstance(model, str) and model not in listed and table.routes_to(model, name):
                    listed[model] = name
    return list(listed.items())
