"""datasette-lambda: publish SQLite databases with Datasette on AWS Lambda, GitOps style."""

__version__ = "0.1.0"
