"""RAMster: distributed, compressed far memory with transcendent-memory (tmem) semantics.

The packages, bottom up: `ramster.tmem` (pure tmem semantics), `ramster.zcache` (the compressed
page store), `ramster.frontends` (cleancache and frontswap with lazy initialisation). Start with
docs/design.md §2 and docs/architecture.md for the map of the whole system.

The version is the installed distribution's (pyproject.toml ``[project] version``, its one place).
"""

from importlib.metadata import version

__version__ = version("ramster")
