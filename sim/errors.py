"""Errors raised at the edge of the system, when input is loaded and validated.

Every input problem becomes one :class:`InputError` naming the file, the line
(1-based, counting the header as line 1) and the field, so the command line can
print a single clear message and exit with status 2.
"""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """A problem with user input (trace, cluster spec, scenario, CLI value)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field '{self.field}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message


class InfeasibleDecision(Exception):
    """A policy returned a decision that cannot be applied (a bug in the policy)."""
