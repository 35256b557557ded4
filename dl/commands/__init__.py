"""The command line's edge: the options commands share, the shared pipeline, and ``datasette publish lambda``."""
