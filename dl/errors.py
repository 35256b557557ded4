"""Errors the CLI turns into messages and exit codes (never tracebacks)."""

from __future__ import annotations

from dataclasses import dataclass


class DlError(Exception):
    """A failure explained to the user: printed as is, exit code 1."""

    exit_code = 1


class UnknownInstance(DlError):
    """A name that is no instance (of the manifest, or deployed): a usage error, exit code 2 like click's."""

    exit_code = 2


@dataclass(frozen=True, order=True)
class Problem:
    """One located problem in the manifest or a file it names."""

    file: str
    line: int  # 1-based; 0 when unknown
    col: int  # 1-based; 0 when unknown
    path: str  # dotted path in the manifest, e.g. "instances.northwind.config.default_page_size"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ManifestError(DlError):
    """The manifest (or something it refers to) is invalid: carries every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
