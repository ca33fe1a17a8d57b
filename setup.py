"""Build shim: the metadata lives in setup.cfg; the packages are listed here.

The built-in backends live in ``plugins/`` in the source tree and are
installed as ``translator_plugins``: nothing goes into site-packages under a
generic top-level name. ``benchmarks/`` is not installed at all (run it from
a checkout: ``python -m benchmarks``).
"""

from setuptools import find_packages, setup

PLUGINS = "translator_plugins"

setup(
    packages=[
        *find_packages(include=["translator", "translator.*"]),
        *(PLUGINS + p[len("plugins") :] for p in find_packages(include=["plugins", "plugins.*"])),
    ],
    package_dir={PLUGINS: "plugins"},
)
