"""Model routing: which backend answers a request for a given ``model``, and which
models ``GET /v1/models`` lists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..config import Config, Route
from ..errors import ModelNotFoundError

__all__ = ["Router", "listed_models"]


class Router:
    """Routes compiled once: exact names, then the longest matching prefix, then the default.

    A backend's own name is no model: a backend such as Ollama would send it
    upstream as a model name, which the upstream does not know. Route a name
    to a backend to make it one.
    """

    __slots__ = ("_default", "_exact", "_prefixes", "backends")

    def __init__(
        self, routes: Sequence[Route], backends: Iterable[str], default: str | None = None
    ) -> None:
        self.backends = tuple(backends)
        self._exact = {r.model: r.backend for r in routes if not r.is_prefix}
        prefixes = [(r.model[:-1], r.backend) for r in routes if r.is_prefix]
        # Longest first, so the most specific prefix wins; stable for equal lengths.
        self._prefixes = tuple(sorted(prefixes, key=lambda p: -len(p[0])))
        self._default = default

    def backend_for(self, model: str) -> str:
        """The backend for ``model``; :class:`ModelNotFoundError` (404) when none."""
        backend = self._exact.get(model)
        if backend is not None:
            return backend
        for prefix, backend in self._prefixes:
            if model.startswith(prefix):
                return backend
        if self._default is not None:
            return self._default
        raise ModelNotFoundError(
            f"The model '{model}' does not exist or is not served here.", param="model"
        )

    def routes_to(self, model: str, backend: str) -> bool:
        """Whether a request for ``model`` goes to ``backend``."""
        try:
            return self.backend_for(model) == backend
        except ModelNotFoundError:
            return False

    def unreached(self) -> list[str]:
        """The backends no route and no default leads to."""
        reached = {*self._exact.values(), *(b for _, b in self._prefixes), self._default}
        return [b for b in self.backends if b not in reached]

    def exact(self) -> list[tuple[str, str]]:
        """``(model, backend)`` for every model a route names exactly."""
        return list(self._exact.items())


def listed_models(config: Config, router: Router) -> list[tuple[str, str]]:
    """``(model, backend)`` for each model a client can name, in configuration order.

    Every exact route's model; then each name a backend's ``options.models``
    table maps (``options.model``, when it is a table, for ``openai-compatible``),
    when a request for that name is routed to that backend. A prefix route
    adds no name of its own, nor does a default backend: they take any name.
    """
    listed = dict(router.exact())
    served = set(router.backends)
    for name, settings in config.backends.items():
        if name not in served:
            continue
        for key in ("models", "model"):
            mapped = settings.options.get(key)
            if not isinstance(mapped, dict):
                continue
            for model in mapped:
                if isinstance(model, str) and model not in listed and router.routes_to(model, name):
                    listed[model] = name
    return list(listed.items())
