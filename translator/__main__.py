"""``python -m translator``: the same command line as ``translator``."""

from .cli import main

raise SystemExit(main())
