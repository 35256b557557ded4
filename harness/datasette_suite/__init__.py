"""Datasette's own test suite as a check of dl's handler: see ``__main__`` (the command) and ``bridge``."""
