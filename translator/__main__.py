"""``python -m translator``: the same command line as ``translator``."""

from ._cli import main

raise SystemExit(main())
