"""RAMster: distributed, compressed far memory with transcendent-memory (tmem) semantics.

The packages, bottom up: `ramster.tmem` (pure tmem semantics), `ramster.zcache` (the compressed
page store), `ramster.frontends` (cleancache and frontswap with lazy initialisation). Start with
``../shared/DESIGN.md`` §2 for the map of the whole system.
"""

__version__ = "0.1.0"
