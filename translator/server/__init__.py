"""The OpenAI-compatible HTTP server: ``create_app(config)``, and running it.

Mount it in an aiohttp application of your own, or run it with
:func:`run` / ``translator serve``.
"""

from ._app import DISPATCHER, PREFIXES, TRANSLATOR, create_app
from ._runner import run, serving

__all__ = ["DISPATCHER", "PREFIXES", "TRANSLATOR", "create_app", "run", "serving"]
