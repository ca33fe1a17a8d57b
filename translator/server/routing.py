"""Model routing: which backend answers a request for a given ``model``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..config import Route
from ..errors import ModelNotFoundError

__all__ = ["Router"]


class Router:
    """Routes compiled once: exact names, then the longest matching prefix, then the default.

    A model named exactly like a configured backend goes to that backend when no
    route claims it.
    """

    __slots__ = ("_default", "_exact", "_prefixes", "backends")

    def __init__(
        self, routes: Sequence[Route], backends: Iterable[str], default: str | None = None
    ) -> None:
        self.backends = tuple(backends)
        self._exact = {name: name for name in self.backends}
        self._exact.update({r.model: r.backend for r in routes if not r.is_prefix})
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

    def models(self) -> list[tuple[str, str]]:
        """``(model, backend)`` for every model named by a route or a backend."""
        return list(self._exact.items())
